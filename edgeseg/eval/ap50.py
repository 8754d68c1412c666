"""COCO-style AP at IoU 0.5 without pycocotools (numpy only).

:class:`AP50` follows COCOeval's matching rules (101-point interpolated precision, crowd regions
ignored, at most ``max_dets`` detections per image and class) and equals its AP50 (see the tests);
it also gives AP50 per class. :mod:`edgeseg.eval.coco` runs pycocotools itself.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from .. import defaults
from ..geometry import box_iou


def mask_iou(d: np.ndarray, g: np.ndarray, crowd: np.ndarray) -> np.ndarray:
    """COCO mask IoU (D, G) of bool masks; crowd GTs divide by the detection's area."""
    df = d.reshape(len(d), -1)
    gf = g.reshape(len(g), -1)
    inter = df.astype(np.float32) @ gf.T.astype(np.float32)
    ad, ag = df.sum(1).astype(np.float32), gf.sum(1).astype(np.float32)
    union = np.where(crowd[None, :], ad[:, None], ad[:, None] + ag[None, :] - inter)
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


class AP50:
    """COCO-style AP at IoU 0.5 (area "all", ``max_dets`` per image and class), accumulated image by
    image so no masks are kept. ``iou_type`` is "bbox" or "segm"."""

    def __init__(self, num_classes: int, iou_type: str = "bbox", max_dets: int = defaults.COCO_MAX_DETS) -> None:
        if iou_type not in ("bbox", "segm"):
            raise ValueError(f"iou_type must be 'bbox' or 'segm', got {iou_type!r}")
        self.num_classes, self.iou_type, self.max_dets = int(num_classes), iou_type, int(max_dets)
        self._scores: list[list[np.ndarray]] = [[] for _ in range(num_classes)]
        self._tp: list[list[np.ndarray]] = [[] for _ in range(num_classes)]
        self._ig: list[list[np.ndarray]] = [[] for _ in range(num_classes)]
        self._npos = np.zeros(num_classes, np.int64)

    def update(self, det: dict[str, np.ndarray], gt: dict[str, np.ndarray]) -> None:
        """One image. ``det``: boxes (D,4) xyxy, scores (D,), classes (D,), masks (D,h,w) for segm;
        ``gt``: boxes (G,4), classes (G,), iscrowd (G,), masks (G,h,w) for segm."""
        key = "boxes" if self.iou_type == "bbox" else "masks"
        g_cls = np.asarray(gt["classes"]).astype(np.int64)
        g_crowd = np.asarray(gt.get("iscrowd", np.zeros(len(g_cls), bool)), bool)
        d_cls = np.asarray(det["classes"]).astype(np.int64)
        d_sc = np.asarray(det["scores"], np.float64)
        for c in np.union1d(np.unique(g_cls), np.unique(d_cls)):
            gi = np.flatnonzero(g_cls == c)
            gi = gi[np.argsort(g_crowd[gi], kind="mergesort")]  # non-crowd first
            di = np.flatnonzero(d_cls == c)
            di = di[np.argsort(-d_sc[di], kind="mergesort")][:self.max_dets]
            crowd = g_crowd[gi]
            self._npos[c] += int((~crowd).sum())
            if len(di) == 0:
                continue
            tp, ig = np.zeros(len(di), bool), np.zeros(len(di), bool)
            if len(gi):
                dd, gg = np.asarray(det[key])[di], np.asarray(gt[key])[gi]
                ious = box_iou(dd, gg, crowd=crowd) if key == "boxes" else mask_iou(dd, gg, crowd)
                taken = np.zeros(len(gi), bool)
                for j in range(len(di)):
                    best, m = 0.5, -1
                    for k in range(len(gi)):
                        if taken[k] and not crowd[k]:
                            continue
                        if m > -1 and not crowd[m] and crowd[k]:
                            break
                        if ious[j, k] < best:
                            continue
                        best, m = ious[j, k], k
                    if m == -1:
                        continue
                    ig[j] = crowd[m]
                    tp[j] = not crowd[m]
                    taken[m] = True
            self._scores[c].append(d_sc[di])
            self._tp[c].append(tp)
            self._ig[c].append(ig)

    def per_class(self) -> list[Optional[float]]:
        """AP50 per class (None for classes without ground truth)."""
        rec_thrs = np.linspace(0.0, 1.0, 101)
        out: list[Optional[float]] = []
        for c in range(self.num_classes):
            if self._npos[c] == 0:
                out.append(None)
                continue
            if not self._scores[c]:
                out.append(0.0)
                continue
            sc = np.concatenate(self._scores[c])
            order = np.argsort(-sc, kind="mergesort")
            tp = np.concatenate(self._tp[c])[order]
            ig = np.concatenate(self._ig[c])[order]
            tps = np.cumsum(tp & ~ig).astype(np.float64)
            fps = np.cumsum(~tp & ~ig).astype(np.float64)
            rc = tps / self._npos[c]
            pr = tps / (fps + tps + np.spacing(1))
            pr = np.maximum.accumulate(pr[::-1])[::-1]
            idx = np.searchsorted(rc, rec_thrs, side="left")
            q = np.where(idx < len(pr), pr[np.minimum(idx, len(pr) - 1)], 0.0)
            out.append(float(q.mean()))
        return out

    def merge(self, other: "AP50") -> "AP50":
        """Add the images ``other`` accumulated (same classes, IoU type and max_dets), e.g. the
        shard of another process. Returns self."""
        if (other.num_classes, other.iou_type, other.max_dets) != (self.num_classes, self.iou_type, self.max_dets):
            raise ValueError("AP50.merge: the accumulators differ in classes, iou_type or max_dets")
        for c in range(self.num_classes):
            self._scores[c] += other._scores[c]
            self._tp[c] += other._tp[c]
            self._ig[c] += other._ig[c]
        self._npos += other._npos
        return self

    def value(self) -> float:
        """Mean AP50 over classes with ground truth (0.0 if there is none)."""
        vals = [v for v in self.per_class() if v is not None]
        return float(np.mean(vals)) if vals else 0.0


__all__ = ["AP50", "mask_iou"]
