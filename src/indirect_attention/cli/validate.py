"""Parse-time checks of the ``ia`` flags: every number and input path is checked by argparse,
before anything runs or anything on disk is touched (DESIGN rule 10).

One vocabulary (DESIGN convention 4) means one meaning per option name across the subcommands:
``--epochs`` is a positive count wherever it appears, ``--lr`` a positive rate, ``--threads`` a
non-negative count (0: torch's default). :data:`NUMBERS` maps each option's ``dest`` to its check
and :func:`apply_checks` gives every ``int``/``float`` option of the parser its check, so a new
subcommand gets them without repeating them. Options naming files to read get an existence check
(:data:`INPUT_FILES`, :data:`INPUT_PATHS`, :data:`INPUT_FOLDERS`).
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable, Iterator
from pathlib import Path

__all__ = [
    "INPUT_FILES",
    "INPUT_FOLDERS",
    "INPUT_PATHS",
    "NUMBERS",
    "DefaultsHelpFormatter",
    "apply_checks",
    "device",
    "fraction",
    "given_dests",
    "iter_parsers",
    "non_negative_float",
    "non_negative_int",
    "port",
    "positive_float",
    "positive_int",
]


def _integer(text: str, expected: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None


def _real(text: str, expected: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """An integer >= 1 (counts: epochs, sizes, episodes, seeds)."""
    value = _integer(text, "a positive integer")
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer (>= 1), got {text!r}")
    return value


def non_negative_int(text: str) -> int:
    """An integer >= 0 (optional counts: threads, warm-up steps, seeds, offsets)."""
    value = _integer(text, "a non-negative integer")
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer (>= 0), got {text!r}")
    return value


def any_int(text: str) -> int:
    """Any integer (identifiers such as a COCO category id)."""
    return _integer(text, "an integer")


def positive_float(text: str) -> float:
    """A finite number > 0 (learning rates, time limits)."""
    value = _real(text, "a positive number")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number (> 0), got {text!r}")
    return value


def non_negative_float(text: str) -> float:
    """A finite number >= 0 (loss weights, gradient clip)."""
    value = _real(text, "a non-negative number")
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative number (>= 0), got {text!r}")
    return value


def fraction(text: str) -> float:
    """A number in [0, 1] (probabilities, score thresholds)."""
    value = _real(text, "a number in [0, 1]")
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text!r}")
    return value


def dropout(text: str) -> float:
    """A dropout rate in [0, 1)."""
    value = _real(text, "a dropout rate in [0, 1)")
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"expected a dropout rate in [0, 1), got {text!r}")
    return value


def port(text: str) -> int:
    """A TCP port to listen on, 1 to 65535."""
    value = _integer(text, "a TCP port (1 to 65535)")
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected a TCP port (1 to 65535), got {text!r}")
    return value


_DEVICE = re.compile(r"(auto|cpu|cuda(:\d+)?|mps)")


def device(text: str) -> str:
    """``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps`` (whether it exists is checked later)."""
    if not _DEVICE.fullmatch(text):
        raise argparse.ArgumentTypeError(f"expected auto, cpu, cuda, cuda:N or mps, got {text!r}")
    return text


#: The check of every numeric option, by its ``dest``.
NUMBERS: dict[str, Callable[[str], int | float]] = {
    **dict.fromkeys(
        (
            "batch_size",
            "dim",
            "draws",
            "epochs",
            "episodes",
            "eval_episodes",
            "eval_every",
            "authors_size",
            "fixed_queries",
            "fixed_size",
            "fusion_layers",
            "heads",
            "jobs",
            "layers",
            "limit",
            "max_detections",
            "max_size",
            "n",
            "num_layers",
            "num_queries",
            "num_test",
            "num_train",
            "queries",
            "query_size",
            "repeats",
            "seeds",
            "size",
            "target_size",
            "train_episodes",
        ),
        positive_int,
    ),
    **dict.fromkeys(
        (
            "checkpoint_every",
            "lr_drop",
            "offset",
            "pretrain_steps",
            "seed",
            "seed_base",
            "start",
            "threads",
            "warmup",
            "warmup_steps",
        ),
        non_negative_int,
    ),
    "category_id": any_int,
    "port": port,
    **dict.fromkeys(("lr", "lr_backbone", "max_minutes"), positive_float),
    **dict.fromkeys(("clip", "weight_class"), non_negative_float),
    **dict.fromkeys(("crop_queries", "nms", "threshold"), fraction),
    "dropout": dropout,
}

#: Options naming a file that is read.
INPUT_FILES = frozenset({"backbone_weights", "gt", "pred", "query", "train_json"})
INPUT_FILES |= {"val_json"}
#: Options naming a file or a folder that is read (a checkpoint or an export folder).
INPUT_PATHS = frozenset({"checkpoint", "init_weights", "update_readme", "target"})
#: Options naming a folder that is read.
INPUT_FOLDERS = frozenset({"data_root", "npm_dir"})


def _existing(dest: str, kind: str) -> Callable[[str], str]:
    """A check that ``text`` names an existing file, folder or either (``kind``)."""

    def check(text: str) -> str:
        if not text.strip():
            raise argparse.ArgumentTypeError(f"expected the path of a {kind}, got {text!r}")
        path = Path(text)
        if not path.exists():
            raise argparse.ArgumentTypeError(f"{text!r} does not exist (expected a {kind})")
        if kind == "file" and not path.is_file():  # a folder, a device, a socket
            raise argparse.ArgumentTypeError(f"{text!r} is a folder, expected a file")
        if kind == "folder" and not path.is_dir():
            raise argparse.ArgumentTypeError(f"{text!r} is a file, expected a folder")
        return text

    check.__name__ = f"existing {kind}"
    return check


def iter_parsers(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every parser under ``parser`` (itself included) with its subcommand path."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from iter_parsers(sub, (*path, name))


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Help that shows each option's default, unless its help already speaks of the default or
    there is none to show (``None``, an off switch)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text.lower() or action.default is None or action.default is False:
            return text
        return super()._get_help_string(action) or ""


def given_dests(parser: argparse.ArgumentParser, argv: list[str]) -> set[str]:
    """The ``dest`` of every option ``argv`` gives explicitly (``parser`` is changed: build one
    for this alone). A flag left at its default is then told apart from one given with the
    default's value."""
    options = set()
    for _, sub in iter_parsers(parser):
        for action in sub._actions:
            action.default = argparse.SUPPRESS
            if action.option_strings:
                options.add(action.dest)
    return set(vars(parser.parse_args(argv))) & options


def _is_unset(default: object) -> bool:
    return default is None or default is argparse.SUPPRESS


def apply_checks(parser: argparse.ArgumentParser) -> None:
    """Give every numeric option its check from :data:`NUMBERS`, every ``--device`` the device
    check, every input path an existence check, and every subcommand a help that shows defaults.

    Options with a type of their own (comma lists, boxes) keep it.
    """
    for _, sub in iter_parsers(parser):
        sub.formatter_class = DefaultsHelpFormatter
        for action in sub._actions:
            if not action.option_strings:
                continue
            dest = action.dest
            if action.type in (int, float) and dest in NUMBERS:
                action.type = NUMBERS[dest]
            elif dest == "device" and action.type is None:
                action.type = device
            elif action.type is None and _is_unset(action.default):
                kind = dict.fromkeys(INPUT_FILES, "file") | dict.fromkeys(
                    INPUT_PATHS, "file or folder"
                )
                kind.update(dict.fromkeys(INPUT_FOLDERS, "folder"))
                if dest in kind:
                    action.type = _existing(dest, kind[dest])
            if action.help is None and not _is_unset(action.default):
                action.help = "default: %(default)s"
