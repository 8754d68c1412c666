"""``--format openvino``: OpenVINO IR directory, FP32 or FP16 weights (accuracy gate)."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .base import ExportFormat, register_format, stem_of


def _default_out(source: Path, precision: str) -> Path:
    return Path(f"{stem_of(source)}_openvino{'_fp16' if precision == 'fp16' else ''}")


def _run(source: Path, out: str | None, precision: str, args: argparse.Namespace, common: dict[str, Any]) -> Any:
    from ..openvino import export_openvino

    return export_openvino(source, out or _default_out(source, precision), fp16=precision == "fp16", **common)


register_format(ExportFormat(
    name="openvino", help="openvino: OpenVINO IR directory ([--fp16] weights)",
    run=_run, default_out=_default_out, precisions=("fp32", "fp16"),
    refusals={"int8": "OpenVINO INT8 is not built by edgeseg; use --format onnx --int8 (ONNX Runtime INT8 for "
                      "CPUs) or --format openvino [--fp16]"},
    out_hint="_openvino/"))
