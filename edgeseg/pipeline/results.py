"""What a pipeline hands out: the predictor's own result (built by its ``make_result``) wrapped
with where and when its frame came from.

:class:`StreamResult` holds a :class:`~edgeseg.runtime.results.SemanticResult` or
:class:`~edgeseg.runtime.results.InstanceResult` as :attr:`StreamResult.result` and reads every
attribute it does not have through to it (``labels``, ``boxes``, ``masks``, ``overlay()``,
``to_coco()`` ...), so one type serves every kind of model.
"""
from __future__ import annotations

import time
from typing import Any

import numpy as np

from .stats import LatencyStats


class StreamResult:
    """A result from a pipeline.

    Attributes:
        result: the predictor's result for this frame.
        index: the frame's index in its source (gaps mean frames dropped at a live source).
        name: the frame's name (file stem or ``frame_000123``).
        t_capture: ``time.perf_counter()`` when the frame was read.
        t_result: ``time.perf_counter()`` when its result was ready (after post-processing).
        vis: the rendered overlay (+ HUD), when the pipeline renders; else None.
        stats: the pipeline's live :class:`LatencyStats` (``stats.summary()`` any time).
        stamp_ns, frame_id: the frame's own timestamp and coordinate frame, from recordings
            (None and "" otherwise).
    ``timings`` (the result's) holds milliseconds for "capture" (read/decode), "pre", "infer",
    "post", "render".
    """

    def __init__(self, result: Any, *, index: int = 0, name: str = "", t_capture: float = 0.0,
                 t_result: float = 0.0, vis: np.ndarray | None = None, stats: LatencyStats | None = None,
                 stamp_ns: int | None = None, frame_id: str = "") -> None:
        self.result = result
        self.index = index
        self.name = name
        self.t_capture = t_capture
        self.t_result = t_result
        self.vis = vis
        self.stats = stats
        self.stamp_ns = stamp_ns
        self.frame_id = frame_id

    def __getattr__(self, attr: str) -> Any:
        if attr == "result":  # not set yet (copying, unpickling): never recurse
            raise AttributeError(attr)
        return getattr(self.result, attr)

    def __len__(self) -> int:
        return len(self.result)

    @property
    def age_ms(self) -> float:
        """Frame age when the result was ready: t_result - t_capture, in milliseconds."""
        return (self.t_result - self.t_capture) * 1e3

    def record(self) -> dict[str, Any]:
        """One JSON-able line for ``--json``: index, name, capture time (``t_capture`` on the
        perf_counter clock and ``time_unix``), ``age_ms``, per-stage ``timings_ms``, and the
        result's content (semantic: per-class pixel ``histogram``; instance: ``detections`` with
        RLE masks)."""
        unix = time.time() - (time.perf_counter() - self.t_capture)
        return {
            "index": self.index,
            "name": self.name,
            "t_capture": round(self.t_capture, 6),
            "time_unix": round(unix, 6),
            "age_ms": round(self.age_ms, 3),
            **({"stamp_ns": self.stamp_ns, "frame_id": self.frame_id} if self.stamp_ns is not None else {}),
            "timings_ms": {k: round(float(v), 3) for k, v in self.result.timings.items()},
            **self.result.content(),
        }

    def __repr__(self) -> str:
        h, w = self.result.frame.shape[:2]
        return (f"StreamResult({type(self.result).__name__} #{self.index} {h}x{w}, age {self.age_ms:.1f} ms, "
                + ", ".join(f"{k}={v:.2f}ms" for k, v in self.result.timings.items()) + ")")


#: The same type: every kind of model's results are wrapped alike.
InstanceStreamResult = StreamResult
