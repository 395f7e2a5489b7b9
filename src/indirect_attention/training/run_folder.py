"""Safe output locations: a run folder that already holds a run is never written over unasked.

Every run writes ``config.json``, ``metrics.jsonl`` (appended) and ``results.json`` (DESIGN
rule 13), and a training run its ``checkpoint.pt``. A second run started over the same folder
would append its metrics to the first one's and replace its checkpoint, so the command line
refuses (:func:`check_output_folder`) unless told to resume or to start again
(:func:`clear_run_files`, which removes only the files a run writes; anything else in the folder
is kept).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = [
    "RUN_FILES",
    "check_output_file",
    "check_output_folder",
    "clear_run_files",
    "existing_outputs",
]

#: Files whose presence means a folder holds a run, and which ``--overwrite`` removes.
RUN_FILES = (
    "config.json",
    "metrics.jsonl",
    "results.json",
    "checkpoint.pt",
    "pretrain.json",
)


def _first_existing_parent(path: Path) -> Path:
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    return parent


def _check_parent(path: Path, name: str) -> None:
    parent = _first_existing_parent(path)
    if parent.exists() and not parent.is_dir():
        raise NotADirectoryError(
            f"{name} {path}: {parent} is a file, so nothing can be written under it"
        )


def existing_outputs(folder: str | os.PathLike[str], names: tuple[str, ...] | None) -> list[str]:
    """The entries of ``folder`` among ``names`` (``None``: any entry), sorted."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    if names is None:
        return sorted(entry.name for entry in folder.iterdir())
    return [name for name in names if (folder / name).exists()]


def check_output_folder(
    folder: str | os.PathLike[str],
    *,
    name: str,
    names: tuple[str, ...] | None = RUN_FILES,
    overwrite: bool = False,
    hint: str = "",
) -> None:
    """Refuse an output folder that is a file, or that already holds outputs, unless ``overwrite``.

    Args:
        folder: Where a command will write.
        name: How the user named it (``--out``), for the message.
        names: Entries that mean the folder holds earlier outputs (``None``: any entry).
        overwrite: The user asked to replace them.
        hint: Extra advice appended to the refusal (e.g. ``--resume``).

    Raises:
        NotADirectoryError: ``folder`` (or a parent) is a file.
        FileExistsError: ``folder`` holds outputs and ``overwrite`` is false.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(f"{name} {folder} is a file; expected a folder (new or a run's)")
    _check_parent(folder, name)
    found = existing_outputs(folder, names)
    if found and not overwrite:
        shown = ", ".join(found[:5]) + (f" and {len(found) - 5} more" if len(found) > 5 else "")
        raise FileExistsError(
            f"{name} {folder} already holds outputs ({shown}); pass --overwrite to replace them"
            f"{hint}, or choose another {name}"
        )


def check_output_file(
    path: str | os.PathLike[str], *, name: str, overwrite: bool = False, suffix: str = ""
) -> None:
    """Refuse an output file path that is a folder, or an existing file unless ``overwrite``.

    Raises:
        IsADirectoryError: ``path`` is a folder.
        NotADirectoryError: a parent of ``path`` is a file.
        FileExistsError: ``path`` exists and ``overwrite`` is false.
    """
    path = Path(path)
    if path.is_dir():
        example = f" such as {path / ('out' + suffix)}" if suffix else ""
        raise IsADirectoryError(f"{name} {path} is a folder; expected a file path{example}")
    _check_parent(path, name)
    if path.exists() and not overwrite:
        raise FileExistsError(
            f"{name} {path} already exists; pass --overwrite to replace it, or choose another path"
        )


def clear_run_files(folder: str | os.PathLike[str], names: tuple[str, ...] = RUN_FILES) -> None:
    """Remove the files ``names`` of a run in ``folder`` (a fresh start); keep everything else."""
    folder = Path(folder)
    for name in names:
        path = folder / name
        if path.is_file() or path.is_symlink():
            path.unlink(missing_ok=True)
