"""Tracking and video-stability metrics.

* :func:`evaluate_tracking`: HOTA (DetA, AssA), MOTA, MOTP, IDF1, ID switches and sMOTSA of
  predicted tracks against ground-truth tracks, computed by TrackEval's metric classes (the
  MOTChallenge / KITTI-MOTS reference evaluator) on box-IoU or mask-IoU similarities; with
  ``cross_check=True`` MOTA, IDF1 and ID switches are recomputed by py-motmetrics from the same
  similarities and both values are reported.
* :class:`VideoStability`: mIoU and temporal consistency of semantic label maps over a video.

Definitions:
    sMOTSA (soft multi-object tracking and segmentation accuracy, Voigtlaender et al. 2019) =
        (sum of the mask IoUs of the true positives - false positives - ID switches) / GT masks,
        with matches at mask IoU >= 0.5 (TrackEval's "sMOTA" computed on mask IoU).
    mIoU of a video = mean IoU over the classes present in its ground truth (a class only
        predicted, on a few spurious pixels, would otherwise swing the mean by 1 / classes).
    flicker (temporal inconsistency) = among the pixels whose ground-truth class is valid and the
        same in two consecutive frames, the share whose predicted class differs between those
        frames, pooled over all consecutive pairs; consistency = 1 - flicker.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import numpy as np

from .. import defaults, ops
from ..errors import EdgesegError
from ..masks import MaskSet


@dataclass
class FrameTracks:
    """Tracked objects of one frame: ids (N,) and boxes (N, 4) xyxy and/or masks (a MaskSet)."""

    ids: np.ndarray
    boxes: Optional[np.ndarray] = None
    masks: Optional[MaskSet] = None

    def __post_init__(self) -> None:
        self.ids = np.asarray(self.ids, np.int64).reshape(-1)
        if self.boxes is not None:
            self.boxes = np.asarray(self.boxes, np.float64).reshape(-1, 4)
            if len(self.boxes) != self.ids.size:
                raise EdgesegError(f"FrameTracks: {self.ids.size} ids but {len(self.boxes)} boxes")
        if self.masks is not None and len(self.masks) != self.ids.size:
            raise EdgesegError(f"FrameTracks: {self.ids.size} ids but {len(self.masks)} masks")
        if len(np.unique(self.ids)) != self.ids.size:
            raise EdgesegError("FrameTracks: an id appears twice in one frame")


def _similarity(gt: FrameTracks, pr: FrameTracks, kind: str) -> np.ndarray:
    from ..geometry import box_iou

    if kind == "mask":
        if gt.masks is None or pr.masks is None:
            raise EdgesegError("mask similarity needs masks in the ground truth and the predictions")
        if not len(gt.ids) or not len(pr.ids):
            return np.zeros((len(gt.ids), len(pr.ids)))
        return ops.mask_iou(gt.masks, pr.masks).astype(np.float64)
    if kind == "box":
        if gt.boxes is None or pr.boxes is None:
            raise EdgesegError("box similarity needs boxes in the ground truth and the predictions")
        return box_iou(gt.boxes, pr.boxes)
    raise EdgesegError(f"similarity must be 'mask' or 'box', got {kind!r}")


def _trackeval() -> Any:
    try:
        from trackeval import metrics
    except ImportError:
        raise EdgesegError("tracking metrics need TrackEval: pip install trackeval (with --no-deps if "
                           "you keep opencv-python-headless; it needs numpy and scipy)") from None
    return metrics


def _sequence(gt: Sequence[FrameTracks], pred: Sequence[FrameTracks], kind: str) -> dict[str, Any]:
    """TrackEval's per-sequence data dict (ids remapped to 0..n-1)."""
    if len(gt) != len(pred):
        raise EdgesegError(f"ground truth has {len(gt)} frames but the predictions have {len(pred)}")
    g_all = np.unique(np.concatenate([f.ids for f in gt] + [np.zeros(0, np.int64)]))
    p_all = np.unique(np.concatenate([f.ids for f in pred] + [np.zeros(0, np.int64)]))
    return {
        "num_timesteps": len(gt),
        "num_gt_ids": int(g_all.size),
        "num_tracker_ids": int(p_all.size),
        "num_gt_dets": int(sum(f.ids.size for f in gt)),
        "num_tracker_dets": int(sum(f.ids.size for f in pred)),
        "gt_ids": [np.searchsorted(g_all, f.ids) for f in gt],
        "tracker_ids": [np.searchsorted(p_all, f.ids) for f in pred],
        "similarity_scores": [_similarity(g, p, kind) for g, p in zip(gt, pred)],
    }


