"""``ia data show|export`` and ``ia detr eval-json`` end to end, in-process."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from indirect_attention.cli import main
from indirect_attention.detection.data.coco import read_coco, to_coco_dict
from indirect_attention.detection.data.emoji_dataset import EmojiEpisodes
from indirect_attention.detection.data.voc import read_voc


def test_show_draws_a_grid(tmp_path: Path) -> None:
    out = tmp_path / "grid.png"
    assert main(["data", "show", "--split", "test", "--n", "3", "--out", str(out)]) == 0
    with Image.open(out) as image:
        width, height = image.size
    assert width > 2 * 256 and height > 2 * 256  # two columns, two rows of panels


def test_export_coco_round_trip_and_perfect_score(tmp_path: Path) -> None:
    assert (
        main(
            [
                "data",
                "export",
                "--format",
                "coco",
                "--split",
                "test",
                "--limit",
                "3",
                "--out",
                str(tmp_path),
            ]
        )
        == 0
    )
    data = read_coco(tmp_path / "annotations.json")
    document = json.loads((tmp_path / "annotations.json").read_text())
    episodes = EmojiEpisodes("test", length=3)
    names = {c["id"]: c["name"] for c in document["categories"]}
    for image, entry in zip(data.images, document["images"], strict=True):
        episode = episodes.episode(entry["episode"])
        assert np.array_equal(np.asarray(Image.open(image.file_name)), episode.target)
        assert np.array_equal(np.asarray(Image.open(tmp_path / entry["query_file"])), episode.query)
        assert names[entry["query_category_id"]] == episode.spec.category
        assert [o.box for o in image.objects] == [tuple(map(float, b)) for b in episode.boxes]
        assert all(o.category == episode.spec.category for o in image.objects)
    assert {d["image_id"] for d in document["distractors"]} == {1, 2, 3}
    # Predictions equal to the ground truth score AP50 = 1 under both metrics.
    preds = [{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 0.9}
             for a in document["annotations"]]  # fmt: skip
    (tmp_path / "pred.json").write_text(json.dumps(preds))
    for metric in ("voc", "coco"):
        args = ["detr", "eval-json", "--gt", str(tmp_path / "annotations.json"), "--pred", str(tmp_path / "pred.json"),
                "--metric", metric, "--out", str(tmp_path / metric)]  # fmt: skip
        assert main(args) == 0
        result = json.loads((tmp_path / metric / "results.json").read_text())
        assert result["ap50"] == pytest.approx(1.0)
        assert set(result["per_class"]) == {o.category for im in data.images for o in im.objects}


def test_export_voc_round_trip(tmp_path: Path) -> None:
    assert (
        main(
            [
                "data",
                "export",
                "--format",
                "voc",
                "--split",
                "val",
                "--limit",
                "2",
                "--out",
                str(tmp_path),
            ]
        )
        == 0
    )
    data = read_voc(tmp_path, "val", classes=None)
    episodes = EmojiEpisodes("val", length=2)
    for k, image in enumerate(data.images):
        episode = episodes.episode(k)
        assert [o.box for o in image.objects] == [tuple(map(float, b)) for b in episode.boxes]
        assert (tmp_path / "Queries" / f"val_{k:06d}.png").is_file()


# Hand-written ground truth and predictions (independent of every writer in the package).
HAND_GT = {
    "images": [
        {"id": 1, "file_name": "1.jpg", "width": 100, "height": 100},
        {"id": 2, "file_name": "2.jpg", "width": 100, "height": 100},
    ],
    "annotations": [
        {
            "id": 1,
            "image_id": 1,
            "category_id": 1,
            "bbox": [10, 10, 20, 20],
            "area": 400,
            "iscrowd": 0,
        },
        {
            "id": 2,
            "image_id": 1,
            "category_id": 1,
            "bbox": [60, 60, 30, 30],
            "area": 900,
            "iscrowd": 0,
        },
        {
            "id": 3,
            "image_id": 2,
            "category_id": 1,
            "bbox": [0, 0, 50, 50],
            "area": 2500,
            "iscrowd": 0,
        },
        {
            "id": 4,
            "image_id": 2,
            "category_id": 2,
            "bbox": [50, 50, 40, 40],
            "area": 1600,
            "iscrowd": 0,
        },
    ],
    "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": "sheep"}],
}
HAND_PRED = [
    {"image_id": 1, "category_id": 1, "bbox": [11, 11, 20, 20], "score": 0.95},  # TP (IoU 0.81)
    {"image_id": 2, "category_id": 1, "bbox": [70, 0, 20, 20], "score": 0.90},  # FP
    {"image_id": 2, "category_id": 1, "bbox": [2, 2, 50, 50], "score": 0.80},  # TP
    {"image_id": 1, "category_id": 1, "bbox": [11, 11, 20, 20], "score": 0.50},  # duplicate: FP
    {"image_id": 2, "category_id": 2, "bbox": [50, 50, 40, 40], "score": 0.30},  # TP
]
# cat, by hand: TP FP TP FP over 3 boxes -> precision 1 to recall 1/3, 2/3 to recall 2/3 -> AP
# 1/3 + 1/3 * 2/3 = 5/9; sheep: 1. Mean (5/9 + 1) / 2 = 7/9.


def test_eval_json_on_hand_written_files(tmp_path: Path) -> None:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt, pred = tmp_path / "gt.json", tmp_path / "pred.json"
    gt.write_text(json.dumps(HAND_GT))
    pred.write_text(json.dumps(HAND_PRED))
    assert (
        main(
            [
                "detr",
                "eval-json",
                "--gt",
                str(gt),
                "--pred",
                str(pred),
                "--out",
                str(tmp_path / "voc"),
            ]
        )
        == 0
    )
    voc = json.loads((tmp_path / "voc" / "results.json").read_text())
    assert voc["per_class"] == pytest.approx({"cat": 5 / 9, "sheep": 1.0})
    assert voc["ap50"] == pytest.approx(7 / 9)
    args = [
        "detr",
        "eval-json",
        "--gt",
        str(gt),
        "--pred",
        str(pred),
        "--metric",
        "coco",
        "--out",
        str(tmp_path / "coco"),
    ]
    assert main(args) == 0
    coco = json.loads((tmp_path / "coco" / "results.json").read_text())
    with contextlib.redirect_stdout(io.StringIO()):
        truth = COCO(str(gt))
        evaluator = COCOeval(truth, truth.loadRes(str(pred)), "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    assert coco["ap50"] == pytest.approx(evaluator.stats[1], abs=1e-9)
    # 101-point interpolation: recall points 0..33 at precision 1, 34..66 at 2/3 (COCO's recall grid)
    assert coco["per_class"]["cat"] == pytest.approx((34 * 1 + 33 * 2 / 3) / 101, abs=1e-9)


def test_eval_json_voc_difficult_from_voc_xml(tmp_path: Path) -> None:
    """Ground truth written as VOC XML by hand, converted to COCO: difficult boxes are ignored."""
    (tmp_path / "Annotations").mkdir()
    (tmp_path / "Annotations" / "a.xml").write_text(
        "<annotation><filename>a.jpg</filename><size><width>100</width><height>100</height></size>"
        "<object><name>cow</name><difficult>0</difficult><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>20</xmax><ymax>20</ymax></bndbox></object>"
        "<object><name>cow</name><difficult>1</difficult><bndbox><xmin>51</xmin><ymin>51</ymin><xmax>80</xmax><ymax>80</ymax></bndbox></object>"
        "</annotation>"
    )
    (tmp_path / "ImageSets" / "Main").mkdir(parents=True)
    (tmp_path / "ImageSets" / "Main" / "test.txt").write_text("a\n")
    data = read_voc(tmp_path, "test", check_images=False)
    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps(to_coco_dict(data.images, data.classes)))
    cow = data.classes.index("cow") + 1
    preds = [{"image_id": 1, "category_id": cow, "bbox": [50, 50, 30, 30], "score": 0.9},  # difficult
             {"image_id": 1, "category_id": cow, "bbox": [0, 0, 20, 20], "score": 0.8}]  # fmt: skip
    (tmp_path / "pred.json").write_text(json.dumps(preds))
    assert (
        main(
            [
                "detr",
                "eval-json",
                "--gt",
                str(gt),
                "--pred",
                str(tmp_path / "pred.json"),
                "--out",
                str(tmp_path),
            ]
        )
        == 0
    )
    assert json.loads((tmp_path / "results.json").read_text())["per_class"] == {"cow": 1.0}


def test_eval_json_reports_bad_files(tmp_path: Path, capsys) -> None:
    gt = tmp_path / "gt.json"
    gt.write_text("{broken")
    code = main(["detr", "eval-json", "--gt", str(gt), "--pred", str(gt), "--out", str(tmp_path)])
    assert code == 2
    assert "gt.json: broken JSON" in capsys.readouterr().err
