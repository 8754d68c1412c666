"""Results of a prediction: labels plus what is needed to show and summarise them."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import defaults, ops
from ..meta import ModelMeta

#: Keys of ``SemanticResult.timings`` (milliseconds), in pipeline order.
STAGES = ("pre", "infer", "post")


def palette_bgr(meta: ModelMeta) -> np.ndarray:
    """The model's palette (stored RGB) as a (K, 3) uint8 BGR array for :func:`ops.overlay`."""
    return np.ascontiguousarray(np.asarray(meta.palette, dtype=np.uint8).reshape(-1, 3)[:, ::-1])


@dataclass
class SemanticResult:
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

    @property
    def classes(self) -> list[str]:
        return list(self.meta.classes)

    @property
    def shape(self) -> tuple[int, int]:
        """(height, width) of the frame and of ``labels``."""
        return int(self.labels.shape[0]), int(self.labels.shape[1])

    def overlay(self, alpha: float = defaults.OVERLAY_ALPHA, out: np.ndarray | None = None) -> np.ndarray:
        """The frame with each pixel blended with its class colour: BGR uint8 (H, W, 3).

        ``alpha`` is the weight of the class colour; pass ``out`` (a BGR uint8 array of the
        frame's shape) to render into it instead of allocating.
        """
        return ops.overlay(self.frame, self.labels, palette_bgr(self.meta), alpha=alpha, out=out)

    def class_histogram(self) -> dict[str, int]:
        """Pixel count per class name (every class, zeros included)."""
        k = self.meta.num_classes
        counts = np.bincount(self.labels.ravel(), minlength=k)[:k]
        return {name: int(c) for name, c in zip(self.meta.classes, counts)}

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able summary: size, per-class pixel counts (non-zero only), timings."""
        h, w = self.shape
        return {
            "task": "semantic",
            "height": h,
            "width": w,
            "pixels": {k: v for k, v in self.class_histogram().items() if v},
            "timings_ms": {k: round(float(v), 3) for k, v in self.timings.items()},
        }

    def __repr__(self) -> str:
        t = ", ".join(f"{k}={v:.2f}ms" for k, v in self.timings.items())
        return f"SemanticResult({self.shape[0]}x{self.shape[1]}, {self.meta.num_classes} classes, {t})"
