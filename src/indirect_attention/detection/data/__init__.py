"""Data for one-shot detection (paper §6.2): one record format, VOC/COCO readers, the one-shot
protocol, and the embedded emoji benchmark (offline; the default data set).

Shapes (emoji episodes): target ``(3, H, W)`` and query ``(3, h, w)`` float32 in [0, 1]; boxes
``(K, 4)`` float32 xyxy in target pixels.
"""

from .coco import load_coco_json, read_coco, to_coco_dict
from .emoji import ALPHA_THRESHOLD, BACKGROUNDS, SpriteBank, load_sprite_bank
from .emoji_dataset import EmojiEpisodes, EpisodeBatch, EpisodeSample, collate_episodes
from .emoji_episodes import (
    SPLITS,
    EpisodeConfig,
    EpisodeSpec,
    RenderedEpisode,
    render_episode,
    sample_episode,
)
from .episodes import (
    ClassSplit,
    OneShotPair,
    QueryCrop,
    check_no_leak,
    crop_query,
    eval_pairs,
    eval_view,
    load_class_split,
    mean_std,
    query_pool,
    sample_training_pair,
    training_view,
)
from .export import export_episodes
from .records import BoxRecord, DetectionDataset, ImageRecord
from .voc import VOC_CLASSES, read_voc, read_voc_xml

__all__ = [
    "ALPHA_THRESHOLD",
    "BACKGROUNDS",
    "SPLITS",
    "VOC_CLASSES",
    "BoxRecord",
    "ClassSplit",
    "DetectionDataset",
    "EmojiEpisodes",
    "EpisodeBatch",
    "EpisodeConfig",
    "EpisodeSample",
    "EpisodeSpec",
    "ImageRecord",
    "OneShotPair",
    "QueryCrop",
    "RenderedEpisode",
    "SpriteBank",
    "check_no_leak",
    "collate_episodes",
    "crop_query",
    "eval_pairs",
    "eval_view",
    "export_episodes",
    "load_class_split",
    "load_coco_json",
    "load_sprite_bank",
    "mean_std",
    "query_pool",
    "read_coco",
    "read_voc",
    "read_voc_xml",
    "render_episode",
    "sample_episode",
    "sample_training_pair",
    "to_coco_dict",
    "training_view",
]
