"""Real-data (VOC/COCO) path of IA-DETR on a tiny synthetic VOC-like set: padded batches, training
with ``--data voc`` and the seeded pair evaluation with its controls."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from indirect_attention.detection.data import (
    BoxRecord,
    DetectionDataset,
    ImageRecord,
    load_class_split,
)
from indirect_attention.detection.evaluate import evaluate
from indirect_attention.detection.model import IADETR, DetrModelConfig
from indirect_attention.detection.preprocess import InputSpec
from indirect_attention.detection.sources import VocSource, training_pairs
from indirect_attention.detection.sources.real import pair_batch
from indirect_attention.detection.train import DetrTrainConfig, run

TINY = dict(dim=32, num_heads=2, num_layers=1, ffn_dim=64, num_queries=4, bias_hidden=16)


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
    targets, padding, queries, truth = pair_batch(chosen, InputSpec(64, 24), stride=8)
    assert targets.shape[-2:] == padding.shape[-2:] == (64, 64)
    assert queries.shape == (len(chosen), 3, 24, 24)
    for b, pair in enumerate(chosen):  # the images' longer side is 64 already: no resize
        assert padding[b].sum() == 64 * 64 - pair.image.width * pair.image.height
        assert (targets[b][:, padding[b]] == 0).all()
        x1, y1, x2, y2 = pair.boxes[0].box
        expected = [(x1 + x2) / 128, (y1 + y2) / 128, (x2 - x1) / 64, (y2 - y1) / 64]
        torch.testing.assert_close(truth[b][0], torch.tensor(expected))


def test_train_voc_and_evaluate_pairs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dataset = _dataset(tmp_path)
    monkeypatch.setattr(
        VocSource, "_dataset", lambda self, train: (dataset, load_class_split("voc"))
    )
    source = VocSource(data_root=str(tmp_path), max_size=64, query_size=24)
    config = DetrTrainConfig(
        out=str(tmp_path / "run"),
        data=source,
        model=DetrModelConfig(**TINY),
        epochs=1,
        batch_size=3,
        pretrain_steps=0,
        progress=False,
    )
    result = run(config)
    assert result["steps"] == 2
    assert "ap50" not in result  # VOC has no validation split: nothing validated
    torch.manual_seed(0)
    model = IADETR(DetrModelConfig(**TINY), input_spec=source.input_spec())
    pairs = source.eval_pairs("unseen", count=None, draws=2, seed=0)
    assert pairs is not None and len(pairs.right) == len(pairs.wrong) == 2
    for right, wrong in zip(pairs.right[0], pairs.wrong[0], strict=True):
        assert right.image_id == wrong.image_id and right.category == wrong.category == "cat"
    scores = evaluate(model, pairs)
    assert scores["draws"] == 2 and len(scores["ap50"]["draws"]) == 2
    assert 0.0 <= scores["wrong_query"]["mean"] <= 1.0 and 0.0 < scores["oracle_boxes"] <= 1.0
