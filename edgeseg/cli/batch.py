"""`edgeseg batch`: a model over many recordings, on Ray actors or one after another."""
from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from .. import defaults
from ..errors import EdgesegError
from ._common import _add_model_options, _add_task, model_facts


def add_parser(sub: Any, fmt: Any) -> None:
    """Register the subcommand on ``sub``."""
    p = sub.add_parser("batch", help="run a model over many recordings (on Ray when installed)", formatter_class=fmt,
                       description="Run MODEL over every recording: per recording, OUT/<name>/ gets the overlay "
                                   "video, results.jsonl (one line per frame, as `edgeseg run --json` writes) and "
                                   "stats.json; OUT/summary.json lists every recording's frames, FPS, status and "
                                   "error. Outputs appear whole or not at all. A rerun skips recordings already "
                                   "done with the same model file, options and input files, and redoes failed or "
                                   "interrupted ones. With Ray installed (pip install 'edgeseg[ray]') recordings "
                                   "run on a pool of Ray actors, each loading the model once; a worker that dies "
                                   "has its recording redone. Without Ray they run one after another here.")
    p.add_argument("model", metavar="MODEL", help="model (.onnx or checkpoint dir), or 'default' for the shipped "
                                                   "model of --task")
    p.add_argument("inputs", metavar="INPUT", nargs="+",
                   help="video file, folder (of images: one recording; of videos: each one), glob (quote it), "
                        "a ROS 2 bag or other recording a source reads, or a .txt file listing inputs one a line")
    p.add_argument("--out", required=True, help="output folder")
    _add_task(p)
    p.add_argument("--workers", type=int, default=None,
                   help="Ray actors (default: CPUs / --cpus-per-worker, at most one per recording)")
    p.add_argument("--cpus-per-worker", type=int, default=None,
                   help="CPUs each actor reserves; its ONNX Runtime, OpenCV and C++ threads are sized to them "
                        "(default 1)")
    p.add_argument("--ray-address", default=None,
                   help="join a Ray cluster: 'auto' or ray://HOST:PORT (default: start a local Ray without "
                        "dashboard; inputs, outputs and the model must be at the same paths on every node)")
    p.add_argument("--no-ray", action="store_true", help="run the recordings one after another in this process")
    p.add_argument("--threads", type=int, default=None,
                   help="ONNX Runtime intra-op threads per worker (default: from its CPUs)")
    p.add_argument("--retries", type=int, default=defaults.BATCH_RETRIES, help="times a recording is retried after its worker died")
    p.add_argument("--force", action="store_true", help="redo recordings whose outputs are up to date")
    p.add_argument("--topic", help="ROS 2 recordings: the image topic to read")
    p.add_argument("--frames", type=int, default=None, help="stop each recording after N frames")
    p.add_argument("--video", default=".mp4", choices=[".mp4", ".avi", ".mkv", "none"],
                   help="overlay video format per recording; none = no video")
    p.add_argument("--no-json", action="store_true", help="do not write results.jsonl")
    p.add_argument("--alpha", type=float, default=defaults.OVERLAY_ALPHA, help="overlay colour weight")
    p.add_argument("--hud", action="store_true", help="draw FPS / latency on the overlay frames")
    p.add_argument("--smooth", type=int, nargs="?", const=defaults.SMOOTH_MODE_FRAMES, default=0, metavar="K",
                   help="temporal smoothing: per-pixel majority class over the last K frames; 0 = off")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    _add_model_options(p)
    p.set_defaults(func=cmd_batch)


def _settings(args: argparse.Namespace) -> Any:
    from ..batch import BatchSettings

    facts = dict(model_facts(args), backend=args.backend, score_threshold=args.conf, iou_threshold=args.iou,
                 max_detections=args.max_det)
    load_options = tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in facts.items()
                                if v is not None and not (k == "backend" and v == "auto")))
    return BatchSettings(model=args.model, task=args.task, load_options=load_options,
                         video=None if args.video == "none" else args.video, jsonl=not args.no_json,
                         smooth=args.smooth, alpha=args.alpha, hud=args.hud, max_frames=args.frames,
                         source_options=(("topic", args.topic),) if args.topic else ())


def _interrupt(*_: Any) -> None:
    raise KeyboardInterrupt


def cmd_batch(args: argparse.Namespace) -> int:
    from ..batch import SUMMARY_JSON, run_batch

    if args.frames is not None and args.frames < 1:
        raise EdgesegError(f"--frames must be >= 1, got {args.frames}")
    if args.no_ray and (args.ray_address or args.workers):
        raise EdgesegError("--no-ray runs in this process: drop --ray-address / --workers")
    settings = _settings(args)
    if settings.video is None and not settings.jsonl:
        raise EdgesegError("nothing to write: drop --video none or --no-json")
    use_ray = False if args.no_ray else (True if args.ray_address else None)
    previous = None
    if threading.current_thread() is threading.main_thread():  # SIGTERM stops like Ctrl-C
        previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        summary = run_batch(settings, args.inputs, args.out, use_ray=use_ray, workers=args.workers,
                            cpus_per_worker=args.cpus_per_worker, ray_address=args.ray_address,
                            threads=args.threads, retries=args.retries, force=args.force, progress=not args.quiet)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    counts = summary["counts"]
    rate = summary.get("recordings_per_s")
    print(f"{len(summary['recordings'])} recording(s): " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
          + f"; {summary['frames']} frames in {summary['wall_s']:.1f} s"
          + (f" ({rate:.3g} recordings/s)" if rate else "") + f" on {summary['runner']}")
    for e in summary["recordings"]:
        if e["status"] == "failed":
            print(f"  failed {e['name']}: {e['error']}", file=sys.stderr)
    print(f"summary: {Path(args.out) / SUMMARY_JSON}")
    return 1 if counts.get("failed") else 0