def evaluate_tracking(gt: Sequence[FrameTracks], pred: Sequence[FrameTracks], similarity: str = "mask",
                      cross_check: bool = False) -> dict[str, Any]:
    """Metrics of one video's predicted tracks against its ground truth (frame by frame).

    Returns a dict: ``HOTA``, ``DetA``, ``AssA``, ``MOTA``, ``MOTP``, ``IDF1``, ``IDSW``,
    ``sMOTSA`` (mask similarity; ``sMOTA`` for boxes), counts (``GT``, ``TP``, ``FP``, ``FN``,
    ``frames``) and the ``evaluator``; with ``cross_check``, ``motmetrics`` holds py-motmetrics'
    MOTA, IDF1 and ID switches from the same similarities.
    """
    data = _sequence(gt, pred, similarity)
    out = _summarise(*_metrics(data), similarity)
    out["frames"] = len(gt)
    if cross_check:
        out["motmetrics"] = motmetrics_summary(data)
    return out


def evaluate_sequences(sequences: dict[str, tuple[Sequence[FrameTracks], Sequence[FrameTracks]]],
                       similarity: str = "mask") -> dict[str, Any]:
    """Metrics over several videos ``{name: (gt, pred)}``: ``combined`` (TrackEval's
    combination over sequences, as in MOTChallenge / KITTI-MOTS) and ``per_sequence``."""
    if not sequences:
        raise EdgesegError("no sequences to evaluate")
    per: dict[str, Any] = {}
    raw: list[tuple[dict, dict, dict]] = []
    for name, (gt, pred) in sequences.items():
        res = _metrics(_sequence(gt, pred, similarity))
        raw.append(res)
        per[name] = {**_summarise(*res, similarity), "frames": len(gt)}
    m = _trackeval()
    quiet = {"PRINT_CONFIG": False}
    combined = tuple(metric.combine_sequences({str(i): r[k] for i, r in enumerate(raw)})
                     for k, metric in enumerate((m.HOTA(quiet), m.CLEAR({**quiet, "THRESHOLD": 0.5}),
                                                 m.Identity({**quiet, "THRESHOLD": 0.5}))))
    out = _summarise(*combined, similarity)
    out["frames"] = sum(v["frames"] for v in per.values())
    return {"combined": out, "per_sequence": per}


def _metrics(data: dict[str, Any]) -> tuple[dict, dict, dict]:
    m = _trackeval()
    quiet = {"PRINT_CONFIG": False}
    return (m.HOTA(quiet).eval_sequence(data), m.CLEAR({**quiet, "THRESHOLD": 0.5}).eval_sequence(data),
            m.Identity({**quiet, "THRESHOLD": 0.5}).eval_sequence(data))


def _summarise(hota: dict, clear: dict, ident: dict, similarity: str) -> dict[str, Any]:
    return {
        "HOTA": float(np.mean(hota["HOTA"])), "DetA": float(np.mean(hota["DetA"])),
        "AssA": float(np.mean(hota["AssA"])),
        "MOTA": float(clear["MOTA"]), "MOTP": float(clear["MOTP"]), "IDF1": float(ident["IDF1"]),
        "IDSW": int(clear["IDSW"]), ("sMOTSA" if similarity == "mask" else "sMOTA"): float(clear["sMOTA"]),
        "GT": int(clear["CLR_TP"] + clear["CLR_FN"]), "TP": int(clear["CLR_TP"]), "FP": int(clear["CLR_FP"]),
        "FN": int(clear["CLR_FN"]), "similarity": similarity,
        "evaluator": "TrackEval (HOTA, CLEAR, Identity)",
    }


