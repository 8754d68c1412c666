"""Soak test of the real-time pipeline: memory and threads stay flat on a long run.

    python tools/soak.py [--frames 20000] [--model PATH] [--size HxW] [--fps F] [--replay N]
                         [--keep DIR] [--json PATH] [--strict]

Runs ``--frames`` frames from the synthetic live source (``edgeseg.pipeline.SyntheticSource``,
rendering each scene as it goes; ``--replay N`` replays N pre-rendered frames instead, which is
faster) through the Pipeline with a JSON-lines sink and a video sink, as ``edgeseg run --source
synthetic --json ... --save ...`` does. Every ``--sample-every`` frames it samples the resident
memory (VmRSS) and the thread count (Threads) of this process from /proc/self/status.

Reports (and writes as JSON, atomically): RSS after warm-up, at the end and at most, the growth
after warm-up (target < 20 MB) and its slope per 1000 frames, and whether the thread count stayed
constant after warm-up. ``--strict`` exits 1 when a target is missed. At 30 FPS the default
20,000 frames take about 11 minutes.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

import edgeseg
from edgeseg._io import write_json
from edgeseg.cli._common import size_arg
from edgeseg._progress import Progress
from edgeseg.bench import ReplaySource, machine_info, synthetic_frames
from edgeseg.pipeline import (JsonlSink, Pipeline, SyntheticSource, VideoFileSource, VideoSink, apply_cpp_threads,
                              default_thread_policy)

TARGET_RSS_GROWTH_MB = 20.0
ROOT = Path(__file__).resolve().parent.parent


def proc_status() -> dict[str, float]:
    """Resident memory (MB) and OS thread count of this process (Linux /proc; else Python's view)."""
    rss_mb, threads = float("nan"), float(threading.active_count())
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss_mb = int(line.split()[1]) / 1024.0  # kB
            elif line.startswith("Threads:"):
                threads = float(line.split()[1])
    except OSError:
        pass
    return {"rss_mb": rss_mb, "threads": threads}


def analyse(samples: list[dict[str, float]], warmup_frames: int, total: int | None = None) -> dict[str, Any]:
    """RSS growth and thread constancy over the samples taken at or after ``warmup_frames``. The
    sample at the last frame (``total``) is taken while the stage threads already wind down (the
    source stops at the frame limit), so it counts for memory but not for the thread count."""
    after = [s for s in samples if s["frame"] >= warmup_frames] or samples[-1:]
    rss = np.array([s["rss_mb"] for s in after])
    frames = np.array([s["frame"] for s in after], dtype=np.float64)
    slope = float(np.polyfit(frames, rss, 1)[0]) * 1000 if len(after) >= 3 and np.ptp(frames) > 0 else None
    threads = [int(s["threads"]) for s in after if total is None or s["frame"] < total] or \
        [int(s["threads"]) for s in after]
    return {
        "rss_mb": {"warm": round(float(rss[0]), 2), "final": round(float(rss[-1]), 2),
                   "max_after_warmup": round(float(rss.max()), 2), "growth": round(float(rss[-1] - rss[0]), 2),
                   "max_growth": round(float(rss.max() - rss[0]), 2),
                   "slope_per_1k_frames": None if slope is None else round(slope, 3)},
        "threads": {"min": min(threads), "max": max(threads), "constant": min(threads) == max(threads)},
        "samples_after_warmup": len(after),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frames", type=int, default=20000, help="frames to process")
    p.add_argument("--model", default=None, help="model (default: the shipped semantic model)")
    p.add_argument("--size", type=size_arg, default=(360, 640), help="frame size HxW (default 360x640)")
    p.add_argument("--fps", type=float, default=30.0, help="frames per second the source produces")
    p.add_argument("--replay", type=int, default=0, metavar="N",
                   help="replay N pre-rendered frames instead of rendering each scene (0 = render live)")
    p.add_argument("--warmup", type=int, default=None,
                   help="frames before the RSS baseline (default: 10%% of --frames, at most 1000)")
    p.add_argument("--sample-every", type=int, default=None, help="frames between samples (default: frames/100)")
    p.add_argument("--threads", type=int, default=None, help="inference threads (default: cores - 1)")
    p.add_argument("--keep", type=Path, default=None, help="keep soak.mp4 and soak.jsonl in this folder")
    p.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "soak.json", help="report path")
    p.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    args = p.parse_args(argv)
    if args.frames < 2:
        p.error(f"--frames must be >= 2, got {args.frames}")
    warmup = args.warmup if args.warmup is not None else min(1000, args.frames // 10)
    every = max(1, args.sample_every or args.frames // 100)

    policy = default_thread_policy(ort_threads=args.threads)
    apply_cpp_threads(policy)
    predictor = edgeseg.load(args.model, threads=policy.ort_threads)
    live = dict(read_timeout=5.0, log=lambda m: print(f"soak: source: {m}", file=sys.stderr))
    if args.replay > 0:
        source: Any = ReplaySource(synthetic_frames(args.size, args.replay), fps=args.fps, **live)
    else:
        source = SyntheticSource(size=args.size, fps=args.fps, **live)
    out_dir = args.keep or Path(tempfile.mkdtemp(prefix="edgeseg_soak_"))
    out_dir.mkdir(parents=True, exist_ok=True)
    video, jsonl = out_dir / "soak.mp4", out_dir / "soak.jsonl"

    samples: list[dict[str, float]] = []
    t0 = time.perf_counter()
    bar = Progress(args.frames, desc="soak", enabled=not args.quiet)

    def sample(n: int) -> None:
        s = proc_status()
        samples.append({"frame": n, "t_s": round(time.perf_counter() - t0, 3), "rss_mb": round(s["rss_mb"], 2),
                        "threads": int(s["threads"]), "py_threads": threading.active_count()})

    def on_result(r: Any) -> None:  # runs in the pipeline's sink thread
        n = r.stats.frames + 1  # this result is counted after the callback
        if n % every == 0 or n == warmup or n == args.frames:
            sample(n)
        bar.update(1, rss_mb=samples[-1]["rss_mb"] if samples else 0.0)

    print(f"soak: {args.frames} frames, {source.describe()} -> {predictor!r} -> {jsonl.name} + {video.name}; "
          f"threads {policy.to_dict()}", file=sys.stderr)
    sample(0)
    try:
        pipe = Pipeline(predictor, source, [JsonlSink(jsonl), VideoSink(video, fps=args.fps)],
                        max_frames=args.frames, on_result=on_result)
        summary = pipe.run()
        bar.close()
        sample_end = proc_status()
        with VideoFileSource(video) as src:
            video_frames = src.frame_count
        with open(jsonl, encoding="utf-8") as fh:
            jsonl_lines = sum(1 for _ in fh)
    finally:
        if args.keep is None:
            shutil.rmtree(out_dir, ignore_errors=True)

    result = analyse(samples, warmup, args.frames)
    rss, thr = result["rss_mb"], result["threads"]
    rss_ok = rss["growth"] < TARGET_RSS_GROWTH_MB and rss["max_growth"] < TARGET_RSS_GROWTH_MB
    report: dict[str, Any] = {
        "frames": summary["frames"], "model": str(predictor.path), "source": source.describe(),
        "warmup_frames": warmup, "sample_every": every, "wall_s": round(time.perf_counter() - t0, 2),
        **result,
        "after_stop": {"rss_mb": round(sample_end["rss_mb"], 2), "threads": int(sample_end["threads"])},
        "targets": {"rss_growth_mb_below": TARGET_RSS_GROWTH_MB, "rss_ok": rss_ok, "threads_constant": thr["constant"]},
        "outputs": {"video_frames": video_frames, "jsonl_lines": jsonl_lines},
        "pipeline": {k: summary[k] for k in ("fps", "stages_ms", "dropped", "queue_high_water", "stopped")},
        "machine": machine_info(policy), "samples": samples,
    }
    write_json(args.json, report)
    print(f"soak: {summary['frames']} frames in {report['wall_s']:.0f} s ({summary['fps']} FPS), "
          f"dropped {summary['dropped']}; outputs: {video_frames} video frames, {jsonl_lines} JSON lines")
    print(f"RSS after warm-up ({warmup} frames) {rss['warm']:.1f} MB -> final {rss['final']:.1f} MB, max "
          f"{rss['max_after_warmup']:.1f} MB: growth {rss['growth']:+.2f} MB (max {rss['max_growth']:+.2f}; target < "
          f"{TARGET_RSS_GROWTH_MB:g} MB: {'met' if rss_ok else 'NOT met'}), slope {rss['slope_per_1k_frames']} MB "
          "per 1000 frames")
    print(f"threads after warm-up: {thr['min']}..{thr['max']} ({'constant' if thr['constant'] else 'NOT constant'}); "
          f"after stop {report['after_stop']['threads']}")
    print(f"wrote {args.json}")
    return 1 if args.strict and not (rss_ok and thr["constant"]) else 0


if __name__ == "__main__":
    sys.exit(main())
