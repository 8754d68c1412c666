"""`edgeseg info`: version, backends, threads, and what a model is: the output convention it was
recognised by, its inputs and outputs, normalisation, classes and thresholds, or, for a model
that cannot run as is, what was seen and the exact flags still needed."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from .. import __version__
from ..errors import ModelError
from ._common import _add_model_facts, model_facts


def add_parser(sub: Any, fmt: Any) -> None:
    """Register the subcommand on ``sub``."""
    p = sub.add_parser(
        "info", help="version, backends, threads, and what a model is (convention, I/O, classes)", formatter_class=fmt,
        description="Describe this installation and a model: which output convention recognised it (edgeseg's own "
                    "metadata, Ultralytics YOLO-seg, semantic logits, one-channel, argmax labels, Mask R-CNN), its "
                    "inputs and outputs, normalisation, classes and thresholds. For a model that cannot run as is, "
                    "prints what was seen and the exact flags to pass; exits 2 then.",
        epilog="examples:\n  edgeseg info                       # the shipped model\n"
               "  edgeseg info yolo11n-seg.onnx\n  edgeseg info unet.onnx --mean 123.675,116.28,103.53 "
               "--std 58.395,57.12,57.375")
    p.add_argument("model", nargs="?", default=None, help="model to describe (default: the shipped one)")
    p.add_argument("--no-model", action="store_true", help="do not load any model")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    _add_model_facts(p)
    p.set_defaults(func=cmd_info)


def describe_model(predictor: Any) -> dict[str, Any]:
    """A JSON-able description of a loaded predictor: convention, kind, I/O, classes, thresholds."""
    from ..runtime import kind_of_meta

    m = predictor.meta
    kind = kind_of_meta(m)
    conv = predictor.convention
    d: dict[str, Any] = {
        "path": str(predictor.path), "backend": predictor.backend_name, "provider": predictor.backend.provider,
        "convention": conv.name, "convention_summary": conv.summary, "kind": kind.name, "task": m.task,
        "outputs_meaning": kind.describe_outputs(m),
        "inputs": predictor.backend.describe()["inputs"], "outputs": predictor.backend.describe()["outputs"],
        "input": {"size": list(m.input_size), "layout": m.layout, "channel_order": m.extra.get("channel_order", "RGB"),
                  "dtype": m.extra.get("input_dtype", str(predictor.input_dtype)), "mean": list(m.mean),
                  "std": list(m.std), "pad_value": m.pad_value},
        "classes": list(m.classes), "source": m.extra.get("source", "edgeseg metadata"), "meta": m.to_dict(),
    }
    t = getattr(predictor, "thresholds", None)
    if t is not None:
        d["thresholds"] = {"score": t.score, "iou": t.iou, "mask": t.mask, "max_detections": t.max_detections,
                           "max_candidates": t.max_candidates, "nms_in_graph": bool(m.extra.get("graph_nms"))}
    for key in ("variant", "binary_output", "binary_threshold", "output_layout"):
        if key in m.extra:
            d[key] = m.extra[key]
    return d


def _text(d: dict[str, Any]) -> str:
    def io(specs: list[dict[str, Any]]) -> str:
        return "; ".join(f"{s['name']} {tuple(s['shape'])} {s['dtype']}" for s in specs)

    i = d["input"]
    norm = f"(x - mean) / std, mean {tuple(i['mean'])}, std {tuple(i['std'])}"
    lines = [
        f"model       {d['path']} ({d['backend']}, {d['provider']})",
        f"recognised  {d['convention']}: {d['convention_summary']}",
        f"kind        {d['kind']} ({d['task']}): {d['outputs_meaning']}"
        + (f", variant {d['variant']}" if "variant" in d else ""),
        f"inputs      {io(d['inputs'])}",
        f"outputs     {io(d['outputs'])}",
        f"feeding     letterbox to {i['size'][0]}x{i['size'][1]} (pad {i['pad_value']}), {i['layout']} "
        f"{i['channel_order']} {i['dtype']}, {norm}",
        f"classes     {len(d['classes'])}: {', '.join(d['classes'][:20])}{' ...' if len(d['classes']) > 20 else ''}",
    ]
    if "binary_output" in d:
        lines.append(f"binary      output holds {d['binary_output']}; foreground where probability > "
                     f"{d['binary_threshold']}")
    if "thresholds" in d:
        t = d["thresholds"]
        lines.append(f"thresholds  score {t['score']}, IoU {t['iou']}{' (NMS ran in the graph)' if t['nms_in_graph'] else ''}"
                     f", mask {t['mask']}, max detections {t['max_detections']}, candidates {t['max_candidates']}")
    lines.append(f"facts from  {d['source']}")
    return "\n".join(lines)


def cmd_info(args: argparse.Namespace) -> int:
    from .. import ops
    from ..runtime.backends import available_backends

    backends = available_backends()
    info: dict[str, Any] = {"edgeseg": __version__, "cpp_threads": ops.get_num_threads(),
                            "backends": [name for name, ok in backends.items() if ok],
                            "backends_missing": [name for name, ok in backends.items() if not ok]}
    if args.model is None and args.no_model:
        print(json.dumps(info, indent=2) if args.json else
              f"edgeseg {info['edgeseg']} · C++ threads {info['cpp_threads']} · backends: {', '.join(info['backends'])}")
        return 0
    from ..runtime import load

    try:
        p = load(args.model, backend=args.backend, **model_facts(args))
    except ModelError as e:
        if args.model is None:
            raise
        from ..runtime.backends import open_backend
        from ..runtime.conventions import GraphView

        seen = GraphView.of(open_backend(args.model, args.backend)).describe()
        print(f"model       {args.model}\nseen        {seen}\ncannot run as is:\n{e}", file=sys.stderr)
        return 2
    info["model"] = describe_model(p)
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        print(f"edgeseg {info['edgeseg']} · C++ threads {info['cpp_threads']} · backends: {', '.join(info['backends'])}")
        print(_text(info["model"]))
    return 0
