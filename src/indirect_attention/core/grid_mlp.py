"""Exact, lean evaluation of a 2-layer ReLU MLP on the offsets from anchors to a shared grid.

The position-bias MLPs of indirect attention (paper §5; BoxRPB per axis in the detector) read the
offsets ``p_g - a_qr`` from each query's anchors (a point, or an interval's two edges) to a grid of
value positions shared by the batch:

    y_qgh = sum_k W2_hk relu(sum_r W1_kr (p_g - a_qr) * scale + b1_k) + b2_h.

Evaluated the ordinary way, the (rows, G, K) hidden layer is written to memory, read back, and kept
for the backward pass; for the detector it is the largest tensor of the whole attention step. Here
it is computed a few rows at a time, small enough to stay in cache, and recomputed in the backward
pass instead of stored. The arithmetic is the plain MLP's (offsets first, then the layers), so the
results match it to round-off.

On the CPU, for R in {1, 2}, H in {1, 2, 4, 8, 16} and K a multiple of 8 floats (4 doubles), the
compiled loops of :mod:`.native` do the whole computation in one pass per row: the hidden layer
lives in vector registers, a block of units at a time, and the weight gradients are summed there
over the row's grid points (several times faster than the chunked PyTorch path, which remains
for every other case and wherever no compiler is found). Both paths sit behind the custom
operators ``indirect_attention::grid_mlp`` and ``::grid_mlp_backward`` (fake implementations for
shape propagation, the second as the first's autograd), so ``torch.compile``, ``torch.export``
and ``torch.jit.trace`` see one operator.

Shapes:
    N rows (any leading dims, flattened), R anchors per row, G grid points, K hidden units,
    H outputs.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from . import native

__all__ = ["grid_mlp", "grid_mlp_backward_op", "grid_mlp_op", "grid_mlp_reference"]

_CHUNK_ELEMENTS = 2**17  # hidden-layer elements per chunk: 512 KiB in float32, fits in L2


def _log_base(scale: float, log_offsets: bool) -> float:
    """log2(scale) for the signed log code, 0 for plain offsets."""
    if not log_offsets:
        return 0.0
    if scale <= 1.0:
        raise ValueError(f"log offsets need scale > 1, got {scale}")
    return math.log2(scale)


def _encode(scaled: Tensor, log_base: float) -> Tensor:
    """Plain scaled offsets, or ``sign(s) log2(1 + |s|) / log_base`` (same shape)."""
    if log_base <= 0.0:
        return scaled
    return torch.sign(scaled) * torch.log2(1.0 + scaled.abs()) / log_base


def grid_mlp_reference(
    anchors: Tensor, grid: Tensor, mlp: nn.Sequential, scale: float, *, log_offsets: bool = False
) -> Tensor:
    """The plain evaluation (materialises the hidden layer).

    Shapes:
        anchors (..., R), grid (G,) -> (..., G, H)
    """
    scaled = (grid[:, None] - anchors[..., None, :]) * scale  # (..., G, R)
    return mlp(_encode(scaled, _log_base(scale, log_offsets)))  # (..., G, H)


def _offsets(anchors: Tensor, grid: Tensor, scale: float, log_base: float) -> Tensor:
    return _encode((grid[None, :, None] - anchors[:, None, :]) * scale, log_base)  # (C, G, R)


def _log_slope(anchors: Tensor, grid: Tensor, scale: float, log_base: float) -> Tensor:
    """d code / d anchor of the log code; 0 where s = 0, as autograd computes it via sign(s)."""
    scaled = (grid[None, :, None] - anchors[:, None, :]) * scale  # (C, G, R)
    slope = -scale / ((1.0 + scaled.abs()) * math.log(2.0) * log_base)
    return torch.where(scaled == 0, torch.zeros_like(slope), slope)  # (C, G, R)


def _forward_plain(anchors, grid, w1, b1, w2, scale, log_base, chunk, out) -> None:
    """The chunked PyTorch evaluation, written into ``out`` (N, G, H)."""
    for start in range(0, anchors.shape[0], chunk):
        stop = min(start + chunk, anchors.shape[0])
        offsets = _offsets(anchors[start:stop], grid, scale, log_base).flatten(0, 1)  # (C·G, R)
        hidden = torch.addmm(b1, offsets, w1.t()).clamp_(min=0)  # (C·G, K)
        torch.matmul(hidden, w2.t(), out=out[start:stop].view(-1, w2.shape[0]))


def _backward_plain(grad_out, anchors, grid, w1, b1, w2, scale, log_base, chunk, grads) -> None:
    """The chunked PyTorch gradients, written into ``grads`` = (anchors, w1, b1, w2)."""
    grad_anchors, grad_w1, grad_b1, grad_w2 = grads
    num_points = grid.shape[0]
    for start in range(0, anchors.shape[0], chunk):
        stop = min(start + chunk, anchors.shape[0])
        rows = anchors[start:stop]
        offsets = _offsets(rows, grid, scale, log_base).flatten(0, 1)  # (C·G, R)
        pre = torch.addmm(b1, offsets, w1.t())  # (C·G, K)
        grad_chunk = grad_out[start:stop].flatten(0, 1)  # (C·G, H)
        # ReLU's own backward kernel: one pass, no boolean mask tensor
        grad_pre = torch.ops.aten.threshold_backward(grad_chunk @ w2, pre, 0.0)  # (C·G, K)
        grad_w2.addmm_(grad_chunk.t(), pre.clamp_(min=0))  # pre is the hidden layer now
        grad_w1.addmm_(grad_pre.t(), offsets)
        # Each row's b1 (and, with plain offsets, its anchors: the slope is -scale at every
        # point) sees the hidden gradient summed over the grid: sum first
        per_row = grad_pre.view(stop - start, num_points, -1).sum(1)  # (C, K)
        grad_b1 += per_row.sum(0)
        if log_base > 0.0:
            slope = _log_slope(rows, grid, scale, log_base)  # (C, G, R)
            grad_offsets = (grad_pre @ w1).view_as(slope)  # (C, G, R)
            grad_anchors[start:stop] = (grad_offsets * slope).sum(1)
        else:
            grad_anchors[start:stop] = (per_row @ w1) * -scale  # (C, R)


def _library(compiled: bool, anchors: Tensor, w1: Tensor, w2: Tensor):
    """The compiled library where it is asked for and serves these sizes, else None."""
    library = native.kernels(anchors, w1, w2) if compiled else None
    if library is None or not native.mlp_covers(
        library, anchors.dtype, inputs=w1.shape[1], hidden=w1.shape[0], outputs=w2.shape[0]
    ):
        return None
    return library


@torch.library.custom_op("indirect_attention::grid_mlp", mutates_args=())
def grid_mlp_op(
    anchors: Tensor,
    grid: Tensor,
    w1: Tensor,
    b1: Tensor,
    w2: Tensor,
    scale: float,
    log_base: float,
    chunk: int,
    compiled: bool,
) -> Tensor:
    """``w2 relu(w1 code((grid - anchors) * scale) + b1)``, no output bias (a custom operator).

    Runs the compiled loops where ``compiled`` and they serve the sizes, else the chunked PyTorch
    path; the two agree to round-off. ``compiled`` is decided by the caller
    (:func:`native.serves`) so that the backward pass takes the forward pass's path.

    Shapes:
        anchors (N, R), grid (G,), w1 (K, R), b1 (K,), w2 (H, K) -> (N, G, H)
    """
    anchors, grid = anchors.contiguous(), grid.contiguous()
    w1, b1, w2 = w1.contiguous(), b1.contiguous(), w2.contiguous()
    num_rows, num_points = anchors.shape[0], grid.shape[0]
    out = anchors.new_empty((num_rows, num_points, w2.shape[0]))  # (N, G, H)
    library = _library(compiled, anchors, w1, w2)
    if library is None:
        _forward_plain(anchors, grid, w1, b1, w2, scale, log_base, chunk, out)
    else:
        native.call(
            library, "mlp_forward", anchors.dtype,
            anchors, num_rows, anchors.shape[1], grid, num_points,
            w1, b1, w2, w1.shape[0], w2.shape[0], scale, log_base, out,
        )  # fmt: skip
    return out


@grid_mlp_op.register_fake
def _grid_mlp_fake(anchors, grid, w1, b1, w2, scale, log_base, chunk, compiled):
    return anchors.new_empty((anchors.shape[0], grid.shape[0], w2.shape[0]))  # (N, G, H)


@torch.library.custom_op("indirect_attention::grid_mlp_backward", mutates_args=())
def grid_mlp_backward_op(
    grad_out: Tensor,
    anchors: Tensor,
    grid: Tensor,
    w1: Tensor,
    b1: Tensor,
    w2: Tensor,
    scale: float,
    log_base: float,
    chunk: int,
    compiled: bool,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Gradients of :func:`grid_mlp_op` for anchors, w1, b1 and w2 (the compiled loops recompute
    the hidden layer per row instead of storing it; the PyTorch path per chunk of rows).

    Shapes:
        grad_out (N, G, H) -> (N, R), (K, R), (K,), (H, K)
    """
    grad_out = grad_out.to(anchors.dtype).contiguous()
    anchors, grid = anchors.contiguous(), grid.contiguous()
    w1, b1, w2 = w1.contiguous(), b1.contiguous(), w2.contiguous()
    grads = (torch.empty_like(anchors), torch.zeros_like(w1), torch.zeros_like(b1),
             torch.zeros_like(w2))  # fmt: skip
    library = _library(compiled, anchors, w1, w2)
    if library is None:
        _backward_plain(grad_out, anchors, grid, w1, b1, w2, scale, log_base, chunk, grads)
    else:
        native.call(
            library, "mlp_backward", anchors.dtype,
            grad_out, anchors, anchors.shape[0], anchors.shape[1], grid, grid.shape[0],
            w1, b1, w2, w1.shape[0], w2.shape[0], scale, log_base, *grads,
        )  # fmt: skip
    return grads


