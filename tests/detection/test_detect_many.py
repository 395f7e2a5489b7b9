"""``ia detr detect`` for real use: many targets, folders, --device, --nms, --quiet, transparent
images, legible labels; its JSON fed to pycocotools and back to ``ia detr eval-json``."""

from __future__ import annotations

import contextlib
import io
import json
import re
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from indirect_attention.cli import main
from indirect_attention.cli.detr_release import QUERY_CATEGORY_ID as CLI_CATEGORY_ID
from indirect_attention.detection.detect import QUERY_CATEGORY_ID, detect
from indirect_attention.detection.draw import draw_detections, font_size
from indirect_attention.detection.metrics import box_iou
from indirect_attention.detection.model import IADETR, DetrModelConfig
from indirect_attention.detection.predict import Detections
from indirect_attention.detection.preprocess import read_image
from indirect_attention.training.checkpoint import save_checkpoint

TINY = dict(dim=32, num_heads=2, num_layers=2, ffn_dim=64, num_queries=12, bias_hidden=16)


@pytest.fixture
def model_path(tmp_path: Path) -> Path:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = IADETR(DetrModelConfig(**TINY))
    extra = {
        "model_config": asdict(model.config),
        "input_spec": {"target_size": 64, "query_size": 24},
    }
    save_checkpoint(tmp_path / "run" / "checkpoint.pt", model, extra=extra)
    return tmp_path / "run"


