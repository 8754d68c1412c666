"""``--format onnx``: FP32 ONNX from a checkpoint (PyTorch parity gate), or static INT8 QDQ
ONNX for ONNX Runtime (accuracy gate)."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ... import defaults
from ...errors import EdgesegError
from .base import ExportFormat, calib_kwargs, register_format


def _default_out(source: Path, precision: str) -> Path:
    if precision == "int8":
        from ..quantize import default_int8_path

        return Path(default_int8_path(source))
    return source.with_suffix(".onnx")


def _run(source: Path, out: str | None, precision: str, args: argparse.Namespace, common: dict[str, Any]) -> Any:
    if precision == "fp32":
        if source.suffix.lower() == ".onnx":
            raise EdgesegError(f"{source} is already ONNX; add --int8 to quantise it, or --format openvino|engine")
        from ..onnx import export_onnx

        return export_onnx(source, out or str(_default_out(source, precision)), dynamic=bool(args.dynamic),
                           opset=args.opset or defaults.ONNX_OPSET, input_size=args.imgsz,
                           min_agreement=args.min_agreement, verbose=True)
    from ..quantize import export_onnx_int8

    extra: dict[str, Any] = {}
    if args.int8_ops is not None:
        extra["op_types"] = args.int8_ops
    if args.keep_float is not None:
        extra["keep_float"] = args.keep_float
    return export_onnx_int8(source, out or _default_out(source, precision), method=args.calib_method or "minmax",
                            **calib_kwargs(args), **extra, **common)


register_format(ExportFormat(
    name="onnx", help="onnx (default): ONNX Runtime (FP32, or --int8: static QDQ INT8)",
    run=_run, default_out=_default_out, precisions=("fp32", "int8"),
    refusals={"fp16": "--fp16 applies to --format openvino, engine and litert; for a smaller, faster "
                      "CPU model use --format onnx --int8"},
    options=("calib_method", "keep_float", "int8_ops"), out_hint=".onnx, .int8.onnx"))
