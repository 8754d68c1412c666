"""Temporal stabilisers of semantic label maps (a registry; numpy + the C++ core, no torch).

A stabiliser sees one frame after the other and may act on the model's low-resolution class
scores (before the fused upsample + argmax) and/or on the label map at frame size:

* ``mode:K`` (:class:`ModeFilter`): per pixel, the most frequent class over the last K label
  maps. Cost: K (K - 1) / 2 full-frame uint8 comparisons and K - 1 label maps of memory.
* ``hysteresis:N`` (:class:`Hysteresis`): a pixel changes class only after the new class has won
  N frames in a row. Cost: about 8 full-frame uint8 passes and 3 label-sized maps, whatever N.
* ``ema:A`` (:class:`ProbabilityEMA`): exponential moving average of the class
  log-probabilities (a running geometric mean of the probabilities) at the model's output
  resolution (1/8 of the input for the shipped models), newest frame weighted A, then the usual
  fused upsample + argmax. Log-probabilities interpolate like the logits, so the upsampled
  boundaries stay where the raw model puts them (averaging probabilities moved them: -2 mIoU
  points measured). Cost: one log-softmax and one blend over C x h x w low-resolution values
  (1/64 of the pixels at stride 8); needs float logits.
* ``flow-ema:A`` (:class:`FlowEMA`): the same average, but the previous map is first
  moved along the motion between the two frames (OpenCV's DIS optical flow, ultrafast preset,
  on a grey copy of the frame at most 160 pixels wide), so moving objects and a moving camera
  do not smear. Cost: one DIS flow at that size + C bilinear remaps of the low-resolution map.

Spec strings (``--smooth``): ``3`` (= ``mode:3``), ``mode:K``, ``hysteresis:N``, ``ema:A``,
``flow-ema:A``, or several joined by ``+`` (:class:`Chain`, e.g. ``flow-ema:0.5+hysteresis:2``:
score hooks, then label hooks, in that order); ``0`` / ``off`` / empty = none.
"""
from __future__ import annotations

from collections import deque
from typing import Any, Callable, Optional, Union

import numpy as np

from .. import defaults
from ..errors import EdgesegError


class Stabiliser:
    """Base: identity on both the scores and the labels."""

    name = "none"
    #: True when :meth:`scores` must see the model's float logits (before upsampling).
    uses_scores = False

    def scores(self, logits: np.ndarray, frame: Optional[np.ndarray] = None, info: Any = None) -> np.ndarray:
        """The (C, h, w) low-resolution class scores to upsample + argmax this frame (``frame``:
        the BGR image, ``info``: its LetterboxInfo, for stabilisers that follow motion)."""
        return logits

    def labels(self, labels: np.ndarray) -> np.ndarray:
        """The label map to report this frame, from the raw one."""
        return labels

    def __call__(self, labels: np.ndarray) -> np.ndarray:
        return self.labels(labels)

    def reset(self) -> None:
        """Forget the history (a new video)."""

    def describe(self) -> str:
        return self.name


class ModeFilter(Stabiliser):
    """Per pixel, the most frequent class over the last ``k`` label maps (the newest wins ties).

    It removes single-frame flicker (a pixel must win ``k // 2 + 1`` of ``k`` frames to change
    class when the others agree) at the cost of up to ``k // 2`` frames of lag on moving edges.
    Cost: ``k * (k - 1) / 2`` uint8 comparisons per pixel and ``k - 1`` label maps of memory; no
    probabilities are kept. The history resets when the frame size changes.
    """

    name = "mode"

    def __init__(self, k: int = defaults.SMOOTH_MODE_FRAMES) -> None:
        if k < 2:
            raise ValueError(f"ModeFilter needs k >= 2 frames, got {k}")
        self.k = k
        self._history: deque[np.ndarray] = deque(maxlen=k - 1)

    def labels(self, labels: np.ndarray) -> np.ndarray:
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

    def describe(self) -> str:
        return f"mode:{self.k}"


