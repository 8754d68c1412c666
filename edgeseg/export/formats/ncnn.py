"""``--format ncnn``: ncnn ``model.ncnn.param``/``.bin`` directory for mobile and ARM CPUs, FP32
or ``--int8`` (accuracy gate)."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .base import ExportFormat, calib_kwargs, register_format


def _default_out(source: Path, precision: str) -> Path:
    from ..ncnn import default_dir

    return default_dir(source, precision)


def _run(source: Path, out: str | None, precision: str, args: argparse.Namespace, common: dict[str, Any]) -> Any:
    from ..ncnn import export_ncnn

    calib = calib_kwargs(args) if precision == "int8" else {}
    if args.keep_float is not None:
        calib["keep_float"] = args.keep_float
    return export_ncnn(source, out, int8=precision == "int8", threads=args.threads, **calib, **common)


register_format(ExportFormat(
    name="ncnn", help="ncnn: ncnn .param/.bin directory ([--int8])",
    run=_run, default_out=_default_out, precisions=("fp32", "int8"),
    refusals={"fp16": "--format ncnn exports FP32 weights; ncnn computes in FP16 on "
                                                "CPUs that have it when loaded with fp16=True"},
    options=("threads", "keep_float"), out_hint="_ncnn/"))
