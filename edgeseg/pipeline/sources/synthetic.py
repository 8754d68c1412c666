"""A generated moving scene delivered live at a fixed frame rate (needs no hardware)."""
from __future__ import annotations

import time
from typing import Any

import numpy as np

from ... import defaults
from ...errors import SourceError
from .live import LIVE_OPTIONS, LiveSource
from .registry import register_source


class SyntheticSource(LiveSource):
    """The moving synthetic scene of :func:`edgeseg.data.synthetic.video_frame`, produced live
    at ``fps`` frames per second (like a camera: frame ``t`` is the one due at wall-clock tick
    ``t``; if generation falls behind, ticks are skipped, not queued). Needs no hardware."""

    def __init__(self, size: int | tuple[int, int] = defaults.SYNTHETIC_SOURCE_SIZE,
                 fps: float = defaults.VIDEO_FPS, seed: int = 0,
                 **live_options: Any) -> None:
        super().__init__(**live_options)
        if fps <= 0:
            raise SourceError(f"synthetic source fps must be > 0, got {fps:g}")
        self.size = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
        self.fps = float(fps)
        self.seed = seed
        self._t0 = 0.0
        self._tick = -1

    def describe(self) -> str:
        return f"synthetic {self.size[0]}x{self.size[1]} @ {self.fps:g} FPS"

    def _open(self) -> None:
        self._t0 = time.perf_counter()
        self._tick = -1

    def _wait_next(self) -> None:
        tick = max(self._tick + 1, int((time.perf_counter() - self._t0) * self.fps))
        self._stop.wait(max(0.0, self._t0 + tick / self.fps - time.perf_counter()))
        self._tick = tick

    def _read(self) -> np.ndarray | None:
        from ...data.synthetic import video_frame

        return video_frame(self._tick, self.size, self.seed).image


@register_source("synthetic", priority=5, live=True, options=LIVE_OPTIONS + ("size", "fps", "seed"),
                 help="synthetic or synthetic:FPS, a generated live scene")
def _open_synthetic(spec: Any, **options: Any) -> SyntheticSource | None:
    if not isinstance(spec, str) or not (spec == "synthetic" or spec.startswith("synthetic:")):
        return None
    if ":" in spec:
        try:
            options["fps"] = float(spec.split(":", 1)[1])
        except ValueError:
            raise SourceError(f"bad synthetic source {spec!r}; use synthetic or synthetic:FPS (e.g. synthetic:15)") from None
    return SyntheticSource(**options)

