"""Latency statistics that tell the truth: per-stage and end-to-end percentiles, throughput."""
from __future__ import annotations

import threading
import time
from collections import defaultdict, deque
from typing import Any, Mapping

import numpy as np

PERCENTILES = (50, 90, 99)


class LatencyStats:
    """Collects per-frame stage times (ms) and end-to-end latency; summarises as p50/p90/p99.

    Percentiles are computed over the last ``max_frames`` frames (a rolling window, so memory
    stays flat on long runs; None keeps every frame). Frame counts, drops and events are totals.
    Thread-safe: the pipeline's sink thread adds while other threads read the summary.
    """

    def __init__(self, max_frames: int | None = None) -> None:
        self.max_frames = max_frames
        self._stages: dict[str, deque[float]] = {}
        self._frames = 0
        self._dropped: dict[str, int] = defaultdict(int)
        self._events: dict[str, int] = defaultdict(int)
        self._t0: float | None = None
        self._t1: float | None = None
        self._lock = threading.Lock()

    def add(self, stages_ms: Mapping[str, float], end_to_end_ms: float | None = None) -> None:
        """Record one frame's stage times; ``end_to_end_ms`` defaults to their sum."""
        now = time.perf_counter()
        e2e = float(end_to_end_ms if end_to_end_ms is not None else sum(stages_ms.values()))
        with self._lock:
            if self._t0 is None:
                self._t0 = now - e2e / 1e3
            self._t1 = now
            self._frames += 1
            for k, v in stages_ms.items():
                self._append(k, float(v))
            self._append("end_to_end", e2e)

    def drop(self, reason: str, n: int = 1) -> None:
        """Count frames dropped (at the source or elsewhere) and why."""
        if n:
            with self._lock:
                self._dropped[reason] += n

    def event(self, name: str, n: int = 1) -> None:
        """Count something that happened that is not a frame (e.g. "reconnect", "read_timeout")."""
        with self._lock:
            self._events[name] += n

    def _append(self, key: str, value: float) -> None:
        values = self._stages.get(key)
        if values is None:
            values = self._stages[key] = deque(maxlen=self.max_frames or None)
        values.append(value)

    @property
    def frames(self) -> int:
        return self._frames

    @property
    def dropped(self) -> dict[str, int]:
        with self._lock:
            return dict(self._dropped)

    def window_len(self) -> int:
        """Values held per stage (bounded by ``max_frames``)."""
        with self._lock:
            return max((len(v) for v in self._stages.values()), default=0)

    def summary(self) -> dict[str, Any]:
        """JSON-able summary: frames, wall time, FPS, per-stage mean and percentiles (ms), drops
        (``dropped``: frames lost and why) and ``events`` (reconnects, timeouts, ...)."""
        with self._lock:
            wall = (self._t1 - self._t0) if (self._t0 is not None and self._t1 is not None) else 0.0
            snapshot = {k: np.asarray(v, dtype=np.float64) for k, v in self._stages.items()}
            frames, dropped, events = self._frames, dict(self._dropped), dict(self._events)
        stages = {}
        for k, a in snapshot.items():
            stages[k] = {"mean": round(float(a.mean()), 3)} | {
                f"p{p}": round(float(np.percentile(a, p)), 3) for p in PERCENTILES
            }
        out: dict[str, Any] = {
            "frames": frames,
            "wall_s": round(wall, 3),
            "fps": round(frames / wall, 2) if wall > 0 else None,
            "stages_ms": stages,
            "dropped": dropped,
        }
        if events:
            out["events"] = events
        return out

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
        if s.get("events"):
            lines.append("events: " + ", ".join(f"{k}={v}" for k, v in s["events"].items()))
        return "\n".join(lines)
