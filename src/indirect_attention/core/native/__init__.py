"""Fused CPU loops for the grid MLP and the grid-biased softmax, compiled at first use.

``grid_kernels.cpp`` is compiled with the system's C++ compiler for this machine's instruction set
(``-O3 -march=native``) into a per-user cache, keyed by the source, the compiler, its flags and the
CPU, and loaded with :mod:`ctypes`. It takes about 7 s, once; nothing is downloaded. Where
no compiler is found or compilation fails, :func:`kernels` warns once and returns None, and the
callers use their plain-PyTorch path (same results, slower).

Environment:
    ``INDIRECT_ATTENTION_NATIVE=0`` switches the compiled loops off.
    ``INDIRECT_ATTENTION_CACHE`` overrides the cache folder (default ``~/.cache/indirect-attention``).
    ``CXX`` names the compiler (default ``g++``, then ``c++``).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import Tensor

__all__ = ["available", "call", "enabled", "kernels", "native_disabled"]

_SOURCE = Path(__file__).with_name("grid_kernels.cpp")
_FLAGS = ("-O3", "-march=native", "-fopenmp", "-std=c++20", "-ffp-contract=off", "-shared", "-fPIC")
_SUFFIX = {torch.float32: "f32", torch.float64: "f64"}
_switched_off = False


def _compiler() -> str | None:
    for name in (os.environ.get("CXX"), "g++", "c++"):
        if name and shutil.which(name):
            return name
    return None


def _cpu_signature() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return line
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _cache_dir() -> Path:
    root = (
        os.environ.get("INDIRECT_ATTENTION_CACHE") or Path.home() / ".cache" / "indirect-attention"
    )
    return Path(root) / "kernels"


def _build(compiler: str) -> Path:
    """Compile the source into the cache (atomically: temp file, then rename) and return it."""
    version = subprocess.run(
        [compiler, "--version"], capture_output=True, text=True, check=True
    ).stdout
    key = hashlib.sha256(
        "\n".join(
            [_SOURCE.read_text(), compiler, version, " ".join(_FLAGS), _cpu_signature()]
        ).encode()
    ).hexdigest()[:16]
    target = _cache_dir() / f"grid_kernels-{key}.so"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(suffix=".so", dir=target.parent)
    os.close(handle)
    try:
        result = subprocess.run(
            [compiler, *_FLAGS, str(_SOURCE), "-o", temporary], capture_output=True, text=True
        )
        if result.returncode != 0:
            raise RuntimeError(f"{compiler} failed:\n{result.stderr[-2000:]}")
        os.replace(temporary, target)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
    return target


@functools.cache
def _load() -> ctypes.CDLL | None:
    compiler = _compiler()
    if compiler is None:
        warnings.warn(
            "no C++ compiler found (set CXX); indirect attention uses its plain-PyTorch CPU path",
            stacklevel=3,
        )
        return None
    try:
        return ctypes.CDLL(str(_build(compiler)))
    except (OSError, RuntimeError, subprocess.SubprocessError) as error:
        warnings.warn(
            f"compiling the fused CPU kernels failed ({error}); using the plain-PyTorch path",
            stacklevel=3,
        )
        return None


def enabled() -> bool:
    """Whether the compiled loops are switched on (they may still be unavailable)."""
    return not _switched_off and os.environ.get("INDIRECT_ATTENTION_NATIVE", "1") != "0"


def kernels(*tensors: Tensor) -> ctypes.CDLL | None:
    """The compiled library if it can serve these tensors (CPU, float32 or float64), else None."""
    if not enabled():
        return None
    if any(t.device.type != "cpu" or t.dtype not in _SUFFIX for t in tensors):
        return None
    if len({t.dtype for t in tensors}) != 1:
        return None
    return _load()


def available() -> bool:
    """Whether the compiled loops would serve float32 CPU tensors here (switched on and built)."""
    return kernels(torch.zeros(1)) is not None


@contextlib.contextmanager
def native_disabled() -> Iterator[None]:
    """Within the block, use the plain-PyTorch paths (to compare the two, or to time them)."""
    global _switched_off
    previous, _switched_off = _switched_off, True
    try:
        yield
    finally:
        _switched_off = previous


def _argument(value: object) -> object:
    if isinstance(value, Tensor):
        if not value.is_contiguous():
            raise ValueError(
                f"native kernels need contiguous tensors, got strides {value.stride()}"
            )
        return ctypes.c_void_p(value.data_ptr())
    if value is None:
        return ctypes.c_void_p(None)
    if isinstance(value, float):
        return ctypes.c_double(value)
    if isinstance(value, int):
        return ctypes.c_int64(value)
    raise TypeError(f"unsupported kernel argument {type(value).__name__}")


def call(library: ctypes.CDLL, name: str, dtype: torch.dtype, *arguments: object) -> bool:
    """Call ``ia_<name>_<f32|f64>`` with tensors as pointers; the thread count goes last.

    Returns:
        False where the kernel does not cover these sizes (the caller then takes its plain path).
    """
    function = getattr(library, f"ia_{name}_{_SUFFIX[dtype]}")
    function.restype = ctypes.c_int
    status = function(*(_argument(a) for a in arguments), ctypes.c_int(torch.get_num_threads()))
    return status == 0
