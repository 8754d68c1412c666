"""Latency statistics that tell the truth: per-stage and end-to-end percentiles, throughput."""
from __future__ import annotations

import time
from collections import defaultdict
from typing import Any, Mapping

import numpy as np

PERCENTILES = (50, 90, 99)


class LatencyStats:
    """Collects per-frame stage times (ms) and end-to-end latency; summarises as p50/p90/p99.

    Memory grows by a few floats per frame; use ``max_frames`` to keep a rolling window on long runs.
    """

    def __init__(self, max_frames: int | None = None) -> None:
        self.max_frames = max_frames
        self._stages: dict[str, list[float]] = defaultdict(list)
        self._frames = 0
        self._dropped: dict[str, int] = defaultdict(int)
        self._t0: float | None = None
        self._t1: float | None = None

    def add(self, stages_ms: Mapping[str, float], end_to_end_ms: float | None = None) -> None:
        """Record one frame's stage times; ``end_to_end_ms`` defaults to their sum."""
        now = time.perf_counter()
        if self._t0 is None:
            self._t0 = now - (end_to_end_ms or sum(stages_ms.values())) / 1e3
        self._t1 = now
        self._frames += 1
        for k, v in stages_ms.items():
            self._append(k, float(v))
        self._append("end_to_end", float(end_to_end_ms if end_to_end_ms is not None else sum(stages_ms.values())))

    def drop(self, reason: str, n: int = 1) -> None:
        """Count frames dropped (at the source or elsewhere) and why."""
        self._dropped[reason] += n

    def _append(self, key: str, value: float) -> None:
        values = self._stages[key]
        values.append(value)
        if self.max_frames and len(values) > self.max_frames:
            del values[: len(values) - self.max_frames]

    @property
    def frames(self) -> int:
        return self._frames

    def summary(self) -> dict[str, Any]:
        """JSON-able summary: frames, wall time, FPS, per-stage mean and percentiles (ms), drops."""
        wall = (self._t1 - self._t0) if (self._t0 is not None and self._t1 is not None) else 0.0
        stages = {}
        for k, values in self._stages.items():
            a = np.asarray(values, dtype=np.float64)
            stages[k] = {"mean": round(float(a.mean()), 3)} | {
                f"p{p}": round(float(np.percentile(a, p)), 3) for p in PERCENTILES
            }
        return {
            "frames": self._frames,
            "wall_s": round(wall, 3),
            "fps": round(self._frames / wall, 2) if wall > 0 else None,
            "stages_ms": stages,
            "dropped": dict(self._dropped),
        }

    def table(self) -> str:
        """A small fixed-width text table of the summary, for terminals."""
        s = self.summary()
        lines = [f"{'stage':<12}{'mean':>9}{'p50':>9}{'p90':>9}{'p99':>9}  (ms)"]
        for k, v in s["stages_ms"].items():
            lines.append(f"{k:<12}{v['mean']:>9.2f}{v['p50']:>9.2f}{v['p90']:>9.2f}{v['p99']:>9.2f}")
        fps = f"{s['fps']:.1f}" if s["fps"] else "n/a"
        lines.append(f"frames {s['frames']}, wall {s['wall_s']:.2f} s, throughput {fps} FPS")
        if s["dropped"]:
            lines.append("dropped: " + ", ".join(f"{k}={v}" for k, v in s["dropped"].items()))
        return "\n".join(lines)
