"""Which optional dependencies (``pip install 'indirect-attention[EXTRA]'``) each command needs.

The core install (torch, numpy, tqdm) gives the library and ``ia --help``. A command that needs
more is refused before it runs, in one line naming the extra to install, rather than failing
with an ``ImportError`` traceback, possibly after an hour of training (``ia synthetic`` draws its
figure at the end). The lists must match ``pyproject.toml``; ``tests/test_install.py`` checks it.
"""

from __future__ import annotations

import argparse
import importlib.util

from .errors import UserError

__all__ = ["EXTRAS", "ONLY_FOR", "check_extras", "needed_extras"]

#: Extra -> the modules it provides (import names).
EXTRAS: dict[str, tuple[str, ...]] = {
    "detection": ("torchvision", "scipy", "pycocotools", "PIL", "safetensors"),
    "plots": ("matplotlib",),
    "demo": ("skimage", "gradio"),  # the emoji benchmark's photo backgrounds; `ia demo`'s page
    "emoji-build": ("cairosvg",),
}

#: Modules of an extra that only these subcommands use; the extra's other commands run without
#: them (an environment made before ``ia demo`` existed still trains on the emoji benchmark).
ONLY_FOR: dict[str, tuple[tuple[str, ...], ...]] = {"gradio": (("demo",),)}

#: Subcommand path -> the extras it always needs.
_NEEDS: dict[tuple[str, ...], tuple[str, ...]] = {
    ("reproduce",): ("detection", "plots", "demo"),
    ("synthetic",): ("plots",),
    ("theory",): ("plots",),
    ("bench", "attention"): ("detection",),
    ("bench", "train"): ("detection",),
    ("bench", "gpu"): ("detection",),
    ("demo",): ("detection", "demo"),
    ("data", "build-emoji"): ("detection", "emoji-build"),
    ("data", "export"): ("detection", "demo"),
    ("data", "show"): ("detection", "demo"),
    ("detr", "show"): ("detection", "demo"),
    ("detr", "table1"): ("detection", "demo"),
}


def needed_extras(args: argparse.Namespace, path: tuple[str, ...]) -> tuple[str, ...]:
    """The extras the command at ``path`` needs with these arguments."""
    if path in _NEEDS:
        return _NEEDS[path]
    if path[0] == "detr":  # train, eval: the emoji benchmark renders its episodes
        emoji = getattr(args, "data", None) == "emoji"
        return ("detection", "demo") if emoji else ("detection",)
    return ()


def check_extras(args: argparse.Namespace, path: tuple[str, ...]) -> None:
    """Refuse the command when a module of an extra it needs is not installed.

    Raises:
        UserError: names the missing modules and the ``pip install`` that provides them.
    """
    missing = {
        extra: [
            m
            for m in EXTRAS[extra]
            if path in ONLY_FOR.get(m, (path,)) and importlib.util.find_spec(m) is None
        ]
        for extra in needed_extras(args, path)
    }
    missing = {extra: modules for extra, modules in missing.items() if modules}
    if missing:
        names = ", ".join(m for modules in missing.values() for m in modules)
        extras = ",".join(missing)
        raise UserError(
            f"ia {' '.join(path)} needs {names}, not installed; install them with "
            f"pip install 'indirect-attention[{extras}]'"
        )
