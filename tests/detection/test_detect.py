"""IA-DETR on the user's own images: ``ia detr detect`` output, the box mapping back to original
pixels, query-box cropping and the input checks (paper §6.2)."""

from __future__ import annotations

import json
import re
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from indirect_attention.cli import main
from indirect_attention.cli.detr_release import _parse_box as parse_box
from indirect_attention.detection.detect import detect
from indirect_attention.detection.draw import GAP, font_size
from indirect_attention.detection.model import IADETR, DetrModelConfig, DetrOutput
from indirect_attention.detection.preprocess import (
    InputSpec,
    as_image,
    crop_box,
    model_input,
    read_image,
)
from indirect_attention.detection.release import load_detector
from indirect_attention.training.checkpoint import save_checkpoint

TINY = dict(dim=32, num_heads=2, num_layers=2, ffn_dim=64, num_queries=5, bias_hidden=16)


def _checkpoint(path: Path) -> IADETR:
    """A tiny random detector saved as ``ia detr train`` saves it (emoji recipe, scale 0.5)."""
    torch.manual_seed(0)
    model = IADETR(DetrModelConfig(**TINY))
    extra = {"model_config": asdict(model.config), "scale": 0.5, "data": "emoji"}
    save_checkpoint(path, model, epoch=1, step=1, extra=extra)
    return model


def _save_image(path: Path, height: int, width: int, seed: int) -> np.ndarray:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return pixels


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    torch.set_num_threads(1)
    _checkpoint(tmp_path / "checkpoint.pt")
    _save_image(tmp_path / "a.png", 90, 140, seed=1)
    _save_image(tmp_path / "b.png", 200, 120, seed=2)
    _save_image(tmp_path / "query.png", 40, 30, seed=3)
    return {
        "checkpoint": tmp_path / "checkpoint.pt",
        "a": tmp_path / "a.png",
        "b": tmp_path / "b.png",
        "query": tmp_path / "query.png",
    }


def _detect_cli(files: dict[str, Path], out: Path, *extra: str) -> list[dict]:
    argv = ["detr", "detect", "--checkpoint", str(files["checkpoint"])]
    argv += ["--target", str(files["a"]), str(files["b"]), "--out", str(out), *extra]
    assert main(argv) == 0
    return json.loads(out.read_text())


def test_detect_writes_coco_json_within_each_image(files: dict[str, Path], tmp_path: Path) -> None:
    rows = _detect_cli(
        files,
        tmp_path / "det.json",
        *("--query", str(files["query"]), "--threshold", "0", "--max-detections", "3"),
    )
    sizes = {1: (90, 140), 2: (200, 120)}
    assert sorted({row["image_id"] for row in rows}) == [1, 2]
    model = load_detector(files["checkpoint"])
    for image_id, name in ((1, "a"), (2, "b")):
        mine = [row for row in rows if row["image_id"] == image_id]
        assert len(mine) == 3  # 5 proposals, at most 3 kept, threshold 0 keeps all
        assert all(row["file_name"] == str(files[name]) for row in mine)
        assert all(row["category_id"] == 1 for row in mine)
        scores = [row["score"] for row in mine]
        assert scores == sorted(scores, reverse=True) and all(0 <= s <= 1 for s in scores)
        height, width = sizes[image_id]
        for row in mine:
            x, y, w, h = row["bbox"]
            assert x >= 0 and y >= 0 and w >= 0 and h >= 0
            assert x + w <= width + 1e-3 and y + h <= height + 1e-3
        # The CLI writes exactly what the Python API finds.
        found = detect(model, files[name], files["query"], threshold=0.0, max_detections=3)
        xywh = found.boxes.clone()
        xywh[:, 2:] -= xywh[:, :2]
        assert torch.allclose(torch.tensor([row["bbox"] for row in mine]), xywh, atol=1e-4)
        assert torch.allclose(torch.tensor(scores), found.scores, atol=1e-6)


