"""`edgeseg export`: checkpoint or ONNX -> any registered format (ONNX, ONNX INT8, OpenVINO, TensorRT,
LiteRT, ncnn; see :mod:`edgeseg.export.formats`), gated for accuracy."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .. import defaults
from ..errors import EdgesegError
from ..export.formats import FORMATS, get_format
from ._common import _size, add_foreign_facts, model_facts


def add_parser(sub: Any, fmt: Any) -> None:
    """Register the subcommand on ``sub``."""
    p = sub.add_parser(
        "export", help=f"export a checkpoint to a deployable model ({', '.join(FORMATS)})",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Export a checkpoint (or an edgeseg .onnx) to a deployable model and gate it: FP32 ONNX must "
                    "match PyTorch label for label; every other format/precision must keep mIoU (semantic) or mask "
                    "AP (instance) within --accept-drop of the reference on validation images, else the model is "
                    "kept as *.rejected.* beside its report and the command fails.",
        epilog="examples:\n"
               "  edgeseg export runs/s/best --format onnx --out model.onnx\n"
               "  edgeseg export runs/s/best --format onnx --int8 --calib frames/ --keep-float head,first\n"
               "  edgeseg export model.onnx --format openvino --out model_ov --fp16\n"
               "  edgeseg export runs/s/best --format engine --fp16 --dynamic --workspace 2048\n"
               "  edgeseg export model.onnx --format litert --int8\n"
               "  edgeseg export runs/s/best --format ncnn --out model_ncnn")
    p.add_argument("source", metavar="CKPT|MODEL.onnx",
                   help="checkpoint directory (model.safetensors + config.json), or an .onnx from `edgeseg export`")
    p.add_argument("--format", default="onnx", choices=list(FORMATS),
                   help="; ".join(f.help for f in FORMATS.values()))
    p.add_argument("--out", help="output path (default: beside the source: "
                                 f"{', '.join(f.out_hint for f in FORMATS.values() if f.out_hint)})")
    p.add_argument("--fp16", action="store_true",
                   help=f"FP16 ({', '.join(f.name for f in FORMATS.values() if 'fp16' in f.precisions)})")
    p.add_argument("--int8", action="store_true",
                   help=f"INT8 ({', '.join(f.name for f in FORMATS.values() if 'int8' in f.precisions)})")
    g = p.add_argument_group("INT8 calibration")
    g.add_argument("--calib", default=None, metavar="DIR|synthetic",
                   help="calibration images: a folder of representative frames, or synthetic scenes (default)")
    g.add_argument("--calib-images", type=int, default=None, help=f"calibration images to use (default {defaults.CALIB_IMAGES})")
    g.add_argument("--calib-method", default=None, choices=["minmax", "entropy", "percentile"],
                   help="onnx --int8: activation range calibration (default minmax)")
    g.add_argument("--keep-float", default=None, metavar="LIST",
                   help="layers left in float: first, head, none and/or node names, comma-separated "
                        f"(default: {','.join(defaults.INT8_KEEP_FLOAT)})")
    g.add_argument("--int8-ops", default=None, metavar="LIST",
                   help="onnx --int8: ONNX op types to quantise, comma-separated, or all "
                        f"(default: {','.join(defaults.INT8_OP_TYPES)}, the fastest with ONNX Runtime)")
    g = p.add_argument_group("accuracy gate")
    g.add_argument("--val", default=None, metavar="DATA",
                   help=f"labelled validation data: voc:PATH, cityscapes:PATH, coco:PATH (default {defaults.GATE_VAL_DATA})")
    g.add_argument("--val-images", type=int, default=None, help=f"validation images scored (default {defaults.GATE_VAL_IMAGES})")
    g.add_argument("--accept-drop", type=float, default=None, metavar="X",
                   help="largest accepted mIoU / mask AP drop vs the reference, as a fraction "
                        f"(default {defaults.GATE_MAX_DROP}; 0.01 = one point)")
    g.add_argument("--min-agreement", type=float, default=defaults.PARITY_MIN_AGREEMENT,
                   help="FP32 exports: minimum label agreement with PyTorch; below it the export fails "
                        f"(default {defaults.PARITY_MIN_AGREEMENT})")
    g = p.add_argument_group("graph")
    g.add_argument("--dynamic", action="store_true", help="dynamic batch and input size")
    g.add_argument("--opset", type=int, default=None, help=f"ONNX opset (default {defaults.ONNX_OPSET})")
    g.add_argument("--imgsz", type=_size, default=None, help="input size (default: the training size)")
    g = p.add_argument_group("TensorRT (--format engine)")
    g.add_argument("--workspace", type=int, default=None, metavar="MB", help=f"builder workspace limit (default {defaults.TRT_WORKSPACE_MB})")
    g.add_argument("--max-batch", type=int, default=None, help=f"largest batch of a --dynamic engine (default {defaults.TRT_MAX_BATCH})")
    g.add_argument("--int8-mode", default=None, choices=["calibrate", "qdq"],
                   help="calibrate: TensorRT 10 entropy calibration; qdq: explicit Q/DQ (default on TensorRT 11)")
    g.add_argument("--timing-cache", default=None, metavar="PATH",
                   help="persistent timing cache (default ~/.cache/edgeseg/tensorrt/timing_<trt>_<gpu>.cache)")
    g.add_argument("--device", default="cuda", help="CUDA device to build on: cuda (default) or cuda:N")
    g = p.add_argument_group("LiteRT / ncnn (--format litert | ncnn)")
    g.add_argument("--threads", type=int, default=None, help="runtime threads while gating (default: the runtime's)")
    g = p.add_argument_group("models from other tools (an .onnx without edgeseg metadata; --imgsz above too)")
    add_foreign_facts(g)
    p.set_defaults(func=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    fmt, source = get_format(args.format), Path(args.source)
    if args.fp16 and args.int8:
        raise EdgesegError("give --fp16 or --int8, not both")
    precision = "fp16" if args.fp16 else "int8" if args.int8 else "fp32"
    fmt.check(precision, args)
    int8_only = [f for f, v in (("--calib", args.calib), ("--calib-images", args.calib_images),
                                ("--calib-method", args.calib_method), ("--keep-float", args.keep_float),
                                ("--int8-ops", args.int8_ops)) if v is not None]
    if int8_only and not args.int8:
        raise EdgesegError(f"{', '.join(int8_only)}: only for INT8 exports; add --int8")
    import importlib.util

    needs = ["onnx"] + (["torch"] if source.suffix.lower() != ".onnx" else [])
    missing = [m for m in needs if importlib.util.find_spec(m) is None]
    if missing:
        raise EdgesegError(f"export needs {' and '.join(missing)} (not installed); install with: "
                           "pip install 'edgeseg[train]'")
    if args.source == "default":
        from ..runtime import default_model_path

        source = default_model_path(getattr(args, "task", "semantic"))
    tmp: Path | None = None
    created = _missing_out(args.out)
    try:
        if source.suffix.lower() == ".onnx" and source.is_file():
            from ..export.foreign import embed_metadata, has_edgeseg_metadata

            facts = model_facts(args)
            if not has_edgeseg_metadata(source):  # a model from another tool: store the facts inside it first
                if fmt.name == "onnx" and precision == "fp32":
                    embed_metadata(source, args.out or source.with_name(f"{source.stem}.edgeseg.onnx"), facts,
                                   verbose=True)
                    return 0
                import tempfile

                args.out = args.out or str(fmt.default_out(source, precision))
                created = _missing_out(args.out)
                tmp = Path(tempfile.mkdtemp(prefix="edgeseg_foreign_"))
                embedded = tmp / source.name
                embed_metadata(source, embedded, facts, verbose=False)
                source = embedded
            elif any(v is not None for k, v in facts.items() if k != "input_size"):
                raise EdgesegError(f"{source} already carries edgeseg metadata; model facts (--classes, --mean, ...) "
                                   "are for models from other tools")
        common = dict(input_size=args.imgsz, dynamic=True if args.dynamic else None, opset=args.opset,
                      val=args.val, val_images=args.val_images, min_agreement=args.min_agreement,
                      max_drop=defaults.GATE_MAX_DROP if args.accept_drop is None else args.accept_drop, verbose=True)
        fmt.run(source, args.out, precision, args, common)
    except BaseException:
        if created is not None and created.is_dir() and not any(created.iterdir()):
            created.rmdir()  # nothing is left behind by a failed export: not even its empty folder
        raise
    finally:
        if tmp is not None:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
    return 0


def _missing_out(out: str | None) -> Path | None:
    """``--out`` when it does not exist yet (so a failed export can remove the folder it made)."""
    return Path(out) if out and not Path(out).exists() else None
