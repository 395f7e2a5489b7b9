"""The detector shipped in the package: its files, its card's numbers measured again, and the
one-line ``ia detr detect`` on held-out emoji scenes checked against their ground truth."""

from __future__ import annotations

import hashlib
import json
import re

import pytest
import torch
from torchvision.io import write_png
from torchvision.ops import box_iou

from indirect_attention.cli import main
from indirect_attention.detection.model import IADETR
from indirect_attention.detection.pretrained import (
    CARD_EPISODES,
    SHIPPED_DIR,
    card_metrics,
    shipped_path,
)
from indirect_attention.detection.release import load_detector
from indirect_attention.detection.sources.emoji import EmojiSource

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def shipped() -> IADETR:
    return IADETR.from_pretrained()


def test_shipped_files_fit_the_package_and_the_card_names_their_hash():
    folder = shipped_path()
    weights = (folder / "model.safetensors").read_bytes()
    total = sum(p.stat().st_size for p in folder.iterdir())
    assert total <= 25 * 2**20, f"{total / 2**20:.1f} MB over the 25 MB of the issue"
    card = (folder / "README.md").read_text()
    assert hashlib.sha256(weights).hexdigest() in card
    for needed in ("emoji", "real photograph", "ATTRIBUTION.md", "ia detr train", "--data coco"):
        assert needed in card, needed


def test_from_pretrained_without_argument_is_the_shipped_folder(shipped):
    other = load_detector(SHIPPED_DIR)
    assert shipped.config == other.config
    assert shipped.input_spec == other.input_spec
    for (name, a), (_, b) in zip(
        shipped.state_dict().items(), other.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name


def test_card_numbers_are_measured_again(shipped):
    recorded = json.loads((SHIPPED_DIR / "card_metrics.json").read_text())
    measured = card_metrics(shipped)
    assert measured["episodes"] == recorded["episodes"] == CARD_EPISODES
    assert measured["splits"].keys() == recorded["splits"].keys()
    for split, numbers in recorded["splits"].items():
        for key, value in numbers.items():
            assert measured["splits"][split][key] == pytest.approx(value, abs=1e-6), (split, key)
    card = (SHIPPED_DIR / "README.md").read_text()
    for split, numbers in recorded["splits"].items():  # the card's table shows these numbers
        row = re.search(rf"^\| {split} \| ([0-9.]+) \| ([0-9.]+) \|", card, flags=re.MULTILINE)
        assert row is not None, split
        assert float(row[1]) == pytest.approx(numbers["ap50"], abs=5e-4)
        assert float(row[2]) == pytest.approx(numbers["wrong_query"], abs=5e-4)


def test_one_line_detect_finds_the_query_class_on_held_out_scenes(tmp_path):
    """``ia detr detect --query Q --target T --draw DIR``, no checkpoint, no --out: the JSON in
    DIR holds a box on an instance of the query's class (IoU >= 0.5) in most held-out scenes."""
    pairs = EmojiSource().eval_pairs("seen", count=6, draws=1, seed=123)
    truth = {record.image_id: record for record in pairs.ground_truth}
    found = 0
    for k, pair in enumerate(pairs.right[0]):
        target, query = tmp_path / f"t{k}.png", tmp_path / f"q{k}.png"
        write_png((pair.target() * 255).round().to(torch.uint8), str(target))
        write_png((pair.query() * 255).round().to(torch.uint8), str(query))
        out = tmp_path / f"drawn{k}"
        assert main(["detr", "detect", "--query", str(query), "--target", str(target),
                     "--draw", str(out), "--quiet"]) == 0  # fmt: skip
        rows = json.loads((out / "detections.json").read_text())
        assert (out / f"t{k}.png").is_file()
        boxes = [o.box for o in truth[pair.image_id].objects if o.category == pair.category]
        if not rows:
            continue
        predicted = torch.tensor([[x, y, x + w, y + h] for x, y, w, h in (r["bbox"] for r in rows)])
        found += bool((box_iou(predicted, torch.tensor(boxes)) >= 0.5).any())
    assert found >= 4, f"the query's class was found in {found} of 6 held-out scenes"


def test_the_recorded_threshold_is_detects_default_and_survives_save_and_load(shipped, tmp_path):
    from indirect_attention.detection.detect import detect

    recorded = json.loads((SHIPPED_DIR / "config.json").read_text())["score_threshold"]
    assert shipped.score_threshold == recorded and 0.0 < recorded < 1.0
    pair = EmojiSource().eval_pairs("unseen", count=1, draws=1, seed=7).right[0][0]
    target, query = pair.target(), pair.query()
    default = detect(shipped, target, query)
    explicit = detect(shipped, target, query, threshold=recorded)
    assert torch.equal(default.boxes, explicit.boxes)
    assert bool((default.scores >= recorded).all())
    assert len(detect(shipped, target, query, threshold=0.0).scores) >= len(default.scores)
    shipped.save_pretrained(tmp_path / "copy")
    assert IADETR.from_pretrained(tmp_path / "copy").score_threshold == recorded
