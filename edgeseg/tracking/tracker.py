"""Multi-object tracking of instance detections: ByteTrack-style association with a constant-
velocity Kalman filter on boxes, matched by box IoU or by mask IoU of box-local masks.

Per frame (:meth:`Tracker.update`):

1. every track's Kalman state is predicted one frame ahead;
2. confirmed tracks (tracked or recently lost) are matched to the high-score detections
   (score >= ``high``) by an optimal assignment on ``1 - IoU``, pairs below ``match_iou`` refused;
3. tracks still unmatched that were tracked in the previous frame get a second chance with the
   low-score detections (``low <= score < high``, pairs below ``low_match_iou`` refused): the
   ByteTrack idea, which keeps an object whose score dips (occlusion, blur) on its track;
4. tentative tracks (seen once) are matched to the high-score detections left; unmatched ones die;
5. high-score detections still left (score >= ``new_track``) start tentative tracks, confirmed
   (and given an id) when matched again in the next frame; in the very first frame they are
   confirmed at once;
6. tracks unmatched for more than ``buffer`` frames are dropped (until then a lost track can be
   found again with its old id).

Similarity "box": IoU of the track's predicted box with the detection's box; "mask": IoU of the
track's last mask with the detection's mask (:func:`edgeseg.ops.mask_iou`), the last mask moved
by the predicted motion of its box centre or left where it was, whichever overlaps more (the
visible part of an object sliding behind an occluder stays put while its box centre moves), for
tracks matched in the previous frame; box IoU for tracks unseen since (a mask from before an
occlusion no longer describes what reappears). Detections of different classes are never matched unless
``class_aware=False``. numpy + the C++ core; no torch.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Optional

import numpy as np

from .. import defaults, ops
from ..errors import ArrayError, EdgesegError
from ..masks import MaskSet
from . import kalman
from .similarity import box_iou, get_similarity

TENTATIVE, TRACKED, LOST = 0, 1, 2


@dataclass(frozen=True)
class TrackerConfig:
    """Thresholds of :class:`Tracker` (defaults: ``edgeseg.defaults.TRACK_*``)."""

    matching: str = defaults.TRACK_MATCHING
    high: float = defaults.TRACK_HIGH_SCORE
    low: float = defaults.TRACK_LOW_SCORE
    new_track: float = defaults.TRACK_NEW_SCORE
    match_iou: float = defaults.TRACK_MATCH_IOU
    low_match_iou: float = defaults.TRACK_LOW_MATCH_IOU
    tentative_iou: float = defaults.TRACK_TENTATIVE_IOU
    buffer: int = defaults.TRACK_BUFFER
    class_aware: bool = True

    def __post_init__(self) -> None:
        get_similarity(self.matching)
        if not 0.0 <= self.low <= self.high <= 1.0:
            raise EdgesegError(f"tracker: need 0 <= low <= high <= 1, got low={self.low}, high={self.high}")
        for name in ("match_iou", "low_match_iou", "tentative_iou"):
            v = getattr(self, name)
            if not 0.0 < v <= 1.0:
                raise EdgesegError(f"tracker: {name} must be in (0, 1], got {v}")
        if self.buffer < 0:
            raise EdgesegError(f"tracker: buffer must be >= 0 frames, got {self.buffer}")


class Tracker:
    """Gives detections ids that persist from frame to frame.

    Feed it one frame's detections at a time, in frame order::

        tracker = edgeseg.Tracker(matching="mask")
        for frame in video:
            result = predictor(frame)           # an InstanceResult
            tracked = tracker(result)           # the tracked detections, with .track_ids
        # or with your own detections:
        ids = tracker.update(boxes, scores, class_ids, masks)   # (N,) ids, -1 = not tracked

    Args: see :class:`TrackerConfig` (``matching`` "box" or "mask"; score thresholds ``high``,
    ``low``, ``new_track``; IoU thresholds; ``buffer`` frames a lost track is kept).

    Give it the detections down to score ``low`` (0.1): the second pass keeps objects whose score
    dips on their tracks (``edgeseg run --track`` lowers the model's score threshold to it unless
    ``--conf`` is given; only tracked detections are reported).
    """

    def __init__(self, config: Optional[TrackerConfig] = None, **options: Any) -> None:
        self.config = replace(config or TrackerConfig(), **options)
        self._similarity = get_similarity(self.config.matching)
        self.reset()

    def reset(self) -> None:
        """Forget every track (ids start again at 1)."""
        self.frame = 0
        self._next_id = 1
        self._hw: Optional[tuple[int, int]] = None
        self._ids = np.zeros(0, np.int64)
        self._cls = np.zeros(0, np.int64)
        self._state = np.zeros(0, np.int8)
        self._last = np.zeros(0, np.int64)  # frame of the last match
        self._mean = np.zeros((0, 8))
        self._cov = np.zeros((0, 8, 8))
        self._centre = np.zeros((0, 2))  # box centre at the last match (moves the last mask)
        self._masks: list[Optional[tuple[np.ndarray, np.ndarray]]] = []  # (bitmap bytes, region)

    def __len__(self) -> int:
        """Tracks currently kept (tentative, tracked and lost)."""
        return int(self._ids.size)

    @property
    def active_ids(self) -> np.ndarray:
        """Ids of the tracks matched in the last frame."""
        return self._ids[(self._state == TRACKED) & (self._last == self.frame)].copy()

    # ------------------------------------------------------------------------------ update
    def __call__(self, result: Any) -> Any:
        """Track an :class:`~edgeseg.runtime.results.InstanceResult`: returns a copy holding only
        the tracked detections (score order kept) with ``track_ids`` set."""
        ids = self.update(result.boxes, result.scores, result.class_ids, result.masks)
        keep = np.flatnonzero(ids >= 0)
        return _select(result, keep, ids[keep])

    def update(self, boxes: np.ndarray, scores: np.ndarray, class_ids: Optional[np.ndarray] = None,
               masks: Optional[MaskSet] = None) -> np.ndarray:
        """Advance one frame with its detections; returns ``int64`` ``(N,)`` track ids, -1 for
        detections that are not (yet) on a confirmed track."""
        boxes, scores, class_ids = self._check(boxes, scores, class_ids, masks)
        cfg = self.config
        self.frame += 1
        n_det = len(scores)
        out = np.full(n_det, -1, np.int64)
        if len(self):
            self._mean, self._cov = kalman.predict(self._mean, self._cov)
        pred = kalman.xyah_to_xyxy(self._mean)
        det_centre = (boxes[:, :2] + boxes[:, 2:]) / 2 if n_det else np.zeros((0, 2))

        det_free = np.ones(n_det, bool)
        track_free = np.ones(len(self), bool)
        matched_t: list[np.ndarray] = []
        matched_d: list[np.ndarray] = []

        def associate(t_sel: np.ndarray, d_sel: np.ndarray, min_iou: float) -> None:
            t_idx, d_idx = np.flatnonzero(t_sel & track_free), np.flatnonzero(d_sel & det_free)
            if not t_idx.size or not d_idx.size:
                return
            iou = self._iou(t_idx, d_idx, pred, boxes, masks)
            cost = 1.0 - iou
            if cfg.class_aware:
                cost[self._cls[t_idx][:, None] != class_ids[d_idx][None, :]] = np.inf
            rows, cols = ops.linear_assignment(cost, 1.0 - min_iou)
            ti, di = t_idx[rows], d_idx[cols]
            track_free[ti] = False
            det_free[di] = False
            matched_t.append(ti)
            matched_d.append(di)

        high = scores >= cfg.high
        low = (scores >= cfg.low) & ~high
        confirmed = self._state != TENTATIVE
        associate(confirmed, high, cfg.match_iou)
        associate(self._state == TRACKED, low, cfg.low_match_iou)
        associate(self._state == TENTATIVE, high, cfg.tentative_iou)

        ti = np.concatenate(matched_t) if matched_t else np.zeros(0, np.int64)
        di = np.concatenate(matched_d) if matched_d else np.zeros(0, np.int64)
        if ti.size:
            self._mean[ti], self._cov[ti] = kalman.update(self._mean[ti], self._cov[ti], boxes[di])
            new_ids = self._state[ti] == TENTATIVE
            for t in ti[new_ids]:
                self._ids[t] = self._take_id()
            self._state[ti] = TRACKED
            self._last[ti] = self.frame
            self._centre[ti] = det_centre[di]
            for t, d in zip(ti, di):
                self._masks[t] = _mask_of(masks, d)
            out[di] = self._ids[ti]

        # unmatched tracks: tracked -> lost, tentative -> gone, lost too long -> gone
        unmatched = track_free
        self._state[unmatched & (self._state == TRACKED)] = LOST
        keep = ~(unmatched & (self._state == TENTATIVE))
        keep &= ~((self._state == LOST) & (self.frame - self._last > cfg.buffer))
        self._keep(keep)

        # new tracks from the high-score detections left
        new = np.flatnonzero(det_free & (scores >= cfg.new_track))
        if new.size:
            mean, cov = kalman.initiate(boxes[new])
            first = self.frame == 1
            ids = np.array([self._take_id() for _ in new], np.int64) if first else np.full(new.size, -1)
            self._ids = np.concatenate([self._ids, ids])
            self._cls = np.concatenate([self._cls, class_ids[new]])
            self._state = np.concatenate([self._state, np.full(new.size, TRACKED if first else TENTATIVE,
                                                               np.int8)])
            self._last = np.concatenate([self._last, np.full(new.size, self.frame, np.int64)])
            self._mean = np.concatenate([self._mean, mean])
            self._cov = np.concatenate([self._cov, cov])
            self._centre = np.concatenate([self._centre, det_centre[new]])
            self._masks.extend(_mask_of(masks, d) for d in new)
            if first:
                out[new] = ids
        return out

    # ------------------------------------------------------------------------------ helpers
    def _take_id(self) -> int:
        i = self._next_id
        self._next_id += 1
        return i

    def _keep(self, keep: np.ndarray) -> None:
        if keep.all():
            return
        for name in ("_ids", "_cls", "_state", "_last", "_mean", "_cov", "_centre"):
            setattr(self, name, getattr(self, name)[keep])
        self._masks = [m for m, k in zip(self._masks, keep) if k]

    def _iou(self, t_idx: np.ndarray, d_idx: np.ndarray, pred: np.ndarray, boxes: np.ndarray,
             masks: Optional[MaskSet]) -> np.ndarray:
        t_masks = shift = d_masks = None
        if masks is not None and self.config.matching == "mask":
            parts = [self._masks[t] for t in t_idx]
            if any(p is None for p in parts):
                raise EdgesegError("mask matching needs masks in every frame; this track was started "
                                   "without one")
            regions = np.stack([p[1] for p in parts]).astype(np.int32)
            sizes = np.array([p[0].size for p in parts], np.int64)
            offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
            # pieces of validated sets of this frame size: no re-validation
            t_masks = MaskSet._trusted(np.concatenate([p[0] for p in parts]), offsets, regions, masks.image_hw)
            motion = (pred[t_idx, :2] + pred[t_idx, 2:]) / 2 - self._centre[t_idx]
            shift = np.rint(np.clip(motion, -1e6, 1e6)).astype(np.int32)
            # against every detection of the frame (cheap) rather than a re-validated subset
            iou = self._similarity(pred[t_idx], t_masks, shift, boxes, masks)[:, d_idx]
            # the visible part of an object sliding behind an occluder stays put while its box
            # centre moves: the mask where it was counts too
            iou = np.maximum(iou, self._similarity(pred[t_idx], t_masks, None, boxes, masks)[:, d_idx])
            stale = self._last[t_idx] < self.frame - 1  # unseen last frame: its mask is out of date
            if stale.any():
                iou[stale] = box_iou(pred[t_idx[stale]], boxes[d_idx])
            return iou
        return self._similarity(pred[t_idx], t_masks, shift, boxes[d_idx], d_masks)

    def _check(self, boxes: Any, scores: Any, class_ids: Any, masks: Any
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        s = np.asarray(scores, np.float64).reshape(-1)
        b = np.asarray(boxes, np.float64)
        if b.size == 0:
            b = b.reshape(0, 4)
        if b.ndim != 2 or b.shape != (s.size, 4):
            raise ArrayError(f"tracker: boxes must have shape ({s.size}, 4) (xyxy, one per score), "
                             f"got {b.shape}")
        if not (np.isfinite(b).all() and np.isfinite(s).all()):
            raise ArrayError("tracker: boxes and scores must be finite")
        c = np.zeros(s.size, np.int64) if class_ids is None else np.asarray(class_ids).reshape(-1)
        if c.shape != s.shape or (c.size and c.dtype.kind not in "iu"):
            raise ArrayError(f"tracker: class_ids must be {s.size} integers, got {c.dtype} {c.shape}")
        if masks is not None:
            if not isinstance(masks, MaskSet) or len(masks) != s.size:
                raise ArrayError(f"tracker: masks must be a MaskSet of {s.size} masks, got {masks!r:.80}")
            if self._hw is not None and masks.image_hw != self._hw:
                raise ArrayError(f"tracker: the frame size changed from {self._hw} to {masks.image_hw}; "
                                 "call reset() between videos")
            self._hw = masks.image_hw
        elif self.config.matching == "mask" and s.size:
            raise EdgesegError("mask matching needs masks with every detection; pass masks=, "
                               "or track with matching='box'")
        return b, s, c.astype(np.int64)


def _mask_of(masks: Optional[MaskSet], i: int) -> Optional[tuple[np.ndarray, np.ndarray]]:
    if masks is None:
        return None
    lo, hi = masks.offsets[i], masks.offsets[i + 1]
    return masks.data[lo:hi], masks.regions[i].copy()


def _select(result: Any, keep: np.ndarray, track_ids: np.ndarray) -> Any:
    """A copy of an instance result with the detections at ``keep`` and their track ids."""
    import dataclasses

    return dataclasses.replace(result, boxes=result.boxes[keep], scores=result.scores[keep],
                               class_ids=result.class_ids[keep], masks=result.masks.select(keep),
                               track_ids=np.asarray(track_ids, np.int64))
