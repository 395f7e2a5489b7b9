"""IA-DETR one-shot detection (paper §6.2).

One way in (:mod:`.preprocess`), the model (:mod:`.model`), one way out (:mod:`.predict`); data
sources (:mod:`.sources`), one evaluation protocol (:mod:`.evaluate`), training (:mod:`.train`),
loading and export (:mod:`.release`) and detection on one's own images (:mod:`.detect`).
"""

from .data import EmojiEpisodes, collate_episodes, load_class_split, load_sprite_bank
from .losses import HungarianMatcher, SetCriterion, generalized_box_iou
from .metrics import Detection, coco_ap50, per_image_ap50, score_coco_json, voc_ap50
from .model import IADETR, DetrModelConfig, DetrOutput
from .predict import Detections, predict
from .preprocess import InputSpec, ModelInput, model_input

__all__ = [
    "IADETR",
    "Detection",
    "Detections",
    "DetrModelConfig",
    "DetrOutput",
    "EmojiEpisodes",
    "HungarianMatcher",
    "InputSpec",
    "ModelInput",
    "SetCriterion",
    "coco_ap50",
    "collate_episodes",
    "generalized_box_iou",
    "load_class_split",
    "load_sprite_bank",
    "model_input",
    "per_image_ap50",
    "predict",
    "score_coco_json",
    "voc_ap50",
]