class Hysteresis(Stabiliser):
    """A pixel keeps its shown class until another class has been the raw label for ``n``
    frames in a row; then it switches to it. Single-frame flicker never shows (``n >= 2``);
    a real change shows ``n - 1`` frames late. Resets when the frame size changes."""

    name = "hysteresis"

    def __init__(self, n: int = defaults.SMOOTH_HYSTERESIS_FRAMES) -> None:
        if n < 1 or n > 255:
            raise ValueError(f"Hysteresis needs 1 <= n <= 255 frames, got {n}")
        self.n = n
        self._shown: Optional[np.ndarray] = None
        self._cand: Optional[np.ndarray] = None
        self._count: Optional[np.ndarray] = None

    def labels(self, labels: np.ndarray) -> np.ndarray:
        if self._shown is None or self._shown.shape != labels.shape or self._shown.dtype != labels.dtype:
            self._shown = labels.copy()
            self._cand = labels.copy()
            self._count = np.zeros(labels.shape, np.uint8)
            return labels.copy()
        shown, cand, count = self._shown, self._cand, self._count
        assert cand is not None and count is not None
        differs = labels != shown
        streak = differs & (labels == cand)
        np.add(count, 1, out=count, where=streak)        # same challenger again
        count[differs & ~streak] = 1                      # a new challenger
        count[~differs] = 0                               # the shown class won this frame
        np.copyto(cand, labels, where=differs)
        switch = count >= self.n
        np.copyto(shown, labels, where=switch)
        count[switch] = 0
        return shown.copy()

    def reset(self) -> None:
        self._shown = self._cand = self._count = None

    def describe(self) -> str:
        return f"hysteresis:{self.n}"


class ProbabilityEMA(Stabiliser):
    """Exponential moving average of the class log-probabilities at the model's output
    resolution: ``s_t = a * log_softmax(logits_t) + (1 - a) * s_{t-1}``, then the fused
    upsample + argmax of ``s_t`` (never at frame size). Resets when the output shape changes."""

    name = "ema"
    uses_scores = True

    def __init__(self, a: float = defaults.SMOOTH_EMA_WEIGHT) -> None:
        if not 0.0 < a <= 1.0:
            raise ValueError(f"ProbabilityEMA needs 0 < a <= 1, got {a}")
        self.a = float(a)
        self._p: Optional[np.ndarray] = None

    def scores(self, logits: np.ndarray, frame: Optional[np.ndarray] = None, info: Any = None) -> np.ndarray:
        p = self._probabilities(logits)
        if self._p is None or self._p.shape != p.shape:
            self._p = p
        else:
            self._p *= 1.0 - self.a
            self._p += self.a * p
        return self._p

    def _probabilities(self, logits: np.ndarray) -> np.ndarray:
        x = np.asarray(logits)
        if x.ndim == 4 and x.shape[0] == 1:
            x = x[0]
        if x.ndim != 3 or not np.issubdtype(x.dtype, np.floating):
            raise EdgesegError(f"ema smoothing needs float class scores shaped (C, h, w); this model "
                               f"outputs {x.dtype} {x.shape} (labels?): use --smooth mode:3 or "
                               "hysteresis:2")
        if x.shape[0] < 2:
            raise EdgesegError(f"ema smoothing needs scores of 2 or more classes, got {x.shape[0]} channel: "
                               "use --smooth mode:3 or hysteresis:2")
        z = x.astype(np.float32) - x.max(axis=0, keepdims=True)
        z -= np.log(np.exp(z).sum(axis=0, keepdims=True))
        return z

    def reset(self) -> None:
        self._p = None

    def describe(self) -> str:
        return f"ema:{self.a:g}"


