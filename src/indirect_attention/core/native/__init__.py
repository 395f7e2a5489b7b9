"""Fused CPU loops for the grid MLP and the grid-biased softmax, compiled at first use.

``grid_kernels.cpp`` is compiled with the system's C++ compiler for this machine's instruction set
(``-O3 -march=native``) into a per-user cache, keyed by the source, the compiler, its flags and the
CPU, and loaded with :mod:`ctypes`. It takes about 7 s, once; nothing is downloaded. Where
no compiler is found or compilation fails, :func:`kernels` warns once and returns None, and the
callers use their plain-PyTorch path (same results, slower).

Every exported function has a declared C signature (``_SIGNATURES``) and returns a status, which
:func:`call` checks: anything but 0 raises a :class:`RuntimeError` naming the function. The
callers reach the loops only through the custom operators of :mod:`..grid_mlp` and
:mod:`..grid_attention_op`, which ``torch.compile``, ``torch.export`` and ``torch.jit.trace``
see as single operators.

Environment:
    ``INDIRECT_ATTENTION_NATIVE=0`` switches the compiled loops off.
    ``INDIRECT_ATTENTION_CACHE`` overrides the cache folder (default ``~/.cache/indirect-attention``).
    ``CXX`` names the compiler (default ``g++``, then ``c++``).
    ``INDIRECT_ATTENTION_PORTABLE=1`` builds for the compiler's default target instead of this
    CPU (no ``-march=native``: on x86-64 no AVX or FMA, so the loops take the portable paths that
    other architectures take; the tests use it to check those paths).
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

__all__ = [
    "attention_covers",
    "available",
    "call",
    "enabled",
    "kernels",
    "mlp_covers",
    "native_disabled",
    "serves",
]

_SOURCE = Path(__file__).with_name("grid_kernels.cpp")
_FLAGS = ("-O3", "-march=native", "-fopenmp", "-std=c++20", "-ffp-contract=off", "-shared", "-fPIC")
_SUFFIX = {torch.float32: "f32", torch.float64: "f64"}
_switched_off = False

_P, _I, _D = ctypes.c_void_p, ctypes.c_int64, ctypes.c_double
# Arguments of ia_<name>_<f32|f64> (pointers to contiguous tensors, sizes, scalars); every
# function but the ``*_covers`` queries takes the thread count (C int) last, and all return a C int.
_LAYOUT = (_I, _I, _I, _I, _I, _I, _I)  # BH, heads, C, Lq, start, hgt, wid
_SIGNATURES: dict[str, tuple] = {
    "mlp_covers": (_I, _I, _I),
    "mlp_forward": (_P, _I, _I, _P, _I, _P, _P, _P, _I, _I, _D, _D, _P),
    "mlp_backward": (_P, _P, _I, _I, _P, _I, _P, _P, _P, _I, _I, _D, _D, _P, _P, _P, _P),
    "softmax_forward": (_P, _P, _P, _P, *_LAYOUT, _P, _P),
    "softmax_recompute": (_P, _P, _P, _P, *_LAYOUT, _P),
    "softmax_backward": (_P, _P, _P, *_LAYOUT, _P, _P),
    "attention_covers": (_I, _I),
    # q, k, v, rows, cols, mask; BH, heads, Lq, hgt, wid, Dh, Dv, chunk; scale; out, lse
    "attention_forward": (*(_P,) * 6, *(_I,) * 8, _D, _P, _P),
    # grad_out, q, k, v, rows, cols, mask, lse, delta; sizes; scale; the five gradients
    "attention_backward": (*(_P,) * 9, *(_I,) * 8, _D, *(_P,) * 5),
}
_STATUS = {1: "sizes it does not cover", 2: "an exception in the compiled code (out of memory?)"}


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


def _flags() -> tuple[str, ...]:
    """The compiler flags: for this CPU, or portable (``INDIRECT_ATTENTION_PORTABLE=1``)."""
    if os.environ.get("INDIRECT_ATTENTION_PORTABLE", "0") == "1":
        return tuple(flag for flag in _FLAGS if not flag.startswith("-march="))
    return _FLAGS


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
            [_SOURCE.read_text(), compiler, version, " ".join(_flags()), _cpu_signature()]
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
            [compiler, *_flags(), str(_SOURCE), "-o", temporary], capture_output=True, text=True
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
        library = ctypes.CDLL(str(_build(compiler)))
        for name, arguments in _SIGNATURES.items():
            for suffix in _SUFFIX.values():
                function = getattr(library, f"ia_{name}_{suffix}")
                threads = () if name.endswith("_covers") else (ctypes.c_int,)
                function.argtypes = [*arguments, *threads]
                function.restype = ctypes.c_int
        return library
    except (OSError, AttributeError, RuntimeError, subprocess.SubprocessError) as error:
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


@torch.compiler.assume_constant_result
def _ready() -> bool:
    """Switched on and built; a constant to ``torch.compile`` (read once, when it traces)."""
    return enabled() and _load() is not None


def serves(*tensors: Tensor) -> bool:
    """Whether the compiled loops would serve these tensors, in a form ``torch.compile`` reads.

    The answer is passed to the custom operators as their ``compiled`` flag, so that the backward
    pass takes the path the forward pass took. Under ``torch.compile`` it is fixed when the
    function is traced.
    """
    if any(t.device.type != "cpu" or t.dtype not in _SUFFIX for t in tensors):
        return False
    return len({t.dtype for t in tensors}) == 1 and _ready()


@contextlib.contextmanager
def native_disabled() -> Iterator[None]:
    """Within the block, use the plain-PyTorch paths (to compare the two, or to time them)."""
    global _switched_off
    previous, _switched_off = _switched_off, True
    try:
        yield
    finally:
        _switched_off = previous


def _argument(value: object, dtype: torch.dtype) -> object:
    if isinstance(value, Tensor):
        if not value.is_contiguous() or value.dtype != dtype or value.device.type != "cpu":
            raise ValueError(
                f"native kernels need contiguous CPU {dtype} tensors, got {value.dtype} on "
                f"{value.device} with strides {value.stride()}"
            )
        return value.data_ptr()
    if value is None or isinstance(value, (float, int)):
        return value
    raise TypeError(f"unsupported kernel argument {type(value).__name__}")


def call(library: ctypes.CDLL, name: str, dtype: torch.dtype, *arguments: object) -> None:
    """Call ``ia_<name>_<f32|f64>`` with tensors as pointers; the thread count goes last.

    Raises:
        RuntimeError: The kernel returned a failure status.
    """
    function = getattr(library, f"ia_{name}_{_SUFFIX[dtype]}")
    status = function(*(_argument(a, dtype) for a in arguments), torch.get_num_threads())
    if status != 0:
        reason = _STATUS.get(status, "an unknown status")
        raise RuntimeError(
            f"compiled kernel ia_{name}_{_SUFFIX[dtype]} failed with status {status} ({reason}); "
            "INDIRECT_ATTENTION_NATIVE=0 switches the compiled loops off"
        )


def mlp_covers(
    library: ctypes.CDLL, dtype: torch.dtype, *, inputs: int, hidden: int, outputs: int
) -> bool:
    """Whether the compiled MLP serves these sizes (R inputs, K hidden units, H outputs)."""
    return bool(getattr(library, f"ia_mlp_covers_{_SUFFIX[dtype]}")(inputs, hidden, outputs))


def attention_covers(
    library: ctypes.CDLL, dtype: torch.dtype, *, head_dim: int, value_dim: int
) -> bool:
    """Whether the fused attention serves these head widths (Dh and Dv up to 8 vectors each)."""
    return bool(getattr(library, f"ia_attention_covers_{_SUFFIX[dtype]}")(head_dim, value_dim))
