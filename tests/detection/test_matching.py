"""The within-image matching AUC (detection/matching.py) against scipy's Mann-Whitney U and a
hand-built scene; the emoji protocol draws no query in the style of a target instance of its
class; the oracle-box reference is what its definition says."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import mannwhitneyu

from indirect_attention.detection.data import EmojiEpisodes, load_sprite_bank
from indirect_attention.detection.data.records import BoxRecord
from indirect_attention.detection.evaluate import oracle_boxes
from indirect_attention.detection.matching import matching_auc, pair_auc
from indirect_attention.detection.metrics import Detection
from indirect_attention.detection.sources import EmojiSource, build_eval_set


@pytest.mark.parametrize("seed", range(5))
def test_pair_auc_is_the_mann_whitney_statistic(seed: int) -> None:
    rng = np.random.default_rng(seed)
    positives = rng.integers(0, 6, size=7).astype(float)  # ties on purpose
    negatives = rng.integers(0, 6, size=5).astype(float)
    u = mannwhitneyu(positives, negatives, alternative="two-sided").statistic
    assert pair_auc(positives, negatives) == pytest.approx(u / (7 * 5))
    assert pair_auc(positives, []) is None and pair_auc([], negatives) is None


def _box(x: float) -> tuple[float, float, float, float]:
    return (x, 0.0, x + 10.0, 10.0)


def test_matching_auc_on_a_hand_built_scene() -> None:
    """Image 0: cat objects at x=0, 20; a dog at x=40 and a bird at x=60 (never hit). The cat at 0
    scores 0.9 (best of two hits), the cat at 20 scores 0.3, the dog 0.5 -> AUC 1/2. Image 1: the
    only cat outscores the dog -> 1. Image 2 hits no distractor -> not scored."""
    objects = {
        0: [
            BoxRecord(_box(0), "cat"),
            BoxRecord(_box(20), "cat"),
            BoxRecord(_box(40), "dog"),
            BoxRecord(_box(60), "bird"),
        ],
        1: [BoxRecord(_box(0), "cat"), BoxRecord(_box(20), "dog")],
        2: [BoxRecord(_box(0), "cat"), BoxRecord(_box(20), "dog")],
    }
    detections = [
        Detection(0, "cat", _box(0.5), 0.9),
        Detection(0, "cat", _box(0), 0.2),
        Detection(0, "cat", _box(20), 0.3),
        Detection(0, "cat", _box(40), 0.5),
        Detection(0, "cat", _box(80), 0.99),  # hits nothing
        Detection(0, "cat", (60.0, 0.0, 62.0, 2.0), 0.95),  # IoU 0.04 with the bird: no hit
        Detection(1, "cat", _box(0), 0.6),
        Detection(1, "cat", _box(20), 0.1),
        Detection(2, "cat", _box(0), 0.6),
    ]
    result = matching_auc(detections, objects)
    assert result == {"auc": pytest.approx((0.5 + 1.0) / 2), "pairs_scored": 2}


def test_matching_auc_of_query_blind_scores_is_one_half() -> None:
    """Scores that depend only on the object, never on the query, rank the query's class above a
    distractor as often as below: over all classes as queries the mean AUC is 1/2."""
    rng = np.random.default_rng(0)
    classes = ["a", "b", "c", "d"]
    objects = {
        i: [BoxRecord(_box(20 * k), c) for k, c in enumerate(classes)] for i in range(len(classes))
    }
    scores = rng.random(len(classes))
    detections = [
        Detection(i, classes[i], obj.box, float(scores[k]))
        for i in range(len(classes))
        for k, obj in enumerate(objects[i])
    ]
    assert matching_auc(detections, objects)["auc"] == pytest.approx(0.5)


def test_no_query_shares_an_artist_with_an_instance_of_its_class_in_the_target() -> None:
    eval_set = build_eval_set("test_seen", 60, draws=4, seed=3)
    data = EmojiEpisodes("test_seen", length=60)
    bank = load_sprite_bank()
    for e in range(60):
        spec = data.episode(e).spec
        instances = spec.positives + spec.distractors
        for draw in range(4):
            style = eval_set.styles[draw][e]
            assert style in bank.styles_of(spec.category)
            assert style not in {i.style for i in instances if i.category == spec.category}
            other, wrong_style = eval_set.wrong_styles[draw][e]
            assert other != spec.category
            assert wrong_style not in {i.style for i in instances if i.category == other}


def test_oracle_boxes_is_perfect_boxes_with_random_scores() -> None:
    """One target per class, each with one object of its class: every class's AP is 1 whatever
    the scores; with a distractor of equal count the random-score AP falls below 1."""
    pairs = EmojiSource(scale=0.25).eval_pairs("val", count=4, draws=1, seed=0)
    assert pairs is not None
    value = oracle_boxes(pairs, seeds=3)
    assert 0.0 < value < 1.0
    single = {
        e: [o for o in pairs.objects[e] if o.category == pairs.right[0][e].category][:1]
        for e in pairs.objects
    }
    pairs.objects = single
    pairs.ground_truth = [
        type(g)(g.image_id, g.file_name, g.width, g.height, tuple(single[g.image_id]))
        for g in pairs.ground_truth
    ]
    assert oracle_boxes(pairs, seeds=3) == pytest.approx(1.0)


def test_random_offsets_cover_every_cell_where_the_query_fits() -> None:
    from indirect_attention.detection.preprocess import InputSpec, model_input, random_offsets

    batch = model_input(
        [torch.rand(3, 64, 48)] * 400, [torch.rand(3, 24, 24)] * 400, InputSpec(64, 24), stride=8
    )
    generator = torch.Generator().manual_seed(0)
    offsets = random_offsets(batch.targets.shape, batch.queries.shape, 8, generator)
    rows, cols = (64 - 24) // 8 + 1, (48 - 24) // 8 + 1
    assert set(offsets[:, 0].tolist()) == set(range(rows))
    assert set(offsets[:, 1].tolist()) == set(range(cols))
