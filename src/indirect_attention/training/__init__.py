"""Task-agnostic training support: run directories, checkpoints, seeding. Imports torch only."""

from .loop import (
    EpochStats,
    StepFn,
    classification_step,
    evaluate,
    iterate_minibatches,
    take,
)
from .optim import build_adamw, param_groups, warmup_cosine_factor
from .records import RunDir, atomic_write_bytes, atomic_write_text, read_jsonl
from .seeding import isolated_rng, make_generator, seed_everything

__all__ = [
    "EpochStats",
    "RunDir",
    "StepFn",
    "atomic_write_bytes",
    "atomic_write_text",
    "build_adamw",
    "classification_step",
    "evaluate",
    "isolated_rng",
    "iterate_minibatches",
    "make_generator",
    "param_groups",
    "read_jsonl",
    "seed_everything",
    "take",
    "warmup_cosine_factor",
]