def test_detect_draws_target_with_query_beside(files: dict[str, Path], tmp_path: Path) -> None:
    draw = tmp_path / "drawn"
    rows = _detect_cli(
        files,
        tmp_path / "det.json",
        *("--query", str(files["query"]), "--threshold", "0", "--max-detections", "1"),
        *("--draw", str(draw)),
    )
    assert sorted(p.name for p in draw.iterdir()) == ["a.png", "b.png"]
    for image_id, name, (height, width) in ((1, "a", (90, 140)), (2, "b", (200, 120))):
        with Image.open(draw / f"{name}.png") as image:
            drawn = np.asarray(image.convert("RGB"))
        # The query (40 x 30) is shown at a height between H / 4 and H, aspect kept.
        q_height = min(height, max(40, height // 4))
        assert drawn.shape == (height, width + GAP + round(30 * q_height / 40), 3)
        assert (drawn[:, width : width + GAP] == 255).all()
        # Outside the drawn box (its line, and its score label above it), the target is unchanged.
        original = np.asarray(Image.open(files[name]).convert("RGB"))
        (row,) = [r for r in rows if r["image_id"] == image_id]
        x, y, w, h = row["bbox"]
        size = font_size(height, width)  # the label: 4 characters, at most 3 em wide, 2 em high
        x0, x1 = min(x, width - 3 * size) - 4, max(x + w, x + 3 * size) + 5
        untouched = np.ones((height, width), dtype=bool)
        untouched[max(0, int(y - 2 * size)) : int(y + h) + 5, max(0, int(x0)) : int(x1)] = False
        assert untouched.sum() > 0
        assert (drawn[:, :width][untouched] == original[untouched]).all()
        assert not (drawn[:, :width] == original).all()  # the box is drawn


def test_query_box_crop_equals_manual_crop(files: dict[str, Path], tmp_path: Path) -> None:
    image = read_image(files["a"])
    crop = crop_box(image, parse_box("3.2, 4.7, 20.1,15"))
    assert torch.equal(crop, image[:, 4:15, 3:21])  # rounded outwards to whole pixels
    assert torch.equal(crop_box(image, (-5.0, -5.0, 10.0, 8.0)), image[:, :8, :10])  # clipped
    # --query-box alone crops the first target; the result equals passing the crop as a file.
    pixels = np.asarray(Image.open(files["a"]))[4:15, 3:21]
    Image.fromarray(pixels).save(tmp_path / "manual.png")
    boxed = _detect_cli(files, tmp_path / "boxed.json", "--query-box", "3.2,4.7,20.1,15")
    manual = _detect_cli(files, tmp_path / "manual.json", "--query", str(tmp_path / "manual.png"))
    assert boxed == manual
    # --query with --query-box crops the query image.
    Image.fromarray(np.asarray(Image.open(files["query"]))[2:30, 1:25]).save(tmp_path / "q.png")
    from_query = _detect_cli(
        files,
        tmp_path / "q1.json",
        *("--query", str(files["query"]), "--query-box", "1,2,25,30", "--threshold", "0"),
    )
    by_hand = _detect_cli(
        files, tmp_path / "q2.json", "--query", str(tmp_path / "q.png"), "--threshold", "0"
    )
    assert from_query == by_hand and len(from_query) == 10


class _ExtentModel(IADETR):
    """Predicts, with fixed logits, boxes given as fractions of the target's valid (unpadded)
    area: a test of the mapping from the padded canvas back to original pixels."""

    fractions = torch.tensor([[0.0, 0.0, 1.0, 1.0], [0.25, 0.5, 0.75, 1.0], [0.1, 0.1, 0.2, 0.2]])
    logits = torch.tensor([2.0, 0.0, -2.0])  # sigmoid: 0.88, 0.5, 0.12

    def forward(self, targets, queries, target_padding=None, query_offsets=None) -> DetrOutput:
        height, width = targets.shape[-2:]
        rows, cols = height, width
        if target_padding is not None:
            valid = ~target_padding[0]
            rows, cols = int(valid.any(1).sum()), int(valid.any(0).sum())
        scale = torch.tensor([cols / width, rows / height] * 2)
        xyxy = self.fractions * scale
        cxcywh = torch.cat([(xyxy[:, :2] + xyxy[:, 2:]) / 2, xyxy[:, 2:] - xyxy[:, :2]], -1)
        return DetrOutput(self.logits.view(1, 1, 3), cxcywh.view(1, 1, 3, 4), None, (1, 1))


@pytest.mark.parametrize(("height", "width"), [(90, 140), (300, 70), (33, 33)])
def test_boxes_are_mapped_back_to_original_pixels(height: int, width: int) -> None:
    model = _ExtentModel(DetrModelConfig(**TINY))
    target = torch.rand(3, height, width)
    found = detect(
        model, target, torch.rand(3, 20, 20), threshold=0.5, input_spec=InputSpec(64, 24)
    )
    expected = _ExtentModel.fractions[:2] * torch.tensor([width, height, width, height])
    assert found.image_size == (height, width)
    assert torch.allclose(found.boxes, expected, atol=1e-4)  # the third scores below 0.5
    assert torch.allclose(found.scores, torch.sigmoid(torch.tensor([2.0, 0.0])))


def test_model_input_resizes_and_pads_to_the_stride() -> None:
    target = torch.rand(3, 90, 140)
    batch = model_input([target], [torch.rand(3, 20, 30)], InputSpec(128, 48), stride=8)
    # 90 x 140 -> 82 x 128 (longer side 128), padded to 88 x 128.
    assert batch.targets.shape == (1, 3, 88, 128) and batch.target_padding is not None
    padding = batch.target_padding[0]
    assert not padding[:82, :128].any() and padding[82:].all()
    assert (batch.targets[0, :, 82:] == 0).all()
    expected = torch.nn.functional.interpolate(
        target[None], size=(82, 128), mode="bilinear", antialias=True
    )[0]
    assert torch.equal(batch.targets[0, :, :82], expected)
    torch.testing.assert_close(batch.factors, torch.tensor([[128 / 140, 82 / 90]]))
    assert batch.queries.shape == (1, 3, 48, 48) and batch.image_sizes == [(90, 140)]
    # A thin target still gets a canvas the query (48 x 48) fits on; a batch shares one canvas.
    batch = model_input(
        [torch.rand(3, 20, 400), torch.rand(3, 64, 64)],
        [torch.rand(3, 9, 9)] * 2,
        InputSpec(128, 48),
        stride=8,
    )
    assert batch.targets.shape == (2, 3, 128, 128) and batch.target_padding is not None
    assert batch.target_padding[0, 6:].all() and not batch.target_padding[0, :6].any()
    assert not batch.target_padding[1].any()  # 64 x 64 -> 128 x 128 fills the canvas


def test_corrupt_and_missing_images_are_named(files: dict[str, Path], tmp_path: Path) -> None:
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"this is not a JPEG")
    with pytest.raises(ValueError, match=r"cannot read image file .*broken\.jpg"):
        read_image(broken)
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(files["a"].read_bytes()[:200])
    with pytest.raises(ValueError, match=r"cannot read image file .*truncated\.png"):
        read_image(truncated)
    with pytest.raises(ValueError, match=r"image file .*nowhere\.png does not exist"):
        read_image(tmp_path / "nowhere.png")


def test_cli_reports_bad_inputs(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG garbage")
    base = ["detr", "detect", "--checkpoint", str(files["checkpoint"]), "--out"]
    cases = [
        (["--query", str(files["query"]), "--target", str(broken)], r"broken\.png"),
        (["--query", str(broken), "--target", str(files["a"])], r"broken\.png"),
        (["--query-box", "1,2,3", "--target", str(files["a"])], r"four numbers.*'1,2,3'"),
        (["--query-box", "10,5,4,20", "--target", str(files["a"])], r"degenerate"),
        (["--query-box", "500,500,600,600", "--target", str(files["a"])], r"empty crop.*140x90"),
        (["--target", str(files["a"])], r"--query"),
    ]
    for extra, message in cases:
        assert main([*base, str(tmp_path / "x.json"), *extra]) == 2
        assert not (tmp_path / "x.json").exists()
        assert re.search(message, capsys.readouterr().err), message
    missing = tmp_path / "no" / "checkpoint.pt"
    argv = ["detr", "detect", "--checkpoint", str(missing), "--query", str(files["query"])]
    assert main([*argv, "--target", str(files["a"]), "--out", str(tmp_path / "x.json")]) == 2
    assert f"--checkpoint: '{missing}' does not exist" in capsys.readouterr().err


def test_query_and_tensor_checks_name_the_argument(files: dict[str, Path]) -> None:
    model = load_detector(files["checkpoint"])
    image = torch.rand(3, 64, 64)
    with pytest.raises(ValueError, match=r"query must have shape \(3, H, W\), got \(1, 3, 8, 8\)"):
        detect(model, image, torch.rand(1, 3, 8, 8))
    with pytest.raises(ValueError, match=r"target values must lie in \[0, 1\]"):
        detect(model, image * 255, image)
    with pytest.raises(ValueError, match=r"query is empty: shape \(3, 0, 5\)"):
        detect(model, image, torch.rand(3, 0, 5))
    with pytest.raises(
        ValueError,
        match=r"query_size=100 is bigger than allowed: .*\(3, 100, 100\).*\(3, 64, 64\).*"
        r"query_size <= target_size=64",
    ):
        detect(model, image, image, input_spec=InputSpec(target_size=64, query_size=100))
    with pytest.raises(TypeError, match="target must be a path, a PIL image"):
        detect(model, [1, 2, 3], image)
    # Every accepted kind of image gives the same answer.
    path_result = detect(model, files["a"], files["query"], threshold=0.0)
    pil = Image.open(files["a"])
    tensor = torch.from_numpy(np.asarray(Image.open(files["query"])).copy()).permute(2, 0, 1)
    other = detect(model, pil, tensor, threshold=0.0)  # PIL target, uint8 query tensor
    assert torch.equal(path_result.boxes, other.boxes)
    assert torch.equal(as_image(tensor), read_image(files["query"]))
