"""``--format ncnn``: ncnn ``model.ncnn.param``/``.bin`` directory for mobile and ARM CPUs
(accuracy gate)."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from . import ExportFormat, register_format


def _default_out(source: Path, precision: str) -> Path:
    from ..ncnn import default_dir

    return default_dir(source)


def _run(source: Path, out: str | None, precision: str, args: argparse.Namespace, common: dict[str, Any]) -> Any:
    from ..ncnn import export_ncnn

    return export_ncnn(source, out, threads=args.threads, **common)


def _int8_refusal() -> str:
    from ..ncnn import INT8_UNAVAILABLE

    return INT8_UNAVAILABLE


register_format(ExportFormat(
    name="ncnn", help="ncnn: ncnn .param/.bin directory",
    run=_run, default_out=_default_out, precisions=("fp32",),
    refusals={"int8": _int8_refusal(), "fp16": "--format ncnn exports FP32 weights; ncnn computes in FP16 on "
                                                "CPUs that have it when loaded with fp16=True"},
    options=("threads",), out_hint="_ncnn/"))
