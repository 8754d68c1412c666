"""Results of a prediction: labels plus what is needed to show and summarise them."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from .. import defaults, ops
from ..meta import ModelMeta

#: Keys of ``SemanticResult.timings`` (milliseconds), in pipeline order.
STAGES = ("pre", "infer", "post")


def palette_bgr(meta: ModelMeta) -> np.ndarray:
    """The model's palette (stored RGB) as a (K, 3) uint8 BGR array for :func:`ops.overlay`."""
    return np.ascontiguousarray(np.asarray(meta.palette, dtype=np.uint8).reshape(-1, 3)[:, ::-1])


def display_palette_bgr(meta: ModelMeta) -> np.ndarray:
    """The colours overlays use (BGR): the model's palette, except that a palette equal to the
    PASCAL VOC colour map (the default of models exported before the bright default palette,
    dark navy / olive / purple that barely show on footage) is shown with
    :func:`edgeseg.meta.default_palette`."""
    from ..meta import default_palette, voc_palette

    n = len(meta.palette)
    if [tuple(c) for c in meta.palette] == voc_palette(n):
        return np.ascontiguousarray(np.asarray(default_palette(n), np.uint8)[:, ::-1])
    return palette_bgr(meta)


#: Class names drawn untinted in semantic overlays (compared case-insensitively).
UNTINTED_CLASSES = ("background", "_background_", "__background__", "bg")


def untinted_classes(meta: ModelMeta) -> list[int]:
    """Indices of the classes left untinted in overlays (the background class, by name)."""
    return [i for i, c in enumerate(meta.classes) if c.strip().lower() in UNTINTED_CLASSES]


