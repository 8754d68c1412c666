"""``edgeseg demo``: the shipped model on a freshly generated synthetic video, no torch needed."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from . import defaults
from ._io import write_json
from ._progress import track
from .pipeline.sinks import VideoSink
from .pipeline.sources import VideoFileSource
from .pipeline.stats import LatencyStats


def run_demo(out_dir: str | Path = "edgeseg_demo", frames: int = defaults.DEMO_FRAMES,
             size: tuple[int, int] = defaults.DEMO_FRAME_SIZE,
             model: str | Path | None = None, backend: str = "auto", seed: int = 0,
             alpha: float = defaults.OVERLAY_ALPHA, progress: bool = True,
             task: str = "semantic", facts: dict[str, Any] | None = None) -> dict[str, Any]:
    """Generate a synthetic video, segment every frame, write the overlay video and a latency summary.

    ``task`` picks the shipped model ("semantic" or "instance") when ``model`` is None.
    Returns a dict with the paths written and the latency summary.
    """
    from . import load
    from .data.synthetic import make_video

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    video = make_video(out / "input.mp4", n_frames=frames, size=size, fps=defaults.VIDEO_FPS, seed=seed)
    predictor = load(model, backend=backend, task=task, **(facts or {}))
    stats = LatencyStats()
    with VideoFileSource(video) as source, VideoSink(out / "overlay.mp4", fps=source.fps or defaults.VIDEO_FPS) as sink:
        bar = track(source, total=getattr(source, "frame_count", None), desc="demo", enabled=progress)
        for frame in bar:
            result = predictor(frame.image)
            t0 = time.perf_counter()
            vis = result.overlay(alpha=alpha)
            t1 = time.perf_counter()
            sink.write(vis)
            t2 = time.perf_counter()
            stages = dict(result.timings)
            stages["render"] = (t1 - t0) * 1e3
            stages["sink"] = (t2 - t1) * 1e3
            stats.add(stages, end_to_end_ms=(t2 - frame.t_capture) * 1e3)
    summary = stats.summary()
    summary["model"] = str(getattr(predictor, "path", model or "shipped default"))
    summary["backend"] = getattr(predictor, "backend_name", backend)
    summary["task"] = predictor.meta.task
    summary["input_size"] = list(predictor.meta.input_size)
    summary["frame_size"] = list(size)
    write_json(out / "latency.json", summary)
    return {"input": str(video), "overlay": str(out / "overlay.mp4"),
            "latency": str(out / "latency.json"), "summary": summary, "table": stats.table()}