class FlowEMA(ProbabilityEMA):
    """:class:`ProbabilityEMA` with the previous log-probabilities moved along the optical flow from
    the new frame to the previous one (DIS, ultrafast) before blending. Needs the frames and
    their letterbox geometry (the pipeline passes them). Resets when the frame size changes."""

    name = "flow-ema"
    #: Width (pixels) of the grey frame the flow is computed on.
    FLOW_WIDTH = 160

    def __init__(self, a: float = defaults.SMOOTH_EMA_WEIGHT) -> None:
        super().__init__(a)
        self._grey: Optional[np.ndarray] = None
        self._dis: Any = None

    def scores(self, logits: np.ndarray, frame: Optional[np.ndarray] = None, info: Any = None) -> np.ndarray:
        import cv2

        if frame is None or info is None:
            raise EdgesegError("flow-ema smoothing needs each frame and its letterbox info; use it "
                               "through the pipeline, or use ema:A")
        p = self._probabilities(logits)
        H, W = frame.shape[:2]
        sw = min(W, self.FLOW_WIDTH)
        sh = max(1, round(H * sw / W))
        grey = cv2.resize(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY), (sw, sh), interpolation=cv2.INTER_AREA)
        prev, self._grey = self._grey, grey
        if self._p is None or self._p.shape != p.shape or prev is None or prev.shape != grey.shape:
            self._p = p
            return self._p
        if self._dis is None:
            self._dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST)
        flow = self._dis.calc(grey, prev, None)  # new pixel x was at x + flow(x) in the previous frame
        C, h, w = p.shape
        (ih, iw), (rh, rw) = info.dst_hw, info.resized_hw
        jj = (np.arange(w) + 0.5) * iw / w - info.pad_left  # cell centres in resized-frame pixels
        ii = (np.arange(h) + 0.5) * ih / h - info.pad_top
        xs = np.clip((jj * sw / rw).astype(np.int64), 0, sw - 1)
        ys = np.clip((ii * sh / rh).astype(np.int64), 0, sh - 1)
        f = flow[ys[:, None], xs[None, :]]  # (h, w, 2) in small-frame pixels
        inside = ((jj >= 0) & (jj < rw))[None, :] & ((ii >= 0) & (ii < rh))[:, None]
        map_x = (np.arange(w)[None, :] + np.where(inside, f[..., 0] * (rw / sw) * (w / iw), 0)).astype(np.float32)
        map_y = (np.arange(h)[:, None] + np.where(inside, f[..., 1] * (rh / sh) * (h / ih), 0)).astype(np.float32)
        moved = np.stack([cv2.remap(self._p[c], map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
                          for c in range(C)])
        self._p = moved * (1.0 - self.a) + self.a * p
        return self._p

    def reset(self) -> None:
        super().reset()
        self._grey = None

    def describe(self) -> str:
        return f"flow-ema:{self.a:g}"


class Chain(Stabiliser):
    """Several stabilisers one after the other: their score hooks in order, then their label
    hooks in order. Cost: the sum of theirs."""

    name = "chain"

    def __init__(self, parts: list[Stabiliser]) -> None:
        self.parts = list(parts)
        self.uses_scores = any(p.uses_scores for p in self.parts)

    def scores(self, logits: np.ndarray, frame: Optional[np.ndarray] = None, info: Any = None) -> np.ndarray:
        for p in self.parts:
            if p.uses_scores:
                logits = p.scores(logits, frame, info)
        return logits

    def labels(self, labels: np.ndarray) -> np.ndarray:
        for p in self.parts:
            labels = p.labels(labels)
        return labels

    def reset(self) -> None:
        for p in self.parts:
            p.reset()

    def describe(self) -> str:
        return "+".join(p.describe() for p in self.parts)


#: name -> (constructor from the spec's argument, default argument)
STABILISERS: dict[str, tuple[Callable[[str], Stabiliser], str]] = {
    "mode": (lambda v: ModeFilter(int(v)), str(defaults.SMOOTH_MODE_FRAMES)),
    "hysteresis": (lambda v: Hysteresis(int(v)), str(defaults.SMOOTH_HYSTERESIS_FRAMES)),
    "ema": (lambda v: ProbabilityEMA(float(v)), str(defaults.SMOOTH_EMA_WEIGHT)),
    "flow-ema": (lambda v: FlowEMA(float(v)), str(defaults.SMOOTH_EMA_WEIGHT)),
}


def make_stabiliser(spec: Union[str, int, None, Stabiliser]) -> Optional[Stabiliser]:
    """A stabiliser from a spec (see the module docstring); None for "off"."""
    if isinstance(spec, Stabiliser):
        return spec
    if spec is None or spec is False:
        return None
    text = str(spec).strip().lower()
    if text in ("", "0", "off", "none", "false"):
        return None
    if "+" in text:
        parts = [make_stabiliser(p) for p in text.split("+")]
        if any(p is None for p in parts):
            raise EdgesegError(f"bad smoothing {spec!r}: every part of a '+' chain must be a mode")
        return Chain([p for p in parts if p is not None])
    if text.isdigit():
        k = int(text)
        if k < 2:
            raise EdgesegError(f"--smooth {k}: a mode filter needs K >= 2 frames (or 0 = off)")
        return ModeFilter(k)
    name, _, arg = text.partition(":")
    if name not in STABILISERS:
        raise EdgesegError(f"unknown smoothing {spec!r}; use K, mode:K, hysteresis:N, ema:A or flow-ema:A "
                           f"(kinds: {', '.join(STABILISERS)})")
    make, default = STABILISERS[name]
    try:
        return make(arg or default)
    except ValueError as e:
        raise EdgesegError(f"bad smoothing {spec!r}: {e}") from None