def draw_legend(image: np.ndarray, names: list[str], colors_bgr: np.ndarray) -> np.ndarray:
    """Draw a legend (colour swatch + name per entry) in the top-right corner, in place."""
    import cv2

    if not names:
        return image
    h, w = image.shape[:2]
    scale = max(0.35, min(h, w) / 900)
    thick = 1
    sizes = [cv2.getTextSize(n, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)[0] for n in names]
    line = max(s[1] for s in sizes) + max(6, int(10 * scale))
    sw = line - 4
    box_w = max(s[0] for s in sizes) + sw + 14
    x0 = max(0, w - box_w - 4)
    y1 = min(h - 1, 4 + line * len(names) + 4)
    roi = image[4:y1, x0:w - 4]
    roi[...] = (roi.astype(np.uint16) * 2 // 5).astype(np.uint8)  # darken behind the text
    for i, (name, c) in enumerate(zip(names, colors_bgr)):
        y = 6 + i * line
        cv2.rectangle(image, (x0 + 4, y + 1), (x0 + 4 + sw, y + sw - 1), tuple(int(v) for v in c), -1)
        cv2.putText(image, name, (x0 + sw + 9, y + sw - 3), cv2.FONT_HERSHEY_SIMPLEX, scale,
                    (255, 255, 255), thick, cv2.LINE_AA)
    return image


class FrameResult:
    """What the result of every kind of model shares: the frame, the model's ModelMeta and the
    per-stage timings, and from them the class names, the size and the summary's framing."""

    frame: np.ndarray
    meta: ModelMeta
    timings: dict[str, float]
    #: The array whose first two axes give :attr:`shape`.
    _sized_by: ClassVar[str] = "frame"

    @property
    def classes(self) -> list[str]:
        return list(self.meta.classes)

    @property
    def shape(self) -> tuple[int, int]:
        """(height, width) of the frame."""
        a = getattr(self, self._sized_by)
        return int(a.shape[0]), int(a.shape[1])

    def _summary(self, task: str, **body: Any) -> dict[str, Any]:
        """The JSON-able summary: task, size, ``body``, then the timings."""
        h, w = self.shape
        return {"task": task, "height": h, "width": w, **body,
                "timings_ms": {k: round(float(v), 3) for k, v in self.timings.items()}}

    def _repr(self, what: str) -> str:
        t = ", ".join(f"{k}={v:.2f}ms" for k, v in self.timings.items())
        return f"{type(self).__name__}({self.shape[0]}x{self.shape[1]}, {what}, {t})"


@dataclass
class SemanticResult(FrameResult):
    """Semantic segmentation of one frame.

    Attributes:
        labels: (H, W) class ids at the frame's resolution (uint8 when <= 255 classes).
        frame: the BGR uint8 input frame (a reference, not a copy).
        meta: the model's ModelMeta (class names, palette, ...).
        timings: milliseconds per stage: "pre" (letterbox), "infer" (backend), "post"
            (upsample + argmax), like Ultralytics' ``Results.speed``.
    """

    labels: np.ndarray
    frame: np.ndarray
    meta: ModelMeta
    timings: dict[str, float] = field(default_factory=dict)
    _sized_by: ClassVar[str] = "labels"  # the same (height, width) as the frame

    def overlay(self, alpha: float = defaults.OVERLAY_ALPHA, out: np.ndarray | None = None,
                legend: bool = False, palette: np.ndarray | None = None) -> np.ndarray:
        """The frame with each pixel blended with its class colour: BGR uint8 (H, W, 3).

        Background pixels (:func:`untinted_classes`) and ignore labels (>= the class count) stay
        untinted. ``alpha`` is the weight of the class colour; pass ``out`` (a BGR uint8 array of
        the frame's shape) to render into it instead of allocating; ``legend`` draws the names and
        colours of the classes present in the top-right corner; ``palette``: (K, 3) BGR colours to
        use instead of :func:`display_palette_bgr`.
        """
        pal = display_palette_bgr(self.meta) if palette is None else np.ascontiguousarray(palette, np.uint8)
        skip = untinted_classes(self.meta)
        out = ops.overlay(self.frame, self.labels, pal, alpha=alpha, out=out, skip=skip)
        if legend:
            k = self.meta.num_classes
            present = np.flatnonzero(np.bincount(self.labels.ravel(), minlength=k)[:k])
            shown = [int(i) for i in present if int(i) not in skip]
            draw_legend(out, [self.meta.classes[i] for i in shown], pal[shown])
        return out

    def class_histogram(self) -> dict[str, int]:
        """Pixel count per class name (every class, zeros included)."""
        k = self.meta.num_classes
        counts = np.bincount(self.labels.ravel(), minlength=k)[:k]
        return {name: int(c) for name, c in zip(self.meta.classes, counts)}

    def content(self) -> dict[str, Any]:
        """What a frame's JSON line holds for this result: the per-class pixel histogram."""
        return {"histogram": self.class_histogram()}

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able summary: size, per-class pixel counts (non-zero only), timings."""
        return self._summary("semantic", pixels={k: v for k, v in self.class_histogram().items() if v})

    def __repr__(self) -> str:
        return self._repr(f"{self.meta.num_classes} classes")


def instance_colors(n: int | np.ndarray) -> np.ndarray:
    """Well-separated BGR colours (golden-ratio hues): ``n`` of them, or one per key of an
    integer array (e.g. track ids: the same id gets the same colour in every frame)."""
    import cv2

    keys = np.arange(n) if np.ndim(n) == 0 else np.asarray(n, np.int64).reshape(-1)
    if keys.size == 0:
        return np.zeros((0, 3), np.uint8)
    hues = ((keys * 0.618033988749895 + 0.11) % 1.0 * 180).astype(np.uint8)
    hsv = np.stack([hues, np.full(keys.size, 200, np.uint8), np.full(keys.size, 255, np.uint8)], 1)[None]
    return np.ascontiguousarray(cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0])


@dataclass
class InstanceResult(FrameResult):
    """Instance segmentation of one frame; detections ordered by descending score.

    Attributes:
        boxes: (N, 4) float32 xyxy in frame pixels (pixel edges).
        scores: (N,) float32 class probabilities.
        class_ids: (N,) int32 indices into ``meta.classes``.
        masks: an :class:`edgeseg.masks.MaskSet` (box-local bitmaps at frame resolution;
            ``masks.to_dense()`` / ``masks.to_rle()``).
        frame, meta, timings: as in :class:`SemanticResult` ("post" = decode + NMS + masks).
        track_ids: (N,) int64 ids from a :class:`edgeseg.Tracker`, or None when not tracked.
    """

    boxes: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray
    masks: Any
    frame: np.ndarray
    meta: ModelMeta
    timings: dict[str, float] = field(default_factory=dict)
    track_ids: np.ndarray | None = None

    def __len__(self) -> int:
        return int(len(self.scores))

    def class_names(self) -> list[str]:
        """The class name of each detection."""
        return [self.meta.classes[int(c)] for c in self.class_ids]

    def overlay(self, alpha: float = defaults.OVERLAY_ALPHA, outline: bool = True, boxes: bool = True,
                labels: bool = True) -> np.ndarray:
        """The frame with each instance blended in its own colour, its mask outlined, and its box
        and "class score" label drawn (tracked: colour per track id, label "#id class score"):
        BGR uint8 (H, W, 3), a new array."""
        import cv2

        colors = instance_colors(len(self) if self.track_ids is None else self.track_ids)
        back_to_front = np.arange(len(self))[::-1]  # the highest score is drawn last, on top
        out = ops.overlay_instances(self.frame, self.masks.select(back_to_front),
                                    np.ascontiguousarray(colors[back_to_front]), alpha=alpha, outline=outline)
        if not (boxes or labels):
            return out
        h, w = self.shape
        thick = max(1, round(min(h, w) / 400))
        scale = max(0.35, min(h, w) / 900)
        for i in range(len(self)):
            x0, y0, x1, y1 = (int(round(float(v))) for v in self.boxes[i])
            c = tuple(int(v) for v in colors[i])
            if boxes:
                cv2.rectangle(out, (x0, y0), (max(x0, x1 - 1), max(y0, y1 - 1)), c, thick, cv2.LINE_AA)
            if labels:
                text = f"{self.meta.classes[int(self.class_ids[i])]} {float(self.scores[i]):.2f}"
                if self.track_ids is not None:
                    text = f"#{int(self.track_ids[i])} {text}"
                (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
                ty = y0 - 2 if y0 - th - base - 2 >= 0 else min(h - 1, y0 + th + 2)
                cv2.rectangle(out, (x0, ty - th - 2), (x0 + tw + 2, ty + base - 1), c, -1)
                cv2.putText(out, text, (x0 + 1, ty - 1), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA)
        return out

    def instance_map(self) -> np.ndarray:
        """(H, W) uint16 map: 0 = no instance, i + 1 = detection i (higher scores drawn on top)."""
        h, w = self.shape
        out = np.zeros((h, w), np.uint16)
        regions = self.masks.regions
        for i in range(len(self) - 1, -1, -1):
            x0, y0, x1, y1 = (int(v) for v in regions[i])
            m = self.masks.bitmap(i).astype(bool)
            if m.size:
                out[y0:y1, x0:x1][m] = i + 1
        return out

    def to_coco(self, image_id: int = 0, category_ids: Any = None) -> list[dict[str, Any]]:
        """Detections in the COCO results format (bbox xywh, RLE segmentation, score).

        ``category_ids[c]`` maps class index c to the dataset's category id (default: c + 1).
        Tracked results add each detection's ``track_id``.
        """
        rles = self.masks.to_rle()
        out = []
        for i in range(len(self)):
            x0, y0, x1, y1 = (float(v) for v in self.boxes[i])
            c = int(self.class_ids[i])
            out.append({
                "image_id": int(image_id),
                "category_id": int(category_ids[c]) if category_ids is not None else c + 1,
                "bbox": [round(x0, 2), round(y0, 2), round(x1 - x0, 2), round(y1 - y0, 2)],
                "score": round(float(self.scores[i]), 5),
                "segmentation": rles[i],
            })
            if self.track_ids is not None:
                out[-1]["track_id"] = int(self.track_ids[i])
        return out

    def content(self) -> dict[str, Any]:
        """What a frame's JSON line holds for this result: the detections, each with the COCO RLE
        (size + compressed counts) of its mask at frame resolution."""
        dets = self.to_dict()["detections"]
        for d, rle in zip(dets, self.masks.to_rle()):
            d["rle"] = rle
        return {"detections": dets}

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able summary: size, detections (class, score, box, mask area, and ``track_id``
        when tracked), timings."""
        areas = self.masks.areas()
        dets = [{"class": self.meta.classes[int(c)], "score": round(float(s), 4),
                 "box": [round(float(v), 1) for v in b], "area": int(a)}
                for c, s, b, a in zip(self.class_ids, self.scores, self.boxes, areas)]
        if self.track_ids is not None:
            for d, t in zip(dets, self.track_ids):
                d["track_id"] = int(t)
        return self._summary("instance", detections=dets)

    def __repr__(self) -> str:
        return self._repr(f"{len(self)} instances")
