"""What the subcommands share: argument types, option groups and model loading."""
from __future__ import annotations

import argparse
import sys
from typing import Any

from .. import defaults
from ..errors import EdgesegError
from ..geometry import parse_size


def size_arg(text: str) -> tuple[int, int]:
    """argparse type: '256' or '256x512' (height x width)."""
    try:
        return parse_size(text)
    except EdgesegError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


_size = size_arg


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
    g.add_argument("--backend", default="auto", help="inference backend: auto (by file), onnxruntime, openvino, tensorrt, litert, ncnn, torch "
                        "(default: auto)")
    g.add_argument("--imgsz", type=_size, help="network input size N or HxW")
    add_foreign_facts(g)


def add_foreign_facts(g: Any) -> None:
    """The facts a model from another tool may need (everything but --imgsz and --backend)."""
    g.add_argument("--num-classes", type=int, help="number of classes the model predicts")
    g.add_argument("--classes", help="comma-separated class names (implies --num-classes)")
    g.add_argument("--mean", type=_triple, help="RGB mean on the 0..255 scale, e.g. 123.675,116.28,103.53")
    g.add_argument("--std", type=_triple, help="RGB std on the 0..255 scale, e.g. 58.395,57.12,57.375")
    g.add_argument("--output-stride", type=int, help="input size / logits size of the model")
    g.add_argument("--layout", choices=["NCHW", "NHWC"], help="input layout, where the graph's shape cannot tell")
    g.add_argument("--channel-order", choices=["RGB", "BGR"],
                   help="colour order the model was trained on (default RGB)")
    g.add_argument("--binary-output", choices=["logits", "probabilities"],
                   help="one-channel models: what the output holds (default: read from the graph's final op)")
    g.add_argument("--binary-threshold", type=float,
                   help=f"one-channel models: foreground probability threshold (default {defaults.BINARY_THRESHOLD})")


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


def _add_model_options(p: argparse.ArgumentParser, conf: float = defaults.SCORE_THRESHOLD) -> None:
    """The options of a command that loads one model: instance thresholds, then model facts."""
    _add_instance_options(p, conf)
    _add_model_facts(p)


def _add_other_tool_facts(p: argparse.ArgumentParser) -> None:
    """The model facts, as their own group, for commands whose --imgsz/--size and --backend mean more."""
    add_foreign_facts(p.add_argument_group("models from other tools (an .onnx without edgeseg metadata)"))


def _write_report(args: argparse.Namespace, report: dict) -> None:
    """Write ``report`` to --json when it was given, and say where."""
    if args.json:
        from .._io import write_json

        write_json(args.json, report)
        print(f"report: {args.json}")


def _report_unreadable(failed: list) -> int:
    """List the (path, reason) inputs a source skipped on stderr; the exit status (1 if any)."""
    if not failed:
        return 0
    print(f"{len(failed)} input(s) could not be read and were skipped:", file=sys.stderr)
    for path, reason in failed:
        print(f"  {path}: {reason}", file=sys.stderr)
    return 1


def _load_predictor(args: argparse.Namespace, **overrides: Any):
    from ..runtime import load

    options = dict(score_threshold=getattr(args, "conf", None), iou_threshold=getattr(args, "iou", None),
                   max_detections=getattr(args, "max_det", None))
    options.update(overrides)
    options = {k: v for k, v in options.items() if v is not None}  # load() rejects them for semantic models
    task = getattr(args, "task", "semantic")
    return load(args.model, backend=args.backend, **model_facts(args),
                task=task if args.model is None else "semantic", **options)


def model_facts(args: argparse.Namespace) -> dict[str, Any]:
    """The model facts given on the command line, as :func:`edgeseg.load` keywords."""
    classes = args.classes.split(",") if getattr(args, "classes", None) else None
    return dict(num_classes=args.num_classes, classes=classes, input_size=getattr(args, "imgsz", None), mean=args.mean,
                std=args.std,
                output_stride=args.output_stride, layout=args.layout, channel_order=args.channel_order,
                binary_output=args.binary_output, binary_threshold=args.binary_threshold)
