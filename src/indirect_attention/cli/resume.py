"""``ia detr train --resume RUN``: continue a run with the recipe it recorded.

The recipe comes from ``RUN/config.json`` (what :func:`..detection.train.config_record` wrote),
so ``--resume RUN`` alone continues the run. Flags given with it may only change what is safe to
change in the middle of a run (:data:`EXTENDABLE`: more epochs, a time limit, the device, the
threads); any other flag whose value differs from the recorded one is refused with the differing
keys named. Everything is checked here, before any data is rendered or any backbone pre-trained:
the checkpoint loads (``weights_only=True``), the config holds every key, the run has epochs left.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from .errors import UserError
from .outputs import is_first_process

__all__ = ["EXTENDABLE", "resume_recipe"]

#: Train-config fields a resumed run may change.
EXTENDABLE = frozenset(
    {"epochs", "max_minutes", "device", "threads", "checkpoint_every", "progress"}
)
#: Parsed flags that are not part of the recipe.
_NOT_RECIPE = frozenset(
    {"out", "resume", "overwrite", "init_weights", "command", "detr_command", "quiet"}
)
#: Old names of model-config fields in config.json files written by earlier versions.
_RENAMED = {"variant": "kind", "heads": "num_heads", "layers": "num_layers"}


def _flag(dest: str) -> str:
    return {"num_layers": "--layers", "num_queries": "--queries", "progress": "--quiet"}.get(
        dest, f"--{dest.replace('_', '-')}"
    )


def _read_record(path: Path) -> dict[str, Any]:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(
            f"--resume: {path} is missing; expected the config.json that `ia detr train` writes "
            "into its run folder"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UserError(f"--resume: cannot read {path}: {error}") from None
    if not isinstance(record, dict):
        raise UserError(f"--resume: {path} holds a {type(record).__name__}, expected an object")
    return record


def _take(values: dict[str, Any], names: list[str], where: str, path: Path) -> dict[str, Any]:
    """``values`` restricted to ``names``; every name must be there."""
    missing = [name for name in names if name not in values]
    if missing:
        raise UserError(
            f"--resume: {path} has no {', '.join(repr(m) for m in missing)} in {where}; expected "
            "the config.json that `ia detr train` writes"
        )
    return {
        name: tuple(values[name]) if isinstance(values[name], list) else values[name]
        for name in names
    }


def recorded_config(path: Path, sources: dict[str, type]) -> Any:
    """The :class:`..detection.train.DetrTrainConfig` recorded in ``path`` (a config.json)."""
    from ..detection.model import DetrModelConfig
    from ..detection.train import DetrTrainConfig

    record = _read_record(path)
    names = [f.name for f in fields(DetrTrainConfig) if f.name not in ("data", "model")]
    train = _take(record, [*names, "data", "data_options", "model"], "the file", path)
    if train["data"] not in sources:
        raise UserError(
            f"--resume: {path} names data {train['data']!r}, not one of {list(sources)}"
        )
    source = sources[train.pop("data")]
    options = train.pop("data_options")
    data = source(**_take(options, [f.name for f in fields(source)], "data_options", path))
    model = {_RENAMED.get(k, k): v for k, v in dict(train.pop("model")).items()}
    model = _take(model, [f.name for f in fields(DetrModelConfig)], "model", path)
    try:
        return DetrTrainConfig(data=data, model=DetrModelConfig(**model), **train)
    except (TypeError, ValueError) as error:
        raise UserError(f"--resume: {path} does not describe a run: {error}") from None


def _recorded_value(config: Any, dest: str) -> tuple[bool, Any]:
    """``(True, value)`` of the recipe field a flag sets, or ``(False, None)``."""
    for holder in (config, config.model, config.data):
        if dest in {f.name for f in fields(holder)} and dest not in ("data", "model"):
            return True, getattr(holder, dest)
    if dest == "data":
        return True, config.data.name
    return False, None


def _conflicts(args: argparse.Namespace, given: set[str], config: Any) -> list[str]:
    differing = []
    for dest in sorted(given - _NOT_RECIPE - EXTENDABLE):
        known, recorded = _recorded_value(config, dest)
        value = getattr(args, dest)
        if isinstance(value, list):
            value = tuple(value)
        if not known or value != recorded:
            shown = "not recorded" if not known else repr(recorded)
            differing.append(f"{_flag(dest)} {value!r} (the run: {shown})")
    return differing


def _checkpoint_progress(path: Path) -> tuple[int, int]:
    """``(epoch, batch)`` of a training checkpoint; refuses any other file."""
    from ..training.checkpoint import read_weights_only

    state = read_weights_only(path, expected="a checkpoint.pt written by `ia detr train`")
    if not isinstance(state, dict) or not {"model", "epoch", "step", "optimizer"} <= state.keys():
        raise UserError(
            f"--resume: {path} is not a training checkpoint of `ia detr train` (it has no model, "
            "optimizer and progress); to start from its weights use --init-weights"
        )
    return int(state["epoch"]), int(state.get("batch", 0))


def resume_recipe(
    args: argparse.Namespace,
    given: set[str],
    *,
    sources: dict[str, type],
    fresh: Callable[[str], Any],
) -> Any:
    """The config that continues the run of ``--resume``.

    Args:
        args: The parsed flags of ``ia detr train``.
        given: The flags given on the command line (their ``dest``).
        sources: ``--data`` name -> data source class.
        fresh: Builds the config from the flags for a given ``out`` (a relaunched run that
            never reached its first checkpoint starts fresh in its own folder).

    Raises:
        UserError: no checkpoint, a foreign file, a config.json without a key, flags that
            differ from the recorded recipe, or no epochs left.
    """
    from ..training.run_folder import check_output_folder

    resume = Path(args.resume)
    checkpoint = resume if resume.is_file() else resume / "checkpoint.pt"
    folder = checkpoint.parent
    out = Path(args.out) if args.out is not None else folder
    relaunch = args.out is not None and out.resolve() == folder.resolve()
    if not checkpoint.is_file():
        if relaunch and not (folder / "config.json").is_file():
            return fresh(str(out))  # relaunch-safe: the run never wrote anything yet
        if not relaunch:
            raise FileNotFoundError(
                f"--resume {resume}: no checkpoint at {checkpoint}; expected a run folder of "
                f"`ia detr train` (with --out {resume} as well, a run with no checkpoint yet "
                "starts fresh)"
            )
    progress = _checkpoint_progress(checkpoint) if checkpoint.is_file() else None
    config = recorded_config(folder / "config.json", sources)
    differing = _conflicts(args, given, config)
    if differing:
        allowed = ", ".join(sorted(_flag(name) for name in EXTENDABLE))
        raise UserError(
            f"--resume {resume}: flags differ from the run's recipe in {folder / 'config.json'}: "
            f"{'; '.join(differing)}; a resumed run may change only {allowed} (leave the others "
            "out: they are read from the run)"
        )
    extended = {name: getattr(args, name) for name in EXTENDABLE & given}
    if "quiet" in given:  # --quiet is the flag of the config's ``progress``
        extended["progress"] = not args.quiet
    config = replace(config, **extended, out=str(out), resume=str(resume), init_weights=None)
    if out.resolve() != folder.resolve() and is_first_process():
        check_output_folder(out, name="--out", hint="")
    if progress is not None:
        epoch, batch = progress
        if batch == 0 and epoch >= config.epochs:
            raise UserError(
                f"--resume {resume}: the run has done its {epoch} epochs (--epochs "
                f"{config.epochs}); pass --epochs N with N > {epoch} to train it further"
            )
    return config
