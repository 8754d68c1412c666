"""What the subcommands share: argument types, option groups and model loading."""
from __future__ import annotations

import argparse
from typing import Any

from .. import defaults


def _size(text: str) -> tuple[int, int]:
    """Parse '256' or '256x512' (height x width)."""
    try:
        parts = [int(p) for p in text.lower().replace(",", "x").split("x")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be N or HxW (e.g. 256 or 256x512), got {text!r}") from None
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2 or min(parts) <= 0:
        raise argparse.ArgumentTypeError(f"size must be N or HxW with positive numbers, got {text!r}")
    return parts[0], parts[1]


def _triple(text: str) -> tuple[float, float, float]:
    try:
        vals = tuple(float(p) for p in text.split(","))
    except ValueError:
        vals = ()
    if len(vals) != 3:
        raise argparse.ArgumentTypeError(f"expected three comma-separated numbers R,G,B, got {text!r}")
    return vals  # type: ignore[return-value]


def _add_model_facts(p: argparse.ArgumentParser) -> None:
    """Options that describe an ONNX model exported without edgeseg's metadata."""
    g = p.add_argument_group("model facts (only for models exported without edgeseg metadata)")
    g.add_argument("--backend", default="auto", help="inference backend: auto, onnxruntime, torch (default: auto)")
    g.add_argument("--num-classes", type=int, help="number of classes the model predicts")
    g.add_argument("--classes", help="comma-separated class names (implies --num-classes)")
    g.add_argument("--imgsz", type=_size, help="network input size N or HxW")
    g.add_argument("--mean", type=_triple, help="RGB mean on the 0..255 scale, e.g. 123.675,116.28,103.53")
    g.add_argument("--std", type=_triple, help="RGB std on the 0..255 scale, e.g. 58.395,57.12,57.375")
    g.add_argument("--output-stride", type=int, help="input size / logits size of the model")


def _add_task(p: argparse.ArgumentParser, what: str = "which shipped model runs when no model is given") -> None:
    p.add_argument("--task", default="semantic", choices=["semantic", "instance"], help=what)


def _add_instance_options(p: argparse.ArgumentParser, conf: float = defaults.SCORE_THRESHOLD) -> None:
    g = p.add_argument_group("instance models")
    g.add_argument("--conf", type=float, default=None,
                   help=f"minimum detection score (default: the model's, else {conf})")
    g.add_argument("--iou", type=float, default=None,
                   help=f"NMS IoU threshold (default: the model's, else {defaults.IOU_THRESHOLD})")
    g.add_argument("--max-det", type=int, default=None,
                   help=f"detections kept per frame (default {defaults.MAX_DETECTIONS})")


def _load_predictor(args: argparse.Namespace, **overrides: Any):
    from ..runtime import load

    classes = args.classes.split(",") if getattr(args, "classes", None) else None
    options = dict(score_threshold=getattr(args, "conf", None), iou_threshold=getattr(args, "iou", None),
                   max_detections=getattr(args, "max_det", None))
    options.update(overrides)
    options = {k: v for k, v in options.items() if v is not None}  # load() rejects them for semantic models
    task = getattr(args, "task", "semantic")
    return load(args.model, backend=args.backend, num_classes=args.num_classes, classes=classes,
                input_size=args.imgsz, mean=args.mean, std=args.std, output_stride=args.output_stride,
                task=task if args.model is None else "semantic", **options)
