"""The attention core: imports torch only and knows nothing of tasks (paper §3-§5).

Shape legend, used by every docstring of the package:
    B batch, H heads, Lq queries, Lk key/value length, D model dim, Dh head dim,
    R reference size (1 point, 2 interval), Ly decoder layers.
    Detection adds Q object queries and N = h·w target tokens.
"""

from .baselines import CrossAttention, NaiveMisalignedAttention, SelfAttention
from .blocks import FeedForward, IndirectDecoderLayer
from .decoder import CrossAttentionFusion, DecoderOutput, IndirectDecoder
from .functional import (
    GridBias,
    attend,
    attend_reference,
    attention_map,
    merge_heads,
    padding_mask_to_bias,
    split_heads,
)
from .grid_mlp import grid_mlp
from .indirect import IndirectAttention
from .position_bias import (
    PointerUpdate,
    ReferenceUpdate,
    RelativePositionBias,
    inverse_sigmoid,
    position_references,
    relative_offsets,
    value_positions,
)
from .queries import ContentEnrichedQueries

__all__ = [
    "ContentEnrichedQueries",
    "CrossAttention",
    "CrossAttentionFusion",
    "DecoderOutput",
    "FeedForward",
    "GridBias",
    "IndirectAttention",
    "IndirectDecoder",
    "IndirectDecoderLayer",
    "NaiveMisalignedAttention",
    "PointerUpdate",
    "ReferenceUpdate",
    "RelativePositionBias",
    "SelfAttention",
    "attend",
    "attend_reference",
    "attention_map",
    "grid_mlp",
    "inverse_sigmoid",
    "merge_heads",
    "padding_mask_to_bias",
    "position_references",
    "relative_offsets",
    "split_heads",
    "value_positions",
]
