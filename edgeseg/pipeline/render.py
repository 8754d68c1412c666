"""Per-frame rendering helpers: the on-frame HUD (temporal smoothing of label maps lives in
:mod:`edgeseg.tracking.semantic`; ModeFilter is re-exported here)."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..tracking.semantic import ModeFilter

__all__ = ["draw_hud", "ModeFilter"]


def draw_hud(image: np.ndarray, lines: Sequence[str], scale: float | None = None) -> np.ndarray:
    """Draw text lines (e.g. FPS, latency) in the top-left corner of ``image``, in place,
    white on a dark box so they read on any background. Returns ``image``."""
    import cv2

    if not lines:
        return image
    h, w = image.shape[:2]
    scale = scale or max(0.35, min(h, w) / 720)
    thick = 1 if scale < 0.8 else 2
    sizes = [cv2.getTextSize(t, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)[0] for t in lines]
    line_h = max(s[1] for s in sizes) + int(8 * scale) + 2
    box_w = max(s[0] for s in sizes) + 8
    cv2.rectangle(image, (0, 0), (min(w - 1, box_w), min(h - 1, line_h * len(lines) + 4)), (0, 0, 0), -1)
    for i, text in enumerate(lines):
        cv2.putText(image, text, (4, line_h * (i + 1) - 2), cv2.FONT_HERSHEY_SIMPLEX, scale,
                    (255, 255, 255), thick, cv2.LINE_AA)
    return image
