"""Training and evaluating on a COCO-format data set of one's own (``--train-json``,
``--val-json``, ``--unseen-classes``; docs/custom_data.md), on tiny generated images."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from indirect_attention.cli import main
from indirect_attention.detection.data.episodes import check_no_leak
from indirect_attention.detection.preprocess import InputSpec
from indirect_attention.detection.release import load_detector
from indirect_attention.detection.sources import CocoSource, custom_split, training_pairs

COLOURS = {
    "red": (220, 30, 30),
    "green": (30, 200, 30),
    "blue": (30, 30, 220),
    "gold": (230, 190, 0),
}


def _write_set(folder: Path, images: int, seed: int) -> Path:
    """``images`` 64 x 80 noise images, each with two coloured squares of two classes."""
    rng = np.random.default_rng(seed)
    names = list(COLOURS)
    entries, annotations = [], []
    (folder / "img").mkdir(parents=True)
    for k in range(images):
        pixels = rng.integers(0, 60, (64, 80, 3), dtype=np.uint8)
        for slot, name in enumerate((names[k % 4], names[(k + 1) % 4])):
            x, y, side = 8 + 36 * slot, int(rng.integers(4, 30)), int(rng.integers(14, 26))
            pixels[y : y + side, x : x + side] = COLOURS[name]
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": k + 1,
                    "category_id": names.index(name) + 1,
                    "bbox": [x, y, side, side],
                    "area": side * side,
                    "iscrowd": 0,
                }
            )
        Image.fromarray(pixels).save(folder / "img" / f"{k}.png")
        entries.append({"id": k + 1, "file_name": f"img/{k}.png", "width": 80, "height": 64})
    categories = [{"id": i + 1, "name": name} for i, name in enumerate(names)]
    document = {"images": entries, "annotations": annotations, "categories": categories}
    path = folder / "instances.json"
    path.write_text(json.dumps(document))
    return path


def test_custom_split_names_unknown_classes() -> None:
    split = custom_split(("red", "green", "blue"), ("blue",))
    assert split.seen == ("red", "green") and split.unseen == ("blue",)
    with pytest.raises(ValueError, match=r"\['purple'\] not among the data set's 3 classes"):
        custom_split(("red", "green", "blue"), ("purple",))
    with pytest.raises(ValueError, match="leave at least one"):
        custom_split(("red", "green"), ("red", "green"))


def test_train_and_evaluate_on_custom_coco_json(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    train_json = _write_set(tmp_path / "train", 8, seed=0)
    val_json = _write_set(tmp_path / "val", 8, seed=1)
    training = CocoSource(train_json=str(train_json), unseen_classes=("gold",))
    dataset, split = training._data(train=True)
    pairs = training_pairs(dataset, split, np.random.default_rng(0))
    check_no_leak(pairs, split)  # gold never trains
    assert pairs and {p.category for p in pairs} <= {"red", "green", "blue"}

    out = tmp_path / "run"
    argv = ["detr", "train", "--data", "coco", "--train-json", str(train_json)]
    argv += ["--val-json", str(val_json), "--unseen-classes", "gold", "--backbone", "small"]
    argv += ["--max-size", "64", "--query-size", "32", "--dim", "32", "--layers", "1"]
    argv += ["--queries", "4", "--epochs", "1", "--batch-size", "4", "--out", str(out)]
    assert main(argv) == 0
    results = json.loads((out / "results.json").read_text())
    assert 0.0 <= results["ap50"]["mean"] <= 1.0 and results["draws"] == 1
    assert results["steps"] == 2  # 8 training images, batches of 4
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["val_ap50"] == pytest.approx(results["ap50"]["mean"])
    # The checkpoint records the input sizes; inference and evaluation use them.
    model = load_detector(out / "checkpoint.pt")
    assert model.input_spec == InputSpec(target_size=64, query_size=32)
    argv = ["detr", "eval", "--checkpoint", str(out / "checkpoint.pt"), "--data", "coco"]
    argv += ["--val-json", str(val_json), "--unseen-classes", "gold", "--draws", "2"]
    assert main([*argv, "--out", str(tmp_path / "eval")]) == 0
    evaluated = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert evaluated["draws"] == 2 and len(evaluated["ap50"]["draws"]) == 2
    assert evaluated["split"] == "unseen"
