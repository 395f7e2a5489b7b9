"""IA-DETR one-shot detection (paper §6.2): data (``detection.data``) and AP50 metrics."""

from .data import EmojiEpisodes, collate_episodes, load_class_split, load_sprite_bank
from .losses import SetCriterion
from .matcher import HungarianMatcher, generalized_box_iou
from .metrics import Detection, coco_ap50, per_image_ap50, score_coco_json, voc_ap50
from .model import IADETR, DetrModelConfig, DetrOutput
from .postprocess import PostProcess

__all__ = [
    "IADETR",
    "Detection",
    "DetrModelConfig",
    "DetrOutput",
    "EmojiEpisodes",
    "HungarianMatcher",
    "PostProcess",
    "SetCriterion",
    "coco_ap50",
    "collate_episodes",
    "generalized_box_iou",
    "load_class_split",
    "load_sprite_bank",
    "per_image_ap50",
    "score_coco_json",
    "voc_ap50",
]
