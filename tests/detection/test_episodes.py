"""The one-shot protocol: shipped splits, training/test views, pairs, determinism, leak check."""

from __future__ import annotations

import numpy as np
import pytest

from indirect_attention.detection.data.episodes import (
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
from indirect_attention.detection.data.records import BoxRecord, DetectionDataset, ImageRecord
from indirect_attention.detection.data.voc import VOC_CLASSES

# Written out from the CoAE / IA-DETR split table (reference sheet §4.2), not from the package file.
COCO_SPLIT_1_IDS = [1, 5, 9, 14, 18, 22, 27, 33, 37, 41, 46, 50, 54, 58, 62, 67, 74, 78, 82, 87]
COCO_SPLIT_3_NAMES = {
    "car", "train", "fire hydrant", "bird", "sheep", "zebra", "handbag", "skis", "baseball bat",
    "tennis racket", "fork", "banana", "broccoli", "donut", "potted plant", "tv", "keyboard",
    "toaster", "clock", "hair drier",
}  # fmt: skip


def test_voc_split() -> None:
    split = load_class_split("voc")
    assert set(split.unseen) == {"aeroplane", "cat", "cow", "sheep"}
    assert set(split.seen) | set(split.unseen) == set(VOC_CLASSES) and len(split.seen) == 16


def test_coco_splits_follow_the_coae_rule() -> None:
    import json
    from importlib import resources

    data = json.loads(
        (resources.files("indirect_attention.detection.data") / "splits" / "coco.json").read_text()
    )
    ids = sorted(c["id"] for c in data["categories"])
    assert len(ids) == 80
    assert data["splits"]["1"]["unseen_ids"] == COCO_SPLIT_1_IDS
    assert set(load_class_split("coco3").unseen) == COCO_SPLIT_3_NAMES
    all_unseen = []
    for s in (1, 2, 3, 4):
        expected = [ids[k - 1] for k in range(1, 81) if k % 4 == s % 4]
        assert data["splits"][str(s)]["unseen_ids"] == expected
        split = load_class_split(f"coco{s}")
        assert len(split.unseen) == 20 and len(split.seen) == 60
        all_unseen += split.unseen
    assert len(set(all_unseen)) == 80  # the four splits partition the classes


def test_unknown_split_and_overlap() -> None:
    with pytest.raises(ValueError, match="unknown class split"):
        load_class_split("lvis")
    with pytest.raises(ValueError, match="both seen and unseen"):
        ClassSplit("x", ("a", "b"), ("b",))


SPLIT = ClassSplit("toy", ("dog", "bird"), ("cat",))


def _dataset() -> DetectionDataset:
    def im(i, *objs):
        return ImageRecord(
            i, f"{i}.jpg", 100, 100, tuple(BoxRecord(b, c, difficult=d) for c, b, d in objs)
        )

    return DetectionDataset(
        "toy",
        ("dog", "bird", "cat"),
        [
            im(1, ("dog", (0, 0, 10, 10), False), ("cat", (20, 20, 40, 40), False)),
            im(2, ("dog", (5, 5, 30, 30), False), ("bird", (50, 50, 60, 60), True)),
            im(3, ("cat", (1, 1, 9, 9), False)),
            im(4, ("bird", (10, 10, 20, 20), False), ("dog", (30, 30, 50, 50), False)),
            im(5, ("cat", (2, 2, 30, 30), True), ("cat", (40, 40, 80, 80), False)),
        ],
    )


def test_training_view_has_no_unseen_box() -> None:
    train = training_view(_dataset(), SPLIT)
    assert [im.image_id for im in train.images] == [1, 2, 4]  # image 3 and 5 only had cats
    assert all(
        o.category in SPLIT.seen and not o.difficult for im in train.images for o in im.objects
    )
    check_no_leak(train, SPLIT)
    strict = training_view(_dataset(), SPLIT, drop_images_with_unseen=True)
    assert [im.image_id for im in strict.images] == [2, 4]


def test_leak_check_catches_unseen_boxes_and_queries() -> None:
    data = _dataset()
    with pytest.raises(
        ValueError, match=r"leak: unseen class 'cat' box 1 .* training image 1 \(1\.jpg\)"
    ):
        check_no_leak(data, SPLIT)
    image = data.images[3]
    query = QueryCrop(9, "9.jpg", (0, 0, 5, 5), "cat")
    pair = OneShotPair(image, "cat", query, ())
    with pytest.raises(ValueError, match="leak: unseen class 'cat' used as a training query"):
        check_no_leak([pair], SPLIT)
    clean = OneShotPair(
        image, "dog", QueryCrop(1, "1.jpg", (0, 0, 10, 10), "dog"), image.objects[1:]
    )
    check_no_leak([clean], SPLIT)


def test_test_view_keeps_difficult_flags() -> None:
    test = eval_view(_dataset(), SPLIT)
    assert [im.image_id for im in test.images] == [1, 3, 5]
    assert [o.difficult for o in test.images[2].objects] == [True, False]


def test_training_pairs_take_queries_from_other_images() -> None:
    train = training_view(_dataset(), SPLIT)
    pool = query_pool(train, SPLIT.seen)
    assert {c: len(v) for c, v in pool.items()} == {
        "bird": 1,
        "dog": 3,
    }  # the difficult bird is no query
    rng = np.random.default_rng(0)
    counts = {}
    two = ImageRecord(
        7, "7.jpg", 100, 100, (BoxRecord((0, 0, 5, 5), "dog"), BoxRecord((9, 9, 19, 19), "bird"))
    )
    for _ in range(400):
        pair = sample_training_pair(two, {"dog": pool["dog"], "bird": pool["bird"] * 3}, rng)
        counts[pair.category] = counts.get(pair.category, 0) + 1
    # class probability proportional to 1 / pool size: dog 1/3, bird 1/3 -> about even
    assert 150 < counts["dog"] < 250
    counts.clear()
    for _ in range(400):
        pair = sample_training_pair(two, pool, rng)
        counts[pair.category] = counts.get(pair.category, 0) + 1
    # dog 1/3 vs bird 1/1 -> bird three times as likely
    assert 250 < counts["bird"] < 350
    seen_classes = set()
    for _ in range(50):
        for image in train.images:
            pair = sample_training_pair(image, pool, rng)
            if pair is None:
                continue
            assert pair.query.image_id != image.image_id
            assert pair.query.category == pair.category and pair.boxes
            assert all(b.category == pair.category for b in pair.boxes)
            seen_classes.add(pair.category)
    # The only non-difficult bird is image 4's own, so image 4 must always get a dog query.
    assert seen_classes == {"dog"}
    lonely = ImageRecord(99, "99.jpg", 10, 10, (BoxRecord((0, 0, 5, 5), "bird"),))
    assert sample_training_pair(lonely, {"bird": []}, rng) is None


def test_test_pairs_are_seeded_by_image_id() -> None:
    data = eval_view(_dataset(), SPLIT)
    pool = query_pool(_dataset(), SPLIT.unseen)
    pairs = eval_pairs(data, pool, draws=5, seed=3)
    assert len(pairs) == 3 * 5
    for pair in pairs:
        assert pair.query.image_id != pair.image.image_id and pair.category == "cat"
    assert [p.draw for p in pairs[:5]] == [0, 1, 2, 3, 4]
    # The same image gets the same queries whatever the data set's order.
    reordered = DetectionDataset(data.name, data.classes, data.images[::-1])
    again = eval_pairs(reordered, pool, draws=5, seed=3)
    key = lambda ps: {(p.image.image_id, p.draw): p.query for p in ps}  # noqa: E731
    assert key(again) == key(pairs)
    other = eval_pairs(data, pool, draws=5, seed=4)
    assert key(other) != key(pairs)
    with pytest.raises(ValueError, match="draws must be >= 1"):
        eval_pairs(data, pool, draws=0)


def test_mean_std() -> None:
    assert mean_std([0.5, 0.7]) == pytest.approx((0.6, 0.1))
    with pytest.raises(ValueError):
        mean_std([])


def test_crop_query_reads_the_box_pixels(tmp_path) -> None:
    from PIL import Image

    pixels = np.arange(20 * 30 * 3, dtype=np.uint8).reshape(20, 30, 3)
    Image.fromarray(pixels).save(tmp_path / "q.png")
    crop = crop_query(QueryCrop(1, str(tmp_path / "q.png"), (2.5, 3.0, 10.0, 8.2), "dog"))
    assert np.array_equal(crop, pixels[3:9, 2:10])
    with pytest.raises(ValueError, match=r"lies outside its 30x20 image"):
        crop_query(QueryCrop(1, str(tmp_path / "q.png"), (40, 3, 50, 8), "dog"))
    with pytest.raises(ValueError, match=r"query image .*missing\.png \(image 2\)"):
        crop_query(QueryCrop(2, str(tmp_path / "missing.png"), (0, 0, 5, 5), "dog"))
