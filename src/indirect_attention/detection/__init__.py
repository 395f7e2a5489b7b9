"""IA-DETR one-shot detection (paper §6.2): data (``detection.data``) and AP50 metrics."""

from .data import EmojiEpisodes, collate_episodes, load_class_split, load_sprite_bank
from .metrics import Detection, coco_ap50, per_image_ap50, score_coco_json, voc_ap50

__all__ = [
    "Detection",
    "EmojiEpisodes",
    "coco_ap50",
    "collate_episodes",
    "load_class_split",
    "load_sprite_bank",
    "per_image_ap50",
    "score_coco_json",
    "voc_ap50",
]
