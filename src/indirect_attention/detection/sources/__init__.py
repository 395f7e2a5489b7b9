"""Data sources of IA-DETR (paper §6.2) behind one interface (:mod:`.base`): the embedded emoji
benchmark, Pascal VOC and COCO. ``docs/data_sources.md`` shows how to add one."""

from .base import Batch, DataSource, EpochPlan, EvalPair, EvalPairs, TrainingSet
from .emoji import EmojiSource
from .emoji_eval import EvalSet, build_eval_set, eval_set_pairs
from .real import AnnotatedSource, CocoSource, VocSource, custom_split, training_pairs

__all__ = [
    "AnnotatedSource",
    "Batch",
    "CocoSource",
    "DataSource",
    "EmojiSource",
    "EpochPlan",
    "EvalPair",
    "EvalPairs",
    "EvalSet",
    "TrainingSet",
    "VocSource",
    "build_eval_set",
    "custom_split",
    "eval_set_pairs",
    "training_pairs",
]
