"""Real-data (VOC/COCO) path of IA-DETR on a tiny synthetic VOC-like set: padded batches, training
with ``--data voc`` and the seeded pair evaluation with its controls."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from indirect_attention.detection import pairs as pairs_module
from indirect_attention.detection.data import (
    BoxRecord,
    DetectionDataset,
    ImageRecord,
    load_class_split,
)
from indirect_attention.detection.model import IADETR, DetrModelConfig
from indirect_attention.detection.pairs import PairBatcher, evaluate_pairs, training_pairs
from indirect_attention.detection.train import DetrTrainConfig, run

TINY = {"dim": 32, "heads": 2, "layers": 1, "ffn_dim": 64, "num_queries": 4, "bias_hidden": 16}


def _dataset(root: Path) -> DetectionDataset:
    from PIL import Image

    rng = np.random.default_rng(0)
    images = []
    for k in range(6):
        height, width = (48, 64) if k % 2 else (64, 40)
        pixels = (rng.random((height, width, 3)) * 255).astype(np.uint8)
        path = root / f"{k}.png"
        Image.fromarray(pixels).save(path)
        objects = (
            BoxRecord((2.0, 3.0, 20.0, 25.0), "dog"),
            BoxRecord((22.0, 5.0, 38.0, 30.0), "cat" if k < 3 else "horse"),
        )
        images.append(ImageRecord(k, str(path), width, height, objects))
    return DetectionDataset("tiny", ("dog", "cat", "horse"), images)


def test_pair_batch_pads_targets_bottom_right(tmp_path: Path) -> None:
    dataset = _dataset(tmp_path)
    split = load_class_split("voc")
    chosen = training_pairs(dataset, split, np.random.default_rng(0))[:2]
    assert chosen and all(p.category != "cat" for p in chosen)  # unseen never trains
    targets, padding, queries, truth, scales = PairBatcher(64, 24, stride=8)(chosen)
    assert targets.shape[-2:] == padding.shape[-2:] == (64, 64)
    assert queries.shape == (len(chosen), 3, 24, 24)
    for b, scale in enumerate(scales):
        assert scale == pytest.approx(1.0)
        assert padding[b].sum() == 64 * 64 - chosen[b].image.width * chosen[b].image.height
        assert (targets[b][:, padding[b]] == 0).all()
        assert ((truth[b] >= 0) & (truth[b] <= 1)).all()


def test_train_voc_and_evaluate_pairs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dataset = _dataset(tmp_path)
    monkeypatch.setattr(
        pairs_module, "load_real_data", lambda *a, **k: (dataset, load_class_split("voc"))
    )
    config = DetrTrainConfig(
        out=str(tmp_path / "run"),
        data="voc",
        data_root=str(tmp_path),
        model=DetrModelConfig(**TINY),
        epochs=1,
        batch_size=3,
        max_size=64,
        query_size=24,
        progress=False,
    )
    result = run(config)
    assert result["steps"] == 2
    torch.manual_seed(0)
    model = IADETR(DetrModelConfig(**TINY))
    scores = evaluate_pairs(
        model,
        dataset,
        load_class_split("voc"),
        which="unseen",
        draws=2,
        batcher=PairBatcher(64, 24, stride=8),
    )
    assert scores["draws"] == 2 and len(scores["ap50"]["draws"]) == 2
    assert 0.0 <= scores["wrong_query"]["mean"] <= 1.0 and 0.0 < scores["chance_floor"] <= 1.0
