"""The in-memory format shared by the synthetic tasks: token pairs and their labels.

Shapes:
    N items, Lc conditioning length, Lx content length.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["SequencePairs", "split_disjoint"]


@dataclass
class SequencePairs:
    """A set of (conditioning, content) token pairs with labels (paper §6.1).

    Attributes:
        conditioning: Where relevance is judged, the keys' source (ordering / query), (N, Lc) long.
        content: What is read, the values' source (target / reference), (N, Lx) long.
        labels: Per-token (N, Lx) or per-example (N,) class labels, long.
    """

    conditioning: Tensor
    content: Tensor
    labels: Tensor

    def __len__(self) -> int:
        return self.content.shape[0]

    def as_dict(self) -> dict[str, Tensor]:
        """The tensors by name, for :func:`indirect_attention.training.take`."""
        return {"conditioning": self.conditioning, "content": self.content, "labels": self.labels}


def split_disjoint(
    pairs: SequencePairs, num_train: int, num_test: int
) -> tuple[SequencePairs, ...]:
    """Drop repeated (conditioning, content) pairs, then split into disjoint train and test sets.

    Raises:
        ValueError: When fewer than ``num_train + num_test`` distinct pairs were given.
    """
    rows = torch.cat([pairs.conditioning, pairs.content], dim=1)  # (N, Lc + Lx)
    seen: set[tuple[int, ...]] = set()
    keep = []
    for index, row in enumerate(rows.tolist()):
        key = tuple(row)
        if key not in seen:
            seen.add(key)
            keep.append(index)
    if len(keep) < num_train + num_test:
        raise ValueError(
            f"only {len(keep)} distinct pairs for {num_train} train + {num_test} test; draw more"
        )
    index = torch.tensor(keep[: num_train + num_test])
    parts = []
    for part in (index[:num_train], index[num_train:]):
        parts.append(
            SequencePairs(pairs.conditioning[part], pairs.content[part], pairs.labels[part])
        )
    return tuple(parts)
