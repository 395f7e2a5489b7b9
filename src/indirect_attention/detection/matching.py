"""Within-image matching score of a one-shot detector (issue 17; complements paper §6.2's AP50).

AP50 mixes two skills: finding objects (localisation) and telling the query's class from the
other objects of the target (matching). The matching score isolates the second. For one
(query, target) pair:

1. every object of the target (query class or distractor) that some detection hits (IoU ≥ 0.5)
   gets the highest score among the detections that hit it; objects no detection hits are left
   out, since no score ranks them;
2. the pair's AUC is the probability that a hit object of the query's class outscores a hit
   distractor (ties count one half), over all (query-class object, distractor) pairs;
3. the matching AUC is the mean over pairs that hit at least one object of each kind.

1.0: the detector always ranks the query's class above the other objects; 0.5: its scores
ignore the query. A detector that hits no distractor has no AUC on that pair (``pairs_scored``
says on how many pairs the mean stands).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from .data.records import BoxRecord
from .metrics import Detection, box_iou

__all__ = ["matching_auc", "pair_auc"]


def pair_auc(positives: Sequence[float], negatives: Sequence[float]) -> float | None:
    """P(a positive score > a negative score) + ½ P(equal); None when either side is empty."""
    if len(positives) == 0 or len(negatives) == 0:
        return None
    pos = np.asarray(positives, dtype=np.float64)[:, None]
    neg = np.asarray(negatives, dtype=np.float64)[None, :]
    return float(((pos > neg) + 0.5 * (pos == neg)).mean())


def _object_scores(
    detections: Sequence[Detection], objects: Sequence[BoxRecord]
) -> list[float | None]:
    """The highest score of the detections that hit each object (None: no hit)."""
    if not detections or not objects:
        return [None] * len(objects)
    iou = box_iou(
        np.asarray([o.box for o in objects], dtype=np.float64),
        np.asarray([d.box for d in detections], dtype=np.float64),
    )  # (objects, detections)
    scores = np.asarray([d.score for d in detections], dtype=np.float64)
    out: list[float | None] = []
    for row in iou >= 0.5:
        out.append(float(scores[row].max()) if row.any() else None)
    return out


def matching_auc(
    detections: Sequence[Detection], objects: dict[int | str, Sequence[BoxRecord]]
) -> dict[str, float | int]:
    """Mean within-image AUC of the query's class against the distractors.

    Args:
        detections: One draw's detections; ``category`` is the query's class and ``image_id``
            the target (one query per target).
        objects: Every object of each target, with its class.

    Returns:
        ``{"auc": mean over scored pairs (NaN when none), "pairs_scored": how many}``.
    """
    by_image: dict[int | str, list[Detection]] = defaultdict(list)
    for det in detections:
        by_image[det.image_id].append(det)
    values = []
    for image_id, found in by_image.items():
        category = found[0].category
        scores = _object_scores(found, objects.get(image_id, ()))
        hit = [
            (o, s) for o, s in zip(objects.get(image_id, ()), scores, strict=True) if s is not None
        ]
        auc = pair_auc(
            [s for o, s in hit if o.category == category],
            [s for o, s in hit if o.category != category],
        )
        if auc is not None:
            values.append(auc)
    return {
        "auc": float(np.mean(values)) if values else float("nan"),
        "pairs_scored": len(values),
    }