def motmetrics_summary(data: dict[str, Any]) -> dict[str, float]:
    """MOTA, IDF1 and ID switches by py-motmetrics from a TrackEval-style data dict (matches at
    IoU >= 0.5, as TrackEval's CLEAR and Identity)."""
    try:
        import motmetrics as mm
    except ImportError:
        raise EdgesegError("the cross-check needs py-motmetrics: pip install motmetrics") from None
    acc = mm.MOTAccumulator(auto_id=True)
    for g, p, s in zip(data["gt_ids"], data["tracker_ids"], data["similarity_scores"]):
        dist = np.where(s >= 0.5 - np.finfo(float).eps, 1.0 - s, np.nan)
        acc.update(list(g), list(p), dist)
    mh = mm.metrics.create()
    r = mh.compute(acc, metrics=["mota", "idf1", "num_switches"], name="seq")
    return {"MOTA": float(r["mota"].iloc[0]), "IDF1": float(r["idf1"].iloc[0]),
            "IDSW": int(r["num_switches"].iloc[0])}


@dataclass
class VideoStability:
    """Accumulates mIoU and temporal consistency of a semantic video, frame by frame
    (see the module docstring for the definitions). ``ignore_index`` pixels are skipped."""

    num_classes: int
    ignore_index: int = defaults.IGNORE_INDEX
    confusion: np.ndarray = field(init=False)
    changed: int = field(default=0, init=False)
    stable: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self.confusion = np.zeros((self.num_classes, self.num_classes), np.int64)
        self._prev: Optional[tuple[np.ndarray, np.ndarray]] = None

    def update(self, pred: np.ndarray, gt: np.ndarray) -> None:
        """Add the next frame's predicted and ground-truth label maps (same shape)."""
        pred, gt = np.asarray(pred), np.asarray(gt)
        if pred.shape != gt.shape:
            raise EdgesegError(f"prediction {pred.shape} and ground truth {gt.shape} differ in shape")
        valid = (gt != self.ignore_index) & (gt < self.num_classes)
        k = self.num_classes
        idx = gt[valid].astype(np.int64) * k + np.clip(pred[valid].astype(np.int64), 0, k - 1)
        self.confusion += np.bincount(idx, minlength=k * k).reshape(k, k)
        if self._prev is not None and self._prev[0].shape == pred.shape:
            p0, g0 = self._prev
            same = valid & (g0 == gt) & (g0 != self.ignore_index)
            self.stable += int(same.sum())
            self.changed += int((same & (p0 != pred)).sum())
        self._prev = (pred.copy(), gt.copy())

    def reset_video(self) -> None:
        """Start a new video (the next frame has no predecessor); the totals are kept."""
        self._prev = None

    @property
    def miou(self) -> float:
        """Mean IoU over the classes with ground-truth pixels."""
        c = self.confusion
        inter = np.diag(c).astype(np.float64)
        union = c.sum(0) + c.sum(1) - np.diag(c)
        present = c.sum(1) > 0
        return float((inter[present] / union[present]).mean()) if present.any() else float("nan")

    @property
    def flicker(self) -> float:
        """Share of GT-stable pixels whose predicted class changed between consecutive frames."""
        return self.changed / self.stable if self.stable else float("nan")

    def summary(self) -> dict[str, float]:
        return {"miou": self.miou, "flicker": self.flicker,
                "temporal_consistency": 1.0 - self.flicker if self.stable else float("nan"),
                "stable_pixels": self.stable}


def track_predictor(predictor: Any, frames: Any, tracker: Any) -> tuple[list[FrameTracks], float]:
    """Run an instance predictor and a tracker over frames (objects with ``image``); returns the
    predicted tracks of every frame and the seconds spent in the tracker."""
    import time

    out, spent = [], 0.0
    for f in frames:
        r = predictor(f.image)
        t0 = time.perf_counter()
        r = tracker(r)
        spent += time.perf_counter() - t0
        out.append(FrameTracks(r.track_ids, r.boxes, r.masks))
    return out, spent


def ground_truth_tracks(frames: Any) -> list[FrameTracks]:
    """The ground-truth tracks of frames with ``track_ids`` and ``masks``."""
    return [FrameTracks(f.track_ids, f.masks.boxes(), f.masks) for f in frames]


def stabilised_labels(predictor: Any, image: np.ndarray, stabiliser: Any) -> np.ndarray:
    """One frame through a semantic predictor with a stabiliser, as the pipeline runs it."""
    tensor, info = predictor.pre(image)
    tensor_info = info
    scores = predictor.infer(tensor)[0]
    if stabiliser is not None and stabiliser.uses_scores:
        scores = stabiliser.scores(scores, frame=image, info=tensor_info)
    labels = predictor.post(scores, info)
    return stabiliser.labels(labels) if stabiliser is not None else labels
