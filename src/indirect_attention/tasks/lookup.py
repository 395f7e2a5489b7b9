"""Beyond the paper: marked lookup, where relevance and content live in different sequences.

The conditioning sequence holds ``length`` noise tokens and one marker at a uniformly drawn position
m; the content sequence holds ``length`` payload tokens. The label is the payload at
``(m + offset) mod length``. *Where* to read is decided by the conditioning sequence alone, *what*
is read lives in the content sequence alone. ``offset`` is the misalignment between key j and value
j: at 0 the marked key and the payload to read share an index (naive attention reads it directly);
otherwise a model must move its read position away from the key it matched, which is what the
indirect model's bias and reference update are meant to do (paper §5).

Shapes:
    N items, L length.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .models import ModelConfig, TaskLayout, TwoSequenceModel
from .pairs import SequencePairs, split_disjoint

__all__ = ["LookupConfig", "build_model", "generate", "layout", "reference_errors"]


@dataclass
class LookupConfig:
    """The marked lookup task.

    Attributes:
        length: Length L of both sequences.
        vocab_size: Noise and payload tokens; the marker is token ``vocab_size``.
        offset: Misalignment: the payload read sits ``offset`` places after the marker (cyclic).
        num_train: Training pairs.
        num_test: Test pairs, disjoint from the training pairs.
        cross_queries: Which sequence gives the cross model its queries: ``conditioning`` (the
            marked sequence; keys = values = payload, aligned) or ``content`` (the payload; keys =
            values = the marked sequence, the control in ``docs/results.md``).
    """

    length: int = 10
    vocab_size: int = 10
    offset: int = 0
    num_train: int = 1000
    num_test: int = 200
    cross_queries: str = "conditioning"


def generate(
    config: LookupConfig, *, generator: torch.Generator
) -> tuple[SequencePairs, SequencePairs]:
    """Disjoint training and test pairs (conditioning = marked noise, content = payload)."""
    count = 2 * (config.num_train + config.num_test)
    shape = (count, config.length)
    noise = torch.randint(config.vocab_size, shape, generator=generator)
    marks = torch.randint(config.length, (count,), generator=generator)
    noise.scatter_(1, marks[:, None], config.vocab_size)
    payload = torch.randint(config.vocab_size, shape, generator=generator)
    read = (marks + config.offset) % config.length  # (count,)
    labels = payload.gather(1, read[:, None]).squeeze(1)  # (count,)
    train, test = split_disjoint(
        SequencePairs(noise, payload, labels), config.num_train, config.num_test
    )
    return train, test


def layout(config: LookupConfig) -> TaskLayout:
    """One class per payload token, pooled readout (cross queries = the marked sequence)."""
    return TaskLayout(
        conditioning_vocab=config.vocab_size + 1,
        conditioning_len=config.length,
        content_vocab=config.vocab_size,
        content_len=config.length,
        num_classes=config.vocab_size,
        readout="pool",
        cross_queries=config.cross_queries,
    )


def build_model(
    kind: str, config: LookupConfig, model: ModelConfig | None = None
) -> TwoSequenceModel:
    """A :class:`TwoSequenceModel` of ``kind`` for this task."""
    return TwoSequenceModel(kind, layout(config), model or ModelConfig())


@torch.no_grad()
def reference_errors(
    model: TwoSequenceModel, pairs: SequencePairs, config: LookupConfig, *, batch_size: int = 500
) -> list[dict[str, float]]:
    """How far each layer's references sit from the position to read, m + s (paper §5's g).

    For every layer l (0 = the initial P^0) and every query of every pair: the distance, in
    positions, from the query's reference to the centre of position ``(m + offset) mod L``.

    Returns:
        One dict per layer: ``layer``, ``mean_abs_error`` (positions) and ``within_half`` (the
        share of queries whose reference lies within half a position of the read position).

    Raises:
        ValueError: When the model keeps no references (naive, cross).
    """
    if not model.uses_references:
        raise ValueError(f"model {model.kind!r} keeps no references to compare")
    model.eval()
    errors = []
    for start in range(0, len(pairs), batch_size):
        conditioning = pairs.conditioning[start : start + batch_size]  # (B, L)
        decoded = model.decode(conditioning, pairs.content[start : start + batch_size])
        marks = (conditioning == config.vocab_size).int().argmax(dim=1)  # (B,)
        read = ((marks + config.offset) % config.length).to(torch.float32)  # (B,)
        centre = (read + 0.5) / config.length  # (B,)
        references: Tensor = decoded.references[..., 0]  # (Ly + 1, B, Lq)
        errors.append((references - centre[None, :, None]).abs() * config.length)
    distance = torch.cat(errors, dim=1)  # (Ly + 1, N, Lq)
    return [
        {
            "layer": layer,
            "mean_abs_error": float(distance[layer].mean()),
            "within_half": float((distance[layer] < 0.5).float().mean()),
        }
        for layer in range(distance.shape[0])
    ]
