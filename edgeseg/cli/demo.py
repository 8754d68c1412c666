"""`edgeseg demo`: the shipped model on a generated synthetic video (no torch needed)."""
from __future__ import annotations

import argparse
from typing import Any

from .. import defaults
from ._common import _add_other_tool_facts, _add_task, _size, model_facts


def add_parser(sub: Any, fmt: Any) -> None:
    """Register the subcommand on ``sub``."""
    p = sub.add_parser("demo", help="run the shipped model on a synthetic video (no torch needed)", formatter_class=fmt,
                       description="Generate a synthetic video, segment every frame with the shipped model (or "
                                   "--model), write OUT/overlay.mp4 and OUT/latency.json (p50/p90/p99 per stage).")
    p.add_argument("--out", default="edgeseg_demo", help="output directory")
    p.add_argument("--frames", type=int, default=defaults.DEMO_FRAMES, help="length of the generated video")
    p.add_argument("--size", type=_size, default=defaults.DEMO_FRAME_SIZE,
                   help="video frame size HxW (the shipped model was trained on square scenes)")
    p.add_argument("--model", default=None, help="model to use instead of the shipped one")
    p.add_argument("--backend", default="auto", help="inference backend: auto, onnxruntime, torch")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    _add_task(p, "which shipped model to show: semantic (class per pixel) or instance (one mask per object)")
    _add_other_tool_facts(p)
    p.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    from ..demo import run_demo

    res = run_demo(args.out, frames=args.frames, size=args.size, model=args.model, backend=args.backend,
                   progress=not args.quiet, task=args.task, facts=_facts(args))
    print(res["table"])
    print(f"input video:   {res['input']}")
    print(f"overlay video: {res['overlay']}")
    print(f"latency JSON:  {res['latency']}")
    return 0


def _facts(args: argparse.Namespace) -> dict:
    """The model facts given (input size excluded: this command's --imgsz/--size is the frame's)."""
    return {k: v for k, v in model_facts(args).items() if v is not None and k != "input_size"}
