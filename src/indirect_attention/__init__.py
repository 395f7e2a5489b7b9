"""indirect-attention: the reference implementation of Indirect Attention (arXiv 2509.26015).

Keys come from one sequence (the conditioning), values from another of the same length (the
content), queries from learned embeddings plus content features, and a learned bias over the
position of each value relative to each query's reference is added to the logits (paper §5).

Shape legend (batch-first everywhere):
    B batch, H heads, Lq queries, Lk key/value length, D model dim, Dh head dim,
    R reference size (1 point, 2 interval), Ly decoder layers;
    detection adds Q object queries and N = h·w target tokens.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the names below load on first use, so `ia --help` need not import torch
    from .core import (
        ContentEnrichedQueries,
        CrossAttention,
        CrossAttentionFusion,
        DecoderOutput,
        FeedForward,
        IndirectAttention,
        IndirectDecoder,
        IndirectDecoderLayer,
        NaiveMisalignedAttention,
        PointerUpdate,
        ReferenceUpdate,
        RelativePositionBias,
        SelfAttention,
        attend,
        attend_reference,
        attention_map,
    )

__version__ = "0.1.0"

__all__ = [
    "ContentEnrichedQueries",
    "CrossAttention",
    "CrossAttentionFusion",
    "DecoderOutput",
    "FeedForward",
    "IndirectAttention",
    "IndirectDecoder",
    "IndirectDecoderLayer",
    "NaiveMisalignedAttention",
    "PointerUpdate",
    "ReferenceUpdate",
    "RelativePositionBias",
    "SelfAttention",
    "__version__",
    "attend",
    "attend_reference",
    "attention_map",
]


def __getattr__(name: str) -> Any:
    """The public names of :mod:`.core`, imported on first use (PEP 562)."""
    if name in __all__ and name != "__version__":
        return getattr(importlib.import_module(".core", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
