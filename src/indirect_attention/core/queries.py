"""Learned queries enriched with content features (paper §5, Definition 1: q_i = e_i + x_s(i)).

Shapes:
    B batch, Lq queries, L content length, D model dim.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .indirect import check_sequence

__all__ = ["ContentEnrichedQueries"]


class ContentEnrichedQueries(nn.Module):
    """Queries ``q_i = e_i + x_s(i)``: a learned embedding plus the content feature at s(i).

    Args:
        num_queries: Number of queries Lq (learned embeddings e_i).
        dim: Model dim D.
        enrich: Add the content feature; False gives the ablation with learned embeddings only.

    Shapes:
        content (B, L, D), indices (Lq,) long in [0, L) (default ``arange(Lq)``) -> (B, Lq, D)
    """

    def __init__(self, num_queries: int, dim: int, *, enrich: bool = True) -> None:
        super().__init__()
        if num_queries <= 0 or dim <= 0:
            raise ValueError(f"num_queries and dim must be positive, got {num_queries}, {dim}")
        self.num_queries = num_queries
        self.dim = dim
        self.enrich = enrich
        self.embedding = nn.Parameter(torch.randn(num_queries, dim) * dim**-0.5)

    def forward(self, content: Tensor, *, indices: Tensor | None = None) -> Tensor:
        """Build the queries for a batch of content sequences."""
        check_sequence("content", content, dim=self.dim)
        batch, length, _ = content.shape
        embedding = self.embedding.to(content.dtype).expand(batch, -1, -1)  # (B, Lq, D)
        if not self.enrich:
            return embedding
        if indices is None:
            if length < self.num_queries:
                raise ValueError(
                    f"content has length {length} (shape {tuple(content.shape)}) but "
                    f"{self.num_queries} queries need indices s(i); pass indices of shape "
                    f"({self.num_queries},)"
                )
            return embedding + content[:, : self.num_queries]  # (B, Lq, D)
        if indices.shape != (self.num_queries,) or indices.dtype not in (torch.int32, torch.int64):
            raise ValueError(
                f"indices must be an integer tensor of shape ({self.num_queries},), "
                f"got {tuple(indices.shape)} {indices.dtype}"
            )
        # a range check reads the indices' values: eager only (under torch.compile/export it
        # would be a graph break or a data-dependent guard; the indexing below still fails there)
        in_eager = not torch.compiler.is_compiling()
        if (
            in_eager
            and indices.numel()
            and (int(indices.min()) < 0 or int(indices.max()) >= length)
        ):
            raise ValueError(f"indices must lie in [0, {length}), got {indices.tolist()}")
        return embedding + content[:, indices]  # (B, Lq, D)
