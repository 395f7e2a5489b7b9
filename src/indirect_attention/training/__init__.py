"""Task-agnostic training support: run directories, checkpoints, seeding. Imports torch only."""

from .records import RunDir, atomic_write_bytes, atomic_write_text, read_jsonl

__all__ = ["RunDir", "atomic_write_bytes", "atomic_write_text", "read_jsonl"]
