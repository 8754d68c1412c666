"""Greedy one-to-one matching of two detection sets (same class, box IoU at or above a threshold)."""
from __future__ import annotations

from typing import Mapping

import numpy as np

from ..geometry import box_iou


def match_detections(ref: Mapping[str, np.ndarray], got: Mapping[str, np.ndarray],
                     min_iou: float = 0.5) -> list[tuple[int, int]]:
    """Pairs ``(i, j)`` of reference detection ``i`` and candidate detection ``j``.

    ``ref`` and ``got`` hold ``"boxes"`` (K, 4) xyxy and ``"class_ids"`` (K,); reference
    detections are taken by descending ``ref["scores"]`` (stable; in their given order without
    scores). Each takes the still unmatched candidate of its class with the highest box IoU, when
    that IoU is ``>= min_iou`` (the first such candidate on ties).
    """
    rc, gc = np.asarray(ref["class_ids"]).reshape(-1), np.asarray(got["class_ids"]).reshape(-1)
    if len(rc) == 0 or len(gc) == 0:
        return []
    ious = box_iou(ref["boxes"], got["boxes"])
    ious[rc[:, None] != gc[None, :]] = -1.0
    scores = ref.get("scores")
    order = range(len(rc)) if scores is None else np.argsort(-np.asarray(scores), kind="stable")
    taken = np.zeros(len(gc), bool)
    pairs: list[tuple[int, int]] = []
    for i in order:
        row = np.where(taken, -1.0, ious[i])
        j = int(row.argmax())
        if row[j] >= min_iou:
            taken[j] = True
            pairs.append((int(i), j))
    return pairs


__all__ = ["match_detections"]
