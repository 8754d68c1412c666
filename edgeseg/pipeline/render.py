"""Per-frame rendering helpers: the on-frame HUD and temporal smoothing of label maps."""
from __future__ import annotations

from collections import deque
from typing import Sequence

import numpy as np


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


class ModeFilter:
    """Temporal smoothing of semantic labels: per pixel, the most frequent class over the last
    ``k`` label maps (the newest wins ties).

    It removes single-frame flicker (a pixel must win ``k // 2 + 1`` of ``k`` frames to change
    class when the others agree) at the cost of up to ``k // 2`` frames of lag on moving edges.
    Cost: ``k * (k - 1) / 2`` uint8 comparisons per pixel and ``k - 1`` label maps of memory; no
    probabilities are kept. The history resets when the frame size changes.
    """

    def __init__(self, k: int = 3) -> None:
        if k < 2:
            raise ValueError(f"ModeFilter needs k >= 2 frames, got {k}")
        self.k = k
        self._history: deque[np.ndarray] = deque(maxlen=k - 1)

    def __call__(self, labels: np.ndarray) -> np.ndarray:
        """Feed the newest raw label map; returns the smoothed map (a new array)."""
        if self._history and self._history[0].shape != labels.shape:
            self._history.clear()
        maps = [labels, *self._history]  # newest first
        self._history.appendleft(labels)
        if len(maps) == 1:
            return labels.copy()
        n = len(maps)
        votes = [np.ones(labels.shape, np.uint8) for _ in range(n)]
        for i in range(n):
            for j in range(i + 1, n):
                eq = maps[i] == maps[j]
                votes[i] += eq
                votes[j] += eq
        out = labels.copy()
        best = votes[0]
        for i in range(1, n):
            better = votes[i] > best  # strict: ties keep the newer class
            out[better] = maps[i][better]
            best = np.maximum(best, votes[i])
        return out

    def reset(self) -> None:
        self._history.clear()
