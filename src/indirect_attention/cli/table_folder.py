"""``ia detr table1 --out DIR`` over a folder that already holds a table.

A table resumes by design: its finished runs (``DIR/<kind>-s<seed>``) are reused and a stopped
one continues from its checkpoint. That is only right when they were trained with the same recipe;
otherwise the new table would mix two recipes (or fail deep inside a checkpoint load). So before
anything runs, the recipe recorded in each run's ``config.json`` is compared with the one the flags
give; a difference is refused with the keys named, unless ``--overwrite``, which removes the runs'
own files and the table's (anything else in the folder is kept) and starts the table again.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

from .errors import UserError
from .resume import EXTENDABLE

__all__ = ["check_table_folder"]

_RUN_NAME = re.compile(r"(?P<kind>[a-z-]+)-s(?P<seed>\d+)")
#: Record keys that differ from run to run of one table, or may change between launches.
_PER_RUN = frozenset({"out", "seed", "resume", "init_weights", "progress"}) | EXTENDABLE
_TABLE_FILES = ("results.json", "table1.md")
_RUN_FILES = ("config.json", "metrics.jsonl", "results.json", "checkpoint.pt", "eval.json")
_RUN_FILES += ("pretrain.json",)


def _differences(
    recorded: dict[str, Any], expected: dict[str, Any], defaults: dict[str, Any], prefix: str = ""
) -> list:
    """The keys whose values differ; a key the run does not record (written before the field
    existed) counts as its default, which is what that run trained with."""
    keys = sorted(set(recorded) | set(expected))
    found = []
    for key in keys:
        if not prefix and key in _PER_RUN:
            continue
        new = expected.get(key, "(none)")
        old = recorded.get(key, defaults.get(key, "(none)"))
        if isinstance(old, dict) and isinstance(new, dict):
            found += _differences(old, new, defaults.get(key, {}), f"{prefix}{key}.")
        elif old != new:
            found.append(f"{prefix}{key} {new!r} (the table's runs: {old!r})")
    return found


def check_table_folder(out: str | Path, recipe: Any, *, overwrite: bool) -> None:
    """Refuse ``out`` when its runs were trained with another recipe than ``recipe``.

    Args:
        out: The table's folder.
        recipe: The :class:`..detection.train.DetrTrainConfig` every run of the table trains.
        overwrite: Remove the earlier runs' files and the table's instead of refusing.

    Raises:
        UserError: a run's ``config.json`` differs from ``recipe`` (the keys named), or is
            unreadable.
    """
    from ..detection.train import config_record
    from ..detection.train import recipe as default_recipe
    from ..training.records import to_jsonable
    from ..training.run_folder import check_output_folder, clear_run_files

    folder = Path(out)
    check_output_folder(folder, name="--out", names=())  # a file, or a file above it
    if not folder.is_dir():
        return
    runs = sorted(p for p in folder.iterdir() if p.is_dir() and _RUN_NAME.fullmatch(p.name))
    if overwrite:
        for run in runs:
            clear_run_files(run, _RUN_FILES)
        clear_run_files(folder, _TABLE_FILES)
        return
    for run in runs:
        path = run / "config.json"
        if not path.is_file():
            continue
        try:
            recorded = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise UserError(f"--out {folder}: cannot read {path}: {error}") from None
        kind = _RUN_NAME.fullmatch(run.name).group("kind")
        model = replace(recipe.model, kind=kind)
        expected = to_jsonable(config_record(replace(recipe, model=model)))
        try:  # what a run of this data trained with by default (fields it may not record)
            default = default_recipe(type(recipe.data)(), model={"kind": kind})
            defaults = to_jsonable(config_record(default))
        except (TypeError, ValueError):  # a source that needs options: no defaults to assume
            defaults = {}
        differing = _differences(recorded, expected, defaults)
        if differing:
            raise UserError(
                f"--out {folder} holds a table whose run {run.name} was trained with another "
                f"recipe: {'; '.join(differing[:6])}; pass --overwrite to start the table again "
                "or choose another --out"
            )
