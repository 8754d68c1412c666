"""``--format litert``: LiteRT ``.tflite`` (FP32, --fp16 weights, --int8 full integer) for ARM
CPUs, phones and LiteRT delegates (accuracy gate)."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .base import ExportFormat, calib_kwargs, register_format


def _default_out(source: Path, precision: str) -> Path:
    from ..litert import default_path

    return default_path(source, precision)


def _run(source: Path, out: str | None, precision: str, args: argparse.Namespace, common: dict[str, Any]) -> Any:
    from ..litert import export_litert

    calib = calib_kwargs(args) if precision == "int8" else {}
    return export_litert(source, out, precision=precision, threads=args.threads, **calib, **common)


register_format(ExportFormat(
    name="litert", help="litert: LiteRT/TFLite .tflite, NHWC ([--fp16] weights, [--int8] full integer)",
    run=_run, default_out=_default_out, precisions=("fp32", "fp16", "int8"), options=("threads",),
    out_hint=".tflite"))