@grid_mlp_backward_op.register_fake
def _grid_mlp_backward_fake(grad_out, anchors, grid, w1, b1, w2, scale, log_base, chunk, compiled):
    return tuple(t.new_empty(t.shape) for t in (anchors, w1, b1, w2))  # contiguous, as computed


def _setup_context(ctx, inputs, output) -> None:
    anchors, grid, w1, b1, w2, scale, log_base, chunk, compiled = inputs
    ctx.save_for_backward(anchors, grid, w1, b1, w2)
    ctx.settings = (scale, log_base, chunk, compiled)


def _backward(ctx, grad_out):
    anchors, grid, w1, b1, w2 = ctx.saved_tensors
    grad_anchors, grad_w1, grad_b1, grad_w2 = grid_mlp_backward_op(
        grad_out, anchors, grid, w1, b1, w2, *ctx.settings
    )
    return grad_anchors, None, grad_w1, grad_b1, grad_w2, None, None, None, None


grid_mlp_op.register_autograd(_backward, setup_context=_setup_context)


def grid_mlp(
    anchors: Tensor,
    grid: Tensor,
    mlp: nn.Sequential,
    scale: float = 1.0,
    *,
    log_offsets: bool = False,
) -> Tensor:
    """Evaluate ``mlp(code((p_g - anchors) * scale))`` for every grid point, exactly and lean.

    Args:
        anchors: Each row's anchor coordinates (a point, or an interval's two edges).
        grid: Grid coordinates shared by every row (no gradient flows to them).
        mlp: ``Sequential(Linear(R, K), ReLU, Linear(K, H))``; its parameters get gradients.
        scale: Multiplier of the offsets.
        log_offsets: Code the scaled offsets s as ``sign(s) log2(1 + |s|) / log2(scale)``
            (:class:`RelativePositionBias`'s compression; needs scale > 1); else code(s) = s.

    Returns:
        The MLP output on the grid; equal to :func:`grid_mlp_reference` up to round-off.

    Shapes:
        anchors (..., R), grid (G,) -> (..., G, H)
    """
    first, second = mlp[0], mlp[2]
    if anchors.shape[-1] != first.in_features or grid.dim() != 1:
        raise ValueError(
            f"grid_mlp needs anchors (..., {first.in_features}) and grid (G,); got anchors "
            f"{tuple(anchors.shape)}, grid {tuple(grid.shape)}"
        )
    if first.bias is None:
        raise ValueError("grid_mlp needs a bias in the first layer")
    device_type = anchors.device.type
    if torch.is_autocast_enabled(device_type):
        # Mixed precision: the bias feeds a softmax, so it is computed in float32; autocast is
        # switched off so the chunked kernel sees one dtype throughout.
        with torch.autocast(device_type=device_type, enabled=False):
            return grid_mlp(anchors.float(), grid, mlp, scale, log_offsets=log_offsets)
    leading = anchors.shape[:-1]
    flat = anchors.reshape(-1, anchors.shape[-1]).contiguous()  # (N, R)
    chunk = max(1, _CHUNK_ELEMENTS // max(1, grid.shape[0] * first.out_features))
    grid = grid.detach().to(flat.dtype).contiguous()  # (G,)
    out = grid_mlp_op(
        flat,
        grid,
        first.weight,
        first.bias,
        second.weight,
        float(scale),
        _log_base(scale, log_offsets),
        chunk,
        native.serves(flat, grid, first.weight, second.weight),
    )  # (N, G, H)
    if second.bias is not None:
        out = out + second.bias
    return out.reshape(*leading, grid.shape[0], second.out_features)  # (..., G, H)
