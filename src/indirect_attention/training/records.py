"""Run directories: every run writes ``config.json``, ``metrics.jsonl`` and ``results.json``.

Files are written atomically (a temporary file in the same folder, then ``os.replace``), so a crash
leaves either the old file or the new one, never half of one. Metrics are appended one JSON object
per line and flushed at once, so a killed run keeps every line it wrote.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["RunDir", "atomic_write_bytes", "atomic_write_text", "read_jsonl", "to_jsonable"]


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def to_jsonable(value: Any) -> Any:
    """Convert tuples, paths, numpy/torch scalars and non-finite floats into plain JSON values."""
    if isinstance(value, dict):
        return {str(key): to_jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(item) for item in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 0) == 0:
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def read_jsonl(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Read a JSON-lines file; a truncated last line (from a crash) is ignored."""
    rows = []
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as error:
            if number == len(lines) - 1:
                break
            raise ValueError(f"{path}: line {number + 1} is not valid JSON: {error}") from error
    return rows


class RunDir:
    """A run's output folder with its three record files.

    Args:
        root: The run directory; created if missing.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    @property
    def config_path(self) -> Path:
        return self.root / "config.json"

    @property
    def metrics_path(self) -> Path:
        return self.root / "metrics.jsonl"

    @property
    def results_path(self) -> Path:
        return self.root / "results.json"

    def write_json(self, name: str, payload: Any) -> Path:
        """Write ``payload`` as pretty JSON to ``root / name`` atomically."""
        text = json.dumps(to_jsonable(payload), indent=2, sort_keys=False, allow_nan=False)
        return atomic_write_text(self.root / name, text + "\n")

    def write_config(self, config: dict[str, Any]) -> Path:
        """Write ``config.json``."""
        return self.write_json("config.json", config)

    def write_results(self, results: dict[str, Any]) -> Path:
        """Write ``results.json``."""
        return self.write_json("results.json", results)

    def log_metrics(self, row: dict[str, Any]) -> None:
        """Append one JSON line to ``metrics.jsonl`` and flush it to disk."""
        line = json.dumps(to_jsonable(row), allow_nan=False)
        with open(self.metrics_path, "a", encoding="utf-8") as handle:
            handle.write(line + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def rewrite_metrics(self, rows: list[dict[str, Any]]) -> Path:
        """Replace ``metrics.jsonl`` by ``rows`` atomically (a resumed run drops the rows written
        after its checkpoint, or copies another run's rows)."""
        lines = "".join(json.dumps(to_jsonable(row), allow_nan=False) + "\n" for row in rows)
        return atomic_write_text(self.metrics_path, lines)

    def read_metrics(self) -> list[dict[str, Any]]:
        """All rows of ``metrics.jsonl`` (empty if the file does not exist)."""
        return read_jsonl(self.metrics_path) if self.metrics_path.exists() else []

    def read_results(self) -> dict[str, Any] | None:
        """``results.json`` as a dict, or None when the run has not finished."""
        if not self.results_path.exists():
            return None
        return json.loads(self.results_path.read_text(encoding="utf-8"))
