"""Where each ``ia`` command writes, checked before it runs: nothing a user made is replaced
without ``--overwrite`` (DESIGN rule 10).

:data:`OUTPUTS` lists, per subcommand, its output options: a file, or a folder and the entries in
it that mean earlier outputs (``None``: any entry). :func:`add_overwrite` gives those subcommands
``--overwrite``; :func:`check_outputs` refuses, before anything runs, an output of the wrong kind
(a folder where a file is written, a file where a folder is) and earlier outputs the user did not
ask to replace; with ``--overwrite`` it removes a run folder's own files so the run starts clean.

``ia reproduce`` is left out on purpose: running it again over the same folder resumes it (finished
parts are kept). ``ia detr table1`` resumes too; its runs' recipes are compared with the one given
(:mod:`.table_folder`), and its ``--overwrite`` starts the table again.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .errors import UserError

__all__ = ["OUTPUTS", "Output", "add_overwrite", "check_outputs", "is_first_process"]

_RUN = ("config.json", "metrics.jsonl", "results.json", "checkpoint.pt", "pretrain.json")
_FIGURES = ("figure1.png", "figure2.png", "figure4.png", "bias_maps.json", "references.json")


@dataclass(frozen=True)
class Output:
    """One output option of a command.

    Attributes:
        dest: The option's ``dest`` (``out``, ``draw``).
        kind: ``file`` or ``folder``.
        names: In a folder, the entries that are earlier outputs (``None``: any entry); a
            callable gets the parsed arguments (e.g. one drawing per target).
        run: The folder is a run folder: ``--overwrite`` removes ``names`` first.
        suffix: Extension of a file output, for the message.
    """

    dest: str
    kind: str
    names: tuple[str, ...] | Callable[[argparse.Namespace], tuple[str, ...]] | None = None
    run: bool = False
    suffix: str = ""


def _drawings(args: argparse.Namespace) -> tuple[str, ...]:
    from .detr_release import _drawing_names

    default_json = ("detections.json",) if args.out is None else ()  # --out's default with --draw
    return (*_drawing_names(args.target), *default_json)


def _eval_folder(args: argparse.Namespace) -> Path:
    """``ia detr eval``'s folder: ``--out`` or ``eval-SPLIT`` beside the checkpoint."""
    return Path(args.out) if args.out else Path(args.checkpoint).parent / f"eval-{args.split}"


#: Output options by subcommand path.
OUTPUTS: dict[tuple[str, ...], tuple[Output, ...]] = {
    ("detr", "train"): (Output("out", "folder", _RUN, run=True),),
    ("detr", "eval"): (Output("out", "folder", ("results.json",)),),
    ("detr", "eval-json"): (Output("out", "folder", ("results.json",)),),
    ("detr", "show"): (Output("out", "file", suffix=".png"),),
    ("detr", "detect"): (
        Output("out", "file", suffix=".json"),
        Output("draw", "folder", _drawings),
    ),
    ("detr", "export"): (Output("out", "folder", ("model.safetensors", "config.json")),),
    # a table resumes: its runs are compared with the recipe instead (cli/table_folder.py)
    ("detr", "table1"): (Output("out", "folder", ()),),
    ("synthetic",): (Output("out", "folder", _RUN + _FIGURES, run=True),),
    ("theory",): (Output("out", "folder", _RUN + _FIGURES, run=True),),
    ("bench", "attention"): (Output("out", "folder", _RUN, run=True),),
    ("bench", "train"): (Output("out", "folder", _RUN, run=True),),
    ("bench", "gpu"): (Output("out", "folder", _RUN, run=True),),
    ("data", "export"): (Output("out", "folder", None),),
    ("data", "show"): (Output("out", "file", suffix=".png"),),
}


def add_overwrite(parser: argparse.ArgumentParser, path: tuple[str, ...]) -> None:
    """Give the subcommand at ``path`` an ``--overwrite`` flag when it writes outputs."""
    if path in OUTPUTS and "overwrite" not in {a.dest for a in parser._actions}:
        parser.add_argument(
            "--overwrite",
            action="store_true",
            help="replace earlier outputs at the output paths (a run folder starts clean: its "
            "config, metrics, results and checkpoint are removed first; other files are kept)",
        )


def _folder(args: argparse.Namespace, path: tuple[str, ...], output: Output) -> Path | None:
    if path == ("detr", "eval") and output.dest == "out":
        return _eval_folder(args)
    if path == ("detr", "train") and args.out is None:
        return None  # --resume RUN: checked with the run's recipe (cli/resume.py)
    value = getattr(args, output.dest, None)
    return None if value is None else Path(value)


def is_first_process() -> bool:
    """True unless this process is a rank > 0 of a ``torchrun`` launch (``RANK`` is set)."""
    return os.environ.get("RANK", "0") in ("", "0")


def check_outputs(args: argparse.Namespace, path: tuple[str, ...]) -> None:
    """Check the outputs of the subcommand at ``path``; with ``--overwrite``, clear run folders.

    Raises:
        IsADirectoryError, NotADirectoryError, FileExistsError: as
            :mod:`..training.run_folder` explains, naming the option.
    """
    from ..training.run_folder import check_output_file, check_output_folder, clear_run_files

    overwrite = bool(getattr(args, "overwrite", False))
    resume = getattr(args, "resume", None)
    if not is_first_process():  # under torchrun: rank 0 checks and clears; the others only
        return  # start later, maybe after rank 0 has written the run's first files
    if overwrite and resume is not None:
        raise ValueError("--overwrite starts the run again and --resume continues it; give one")
    cleared = []
    for output in OUTPUTS.get(path, ()):
        target = _folder(args, path, output)
        if target is None:
            continue
        flag = f"--{output.dest}"
        if not str(target).strip() or str(getattr(args, output.dest, "x")).strip() == "":
            raise UserError(f"{flag} is empty; expected the path of a {output.kind}")
        if output.kind == "file":
            check_output_file(target, name=flag, overwrite=overwrite, suffix=output.suffix)
            continue
        names = output.names(args) if callable(output.names) else output.names
        if output.run and resume is not None:
            continue  # resuming writes into the run's own folder (cli/resume.py checks it)
        hint = f" or --resume {target} to continue that run" if path == ("detr", "train") else ""
        check_output_folder(target, name=flag, names=names, overwrite=overwrite, hint=hint)
        if output.run and overwrite and names is not None:
            cleared.append((target, names))
    for target, names in cleared:  # only once every output passed its check
        clear_run_files(target, names)