def _image(path: Path, height: int, width: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(path)
    return path


def test_folders_and_repeated_targets(model_path: Path, tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    for k, name in enumerate(["b.jpg", "a.png", "c.PNG"]):
        _image(folder / name, 50 + 10 * k, 70, seed=k)
    (folder / "notes.txt").write_text("not an image")
    query = _image(tmp_path / "q.png", 20, 20, seed=9)
    extra = _image(tmp_path / "extra.png", 40, 40, seed=7)
    base = ["detr", "detect", "--checkpoint", str(model_path), "--query", str(query)]
    base += ["--threshold", "0", "--quiet"]
    assert main([*base, "--target", str(folder), "--target", str(extra), "--out", str(tmp_path / "1.json")]) == 0  # fmt: skip
    listed = [folder / "a.png", folder / "b.jpg", folder / "c.PNG", extra]  # sorted by name
    assert main([*base, "--target", *map(str, listed), "--out", str(tmp_path / "2.json")]) == 0
    rows = json.loads((tmp_path / "1.json").read_text())
    assert rows == json.loads((tmp_path / "2.json").read_text())
    names = {row["image_id"]: row["file_name"] for row in rows}
    assert names == {k + 1: str(path) for k, path in enumerate(listed)}
    assert CLI_CATEGORY_ID == QUERY_CATEGORY_ID == 1
    assert all(type(row["category_id"]) is int and row["category_id"] == 1 for row in rows)
    (tmp_path / "empty").mkdir()
    assert main([*base, "--target", str(tmp_path / "empty"), "--out", str(tmp_path / "3.json")]) == 2  # fmt: skip


def _greedy_nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> list[int]:
    """Textbook greedy suppression, written from its definition."""
    order, kept = list(np.argsort(-scores, kind="stable")), []
    while order:
        best = order.pop(0)
        kept.append(best)
        order = [k for k in order if box_iou(boxes[best][None], boxes[k][None])[0, 0] <= iou]
    return kept


@pytest.mark.parametrize("iou", [0.0, 0.3, 0.7])
def test_nms_equals_greedy_suppression(model_path: Path, tmp_path: Path, iou: float) -> None:
    model = IADETR.from_pretrained(model_path)
    target, query = torch.rand(3, 90, 120), torch.rand(3, 30, 30)
    everything = detect(model, target, query, threshold=0.0, max_detections=12)
    kept = _greedy_nms(everything.boxes.numpy(), everything.scores.numpy(), iou)
    found = detect(model, target, query, threshold=0.0, max_detections=12, nms_iou=iou)
    assert torch.equal(found.boxes, everything.boxes[kept])
    assert torch.equal(found.scores, everything.scores[kept])
    capped = detect(model, target, query, threshold=0.0, max_detections=2, nms_iou=iou)
    assert torch.equal(capped.boxes, found.boxes[:2])
    with pytest.raises(ValueError, match=r"nms_iou must lie in \[0, 1\], got 1.5"):
        detect(model, target, query, nms_iou=1.5)


def test_device_and_quiet(model_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    targets = [str(_image(tmp_path / f"{k}.png", 40, 60, seed=k)) for k in range(3)]
    base = ["detr", "detect", "--checkpoint", str(model_path), "--query", targets[0]]
    base += ["--target", *targets, "--out", str(tmp_path / "d.json")]
    assert main([*base, "--device", "cpu"]) == 0
    assert re.search(r"detect: 100%.*3/3", capsys.readouterr().err)  # the progress bar
    base += ["--overwrite"]  # the later runs write the same d.json
    assert main([*base, "--device", "cpu", "--quiet"]) == 0
    assert capsys.readouterr().err == ""
    assert main([*base, "--device", "toaster"]) == 2
    assert "--device: expected auto, cpu, cuda" in (err := capsys.readouterr().err)
    assert "'toaster'" in err
    if not torch.cuda.is_available():
        assert main([*base, "--device", "cuda"]) == 2
        assert "--device cuda: no CUDA device is available" in capsys.readouterr().err
    assert main([*base, "--nms", "2"]) == 2
    assert "--nms" in (err := capsys.readouterr().err) and "expected a number in [0, 1]" in err


def test_transparent_images_are_drawn_on_white(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    rgba = rng.integers(0, 256, (30, 40, 4), dtype=np.uint8)
    rgba[:10, :, 3] = 0  # fully transparent, with colours stored underneath
    rgba[:10, :, :3] = 0
    Image.fromarray(rgba, "RGBA").save(tmp_path / "t.png")
    image = read_image(tmp_path / "t.png")
    alpha = rgba[..., 3:].astype(np.float64) / 255
    expected = (rgba[..., :3] * alpha + 255 * (1 - alpha)) / 255  # over white, by hand
    assert np.abs(image.permute(1, 2, 0).numpy() - expected).max() <= 1.5 / 255
    assert (image[:, :10] == 1.0).all()
    # A palette image with a transparent colour (a GIF) likewise.
    palette = Image.fromarray(rgba[..., :3]).convert("P", palette=Image.Palette.ADAPTIVE, colors=8)
    palette.info["transparency"] = 0
    palette.save(tmp_path / "t.gif", transparency=0)
    gif = read_image(tmp_path / "t.gif")
    index = np.asarray(Image.open(tmp_path / "t.gif"))
    assert (gif.permute(1, 2, 0).numpy()[index == 0] == 1.0).all()


def _label_rows(height: int, width: int, folder: Path) -> int:
    """Rows of the drawn score label above a box at the same relative place."""
    target = torch.ones(3, height, width)
    box = torch.tensor([[0.3 * width, 0.5 * height, 0.6 * width, 0.8 * height]])
    found = Detections(box, torch.tensor([0.87]), torch.tensor([0]), (height, width))
    path = draw_detections(target, torch.ones(3, 10, 10), found, folder / f"{width}.png")
    with Image.open(path) as image:
        pixels = np.asarray(image.convert("RGB"))[: int(0.5 * height), :width]
    lime = (pixels == [0, 255, 0]).all(axis=-1)
    return int(lime.any(axis=1).sum())


def test_score_labels_scale_with_the_image(tmp_path: Path) -> None:
    small, large = _label_rows(150, 200, tmp_path), _label_rows(1500, 2000, tmp_path)
    # Digits are about 0.75 em high; the label adds a margin.
    assert font_size(150, 200) == 11 and small >= 0.8 * 11  # legible on a thumbnail
    assert font_size(1500, 2000) == 50 and large >= 0.8 * 50  # and on a large photograph
    medium = _label_rows(480, 640, tmp_path)  # font 16: above the 11-pixel floor
    assert 2.6 <= large / medium <= 3.6  # in proportion to the image (50 / 16 = 3.1)


def test_detect_json_round_trips_through_pycocotools_and_eval_json(
    model_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    data = tmp_path / "data"
    assert main(["data", "export", "--split", "test", "--limit", "3", "--quiet", "--out", str(data)]) == 0  # fmt: skip
    gt = json.loads((data / "annotations.json").read_text())
    first = gt["images"][0]
    category = first["query_category_id"]
    pred = tmp_path / "pred.json"
    argv = ["detr", "detect", "--checkpoint", str(model_path), "--quiet", "--threshold", "0"]
    argv += ["--query", str(data / first["query_file"]), "--target", str(data / "images")]
    argv += ["--gt", str(data / "annotations.json"), "--category-id", str(category)]
    assert main([*argv, "--out", str(pred)]) == 0
    rows = json.loads(pred.read_text())
    by_name = {im["file_name"]: im["id"] for im in gt["images"]}
    for row in rows:  # each target's id is its id in the ground truth
        assert by_name[str(Path(row["file_name"]).relative_to(data))] == row["image_id"]
        assert row["category_id"] == category
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(data / "annotations.json"))
        evaluator = COCOeval(coco, coco.loadRes(str(pred)), "bbox")  # a valid results file
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    out = tmp_path / "scored"
    argv = ["detr", "eval-json", "--gt", str(data / "annotations.json"), "--pred", str(pred)]
    assert main([*argv, "--metric", "coco", "--out", str(out)]) == 0
    summary = json.loads((out / "results.json").read_text())["summary"]["stats"]
    assert list(summary.values()) == pytest.approx(evaluator.stats)
    # A target the ground truth does not hold is named.
    stray = _image(tmp_path / "stray.png", 30, 30, seed=1)
    argv = ["detr", "detect", "--checkpoint", str(model_path), "--query", str(stray)]
    argv += ["--target", str(stray), "--gt", str(data / "annotations.json")]
    assert main([*argv, "--out", str(tmp_path / "x.json")]) == 2
    assert "target " + str(stray) + ": no image of" in capsys.readouterr().err
    argv = ["detr", "detect", "--checkpoint", str(model_path), "--query", str(stray)]
    argv += ["--target", str(data / "images"), "--gt", str(data / "annotations.json")]
    assert main([*argv, "--category-id", "9999", "--out", str(tmp_path / "x.json")]) == 2
    assert "--category-id 9999 is not a category of --gt" in capsys.readouterr().err


def test_eval_reads_what_detect_reads(
    model_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    model = IADETR.from_pretrained(model_path)
    model.save_pretrained(tmp_path / "export")
    results = []
    for source in (
        model_path,
        model_path / "checkpoint.pt",
        tmp_path / "export",
        tmp_path / "export" / "model.safetensors",
    ):
        out = tmp_path / f"eval-{len(results)}"
        argv = ["detr", "eval", "--checkpoint", str(source), "--episodes", "4", "--draws", "1"]
        assert main([*argv, "--quiet", "--out", str(out)]) == 0
        result = json.loads((out / "results.json").read_text())
        results.append({k: v for k, v in result.items() if k != "checkpoint"})
    assert all(result == results[0] for result in results)
    assert "eval " not in capsys.readouterr().err  # --quiet
    argv = ["detr", "eval", "--checkpoint", str(model_path), "--episodes", "4", "--draws", "1"]
    assert main(argv) == 0
    assert re.search(r"eval \w+: 100%.*8/8", capsys.readouterr().err)  # 4 right + 4 wrong
    assert (model_path / "eval-unseen" / "results.json").is_file()  # inside the run folder
