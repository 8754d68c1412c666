"""Synthetic videos with ground-truth identities, for tracking and temporal-stability tests.

Shapes of the synthetic classes (:mod:`edgeseg.data.synthetic`) move at constant velocity over a
static cluttered background and bounce off the frame's edges; nearer objects hide farther ones.
Scene kinds (``KINDS``):

* ``separate``: one object per horizontal lane, lanes apart: objects never touch (no crossings);
* ``crossing``: objects move in random directions and cross each other (partial occlusions);
* ``occluding``: as crossing, plus static pillars in front of everything that hide objects
  completely for several frames;
* ``crowd``: 30 small objects moving at random (a load test).

Every frame has the image, the semantic labels, and per visible object its track id (stable over
the video), class, visible mask (:class:`~edgeseg.masks.MaskSet`) and box. Deterministic in
(kind, seed, size).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Sequence, Union

import cv2
import numpy as np

from ..errors import DataError
from ..masks import MaskSet
from .synthetic import CLASSES, _as_hw, _background, _draw_shape, _paint_object

KINDS = ("separate", "crossing", "occluding", "crowd")

#: Objects with fewer visible pixels than this are not in the ground truth (their pixels are
#: marked 255 = ignore in the semantic labels).
MIN_VISIBLE_PX = 40


@dataclass
class TrackFrame:
    """One frame of a :class:`TrackingVideo`.

    image: BGR uint8 (H, W, 3); semantic: uint8 (H, W) class ids (255 = ignore);
    track_ids: int64 (N,) ids >= 1 of the visible objects; class_ids: int64 (N,);
    masks: MaskSet of the N visible parts; boxes: float32 (N, 4) xyxy (pixel edges);
    visible: float64 (N,) visible fraction of each object's full in-frame area.
    """

    image: np.ndarray
    semantic: np.ndarray
    track_ids: np.ndarray
    class_ids: np.ndarray
    masks: MaskSet
    boxes: np.ndarray
    visible: np.ndarray


class _Object:
    def __init__(self, rng: np.random.Generator, cls: int, r: float, pos: np.ndarray, vel: np.ndarray) -> None:
        self.cls, self.r = cls, r
        self.p0, self.v = pos.astype(float), vel.astype(float)
        self.a0, self.va = rng.uniform(0, 2 * np.pi), rng.uniform(-0.02, 0.02)
        self.shape_seed = int(rng.integers(0, 2 ** 31))
        self.paint_seed = int(rng.integers(0, 2 ** 31))

    def pose(self, t: int, w: int, h: int) -> tuple[float, float, float]:
        lo = np.array([self.r, self.r])
        span = np.maximum(np.array([w, h], float) - 2 * self.r, 1.0)
        q = np.mod(self.p0 + self.v * t - lo, 2 * span)  # bounce (triangle wave) inside the frame
        p = lo + np.where(q > span, 2 * span - q, q)
        return float(p[0]), float(p[1]), self.a0 + self.va * t


class TrackingVideo:
    """A synthetic video of ``n_frames`` frames of scene ``kind`` (see the module docstring).

    ``noise``: per-frame sensor noise, uniform in +-noise/2 grey levels; ``flicker``: per-frame
    illumination gain jitter (0.1 = up to +-10 %) and blur, like a cheap camera's; ``speed``
    scales the objects' motion. ``video[t]`` is a :class:`TrackFrame`; iterating yields them in
    order.
    """

    def __init__(self, kind: str = "crossing", n_frames: int = 60, size: Union[int, Sequence[int]] = (256, 256),
                 seed: int = 0, n_objects: int | None = None, noise: float = 8.0, flicker: float = 0.0,
                 speed: float = 1.0) -> None:
        if kind not in KINDS:
            raise DataError(f"unknown synthetic tracking scene {kind!r}; choose one of {KINDS}")
        if int(n_frames) < 1:
            raise DataError(f"n_frames must be >= 1, got {n_frames}")
        self.kind, self.n_frames, self.seed = kind, int(n_frames), int(seed)
        if noise < 0 or flicker < 0 or speed < 0:
            raise DataError(f"noise, flicker and speed must be >= 0, got {noise}, {flicker}, {speed}")
        self.noise, self.flicker, self.speed = float(noise), float(flicker), float(speed)
        self.h, self.w = _as_hw(size)
        rng = np.random.default_rng([self.seed & 0xFFFFFFFF, KINDS.index(kind), 0x7AC])
        self._bg = _background(rng, self.h, self.w)
        n = n_objects if n_objects is not None else {"separate": 3, "crossing": 4, "occluding": 4,
                                                     "crowd": 30}[kind]
        if n < 1:
            raise DataError(f"n_objects must be >= 1, got {n}")
        self.objects = self._make_objects(rng, n)
        self.pillars: list[tuple[int, int]] = []
        if kind == "occluding":
            pw = max(4, int(0.1 * self.w))
            for cx in (0.33, 0.7):
                x0 = int(cx * self.w) - pw // 2
                self.pillars.append((x0, x0 + pw))
        self.classes = CLASSES

    def _make_objects(self, rng: np.random.Generator, n: int) -> list[_Object]:
        h, w = self.h, self.w
        side = min(h, w)
        objs = []
        for i in range(n):
            cls = int(rng.integers(1, len(CLASSES)))
            speed = rng.uniform(0.006, 0.014) * side * self.speed
            if self.kind == "separate":
                lane = h / n
                r = min(0.36 * lane, 0.15 * side)
                pos = np.array([rng.uniform(r, w - r), (i + 0.5) * lane])
                vel = np.array([speed * rng.choice([-1, 1]), 0.0])
            else:
                r = rng.uniform(0.03, 0.045) * side if self.kind == "crowd" else rng.uniform(0.1, 0.15) * side
                pos = rng.uniform([r, r], [w - r, h - r])
                ang = rng.uniform(0, 2 * np.pi)
                vel = speed * np.array([np.cos(ang), np.sin(ang)])
            objs.append(_Object(rng, cls, r, pos, vel))
        return objs

    def __len__(self) -> int:
        return self.n_frames

    def __repr__(self) -> str:
        return (f"TrackingVideo({self.kind!r}, {self.n_frames} frames, {self.h}x{self.w}, "
                f"{len(self.objects)} objects, seed={self.seed})")

    def __iter__(self) -> Iterator[TrackFrame]:
        for t in range(self.n_frames):
            yield self[t]

    def __getitem__(self, t: int) -> TrackFrame:
        t = int(t)
        if not 0 <= t < self.n_frames:
            raise IndexError(f"frame {t} out of range for {self.n_frames} frames")
        h, w = self.h, self.w
        img = self._bg.copy()
        owner = np.zeros((h, w), np.int32)  # 0 = background, k + 1 = object k on top
        canvas = np.zeros((h, w), np.uint8)
        full = np.zeros(len(self.objects), np.int64)
        for k, ob in enumerate(self.objects):  # far to near
            cx, cy, a = ob.pose(t, w, h)
            canvas[:] = 0
            _draw_shape(canvas, ob.cls, cx, cy, ob.r, a, np.random.default_rng(ob.shape_seed))
            ys, xs = np.nonzero(canvas.any(1))[0], np.nonzero(canvas.any(0))[0]
            if not ys.size:
                continue
            _paint_object(img, canvas, (int(xs[0]), int(ys[0]), int(xs[-1]) + 1, int(ys[-1]) + 1),
                          np.random.default_rng(ob.paint_seed))
            m = canvas.astype(bool)
            full[k] = int(m.sum())
            owner[m] = k + 1
        for x0, x1 in self.pillars:  # in front of everything: background
            img[:, x0:x1] = self._bg[:, x0:x1] * 0.55 + 40
            owner[:, x0:x1] = 0
        frng = np.random.default_rng([self.seed & 0xFFFFFFFF, t, 0xF1])
        if self.flicker > 0:
            img = img * (1.0 + self.flicker * frng.uniform(-1, 1)) + self.flicker * 60 * frng.uniform(-1, 1)
            sigma = self.flicker * 8 * frng.uniform(0, 1)
            if sigma > 0.3:
                img = cv2.GaussianBlur(img.astype(np.float32), (0, 0), sigma)
        img = np.clip(img, 0, 255)
        if self.noise > 0:
            img = img + frng.uniform(-self.noise / 2, self.noise / 2, (h, w, 3))
        image = np.clip(np.rint(img), 0, 255).astype(np.uint8)

        counts = np.bincount(owner.ravel(), minlength=len(self.objects) + 1)
        lut = np.zeros(len(self.objects) + 1, np.uint8)
        lut[1:] = [ob.cls for ob in self.objects]
        semantic = lut[owner]
        keep = [k for k in range(len(self.objects)) if counts[k + 1] >= MIN_VISIBLE_PX]
        for k in range(len(self.objects)):
            if k not in keep and counts[k + 1] > 0:
                semantic[owner == k + 1] = 255
        dense = np.stack([owner == k + 1 for k in keep]) if keep else np.zeros((0, h, w), bool)
        masks = MaskSet.from_dense(dense)
        boxes = masks.boxes()
        return TrackFrame(image=image, semantic=semantic, track_ids=np.array(keep, np.int64) + 1,
                          class_ids=np.array([self.objects[k].cls for k in keep], np.int64), masks=masks,
                          boxes=boxes, visible=np.array([counts[k + 1] / max(full[k], 1) for k in keep]))


def noisy_detections(frame: TrackFrame, rng: np.random.Generator, box_jitter: float = 0.04,
                     miss: float = 0.03, false_positives: float = 0.1
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, MaskSet]:
    """Detections a real detector might give for a frame: the ground-truth visible masks with
    jittered boxes (``box_jitter`` x box size), scores that drop with occlusion (below 0.5 when
    less than half of an object shows: ByteTrack's low-score case), a ``miss`` rate, and on
    average ``false_positives`` small spurious low-score blobs per frame. Returns (boxes, scores,
    class_ids, masks) ordered by descending score."""
    n = len(frame.track_ids)
    keep = rng.random(n) >= miss
    boxes = frame.boxes[keep].astype(np.float64)
    wh = np.repeat(boxes[:, 2:] - boxes[:, :2], 2, axis=0).reshape(-1, 4)
    boxes = boxes + rng.normal(0, box_jitter, boxes.shape) * wh
    vis = frame.visible[keep]
    scores = np.where(vis >= 0.5, rng.uniform(0.6, 0.95, vis.size), rng.uniform(0.15, 0.45, vis.size))
    classes = frame.class_ids[keep]
    dense = frame.masks.to_dense(np.flatnonzero(keep))
    h, w = frame.semantic.shape
    for _ in range(rng.poisson(false_positives)):
        r = int(rng.integers(4, 9))
        cx, cy = int(rng.integers(r, w - r)), int(rng.integers(r, h - r))
        m = np.zeros((1, h, w), bool)
        m[0, cy - r:cy + r, cx - r:cx + r] = True
        dense = np.concatenate([dense, m])
        boxes = np.concatenate([boxes, [[cx - r, cy - r, cx + r, cy + r]]])
        scores = np.concatenate([scores, [rng.uniform(0.1, 0.4)]])
        classes = np.concatenate([classes, [int(rng.integers(1, len(CLASSES)))]])
    order = np.argsort(-scores, kind="stable")
    boxes = np.clip(boxes[order], 0, [w, h, w, h]).astype(np.float32)
    return boxes, scores[order].astype(np.float32), classes[order].astype(np.int64), \
        MaskSet.from_dense(dense[order])
