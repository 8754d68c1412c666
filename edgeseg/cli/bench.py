"""`edgeseg bench`: latency percentiles and throughput per backend."""
from __future__ import annotations

import argparse
from typing import Any

from .. import defaults
from ._common import _add_other_tool_facts, _add_task, _size, model_facts


def cmd_bench(args: argparse.Namespace) -> int:
    from ..bench import format_summary, run_bench

    models = [None if m == "default" else m for m in args.models] or [None]
    report = run_bench(models, task=args.task, backend=args.backend, frame_size=args.imgsz, runs=args.runs,
                       warmup=args.warmup, threads=args.threads, pipeline_frames=args.pipeline_frames,
                       out_dir=args.out, progress=not args.quiet, facts=_facts(args))
    print(format_summary(report))
    for path in report["files"].values():
        print(f"wrote {path}")
    return 0


def add_parser(sub: Any, fmt: Any) -> None:
    p = sub.add_parser("bench", help="latency percentiles and throughput per backend, on synthetic frames",
                       formatter_class=fmt,
                       description="Time pre / infer / post and end to end (mean, p50, p90, p99, FPS) one frame at "
                                   "a time, then the pipelined throughput (stages overlapped in threads), for each "
                                   "model on each backend, side by side. Prints the machine (CPU, cores, threads, "
                                   "versions); writes OUT/bench.json, OUT/bench.md and OUT/bench.png.")
    p.add_argument("models", nargs="*", metavar="MODEL",
                   help="models (.onnx, checkpoint dir ...); default: the shipped model of --task")
    _add_task(p)
    p.add_argument("--backend", default="auto",
                   help="auto (per model), all (every installed backend that reads the model's format), "
                        "or backend name(s), comma-separated: onnxruntime, torch, ...")
    p.add_argument("--imgsz", type=_size, default=None,
                   help="synthetic frame size HxW, height first "
                        f"(default {defaults.BENCH_FRAME_SIZE[0]}x{defaults.BENCH_FRAME_SIZE[1]}: 720p landscape)")
    p.add_argument("--runs", type=int, default=defaults.BENCH_RUNS, help="timed frames per model and backend")
    p.add_argument("--warmup", type=int, default=defaults.BENCH_WARMUP, help="untimed frames first")
    p.add_argument("--pipeline-frames", type=int, default=None,
                   help="frames through the threaded pipeline (default: --runs; 0 = skip)")
    p.add_argument("--threads", type=int, default=None,
                   help="inference threads (ONNX Runtime intra-op / torch); default: cores - 1, as edgeseg run")
    p.add_argument("--out", default="edgeseg_bench", help="output directory")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    _add_other_tool_facts(p)
    p.set_defaults(func=cmd_bench)


def _facts(args: argparse.Namespace) -> dict:
    """The model facts given (input size excluded: this command's --imgsz/--size is the frame's)."""
    return {k: v for k, v in model_facts(args).items() if v is not None and k != "input_size"}
