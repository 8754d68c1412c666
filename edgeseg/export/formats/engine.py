"""``--format engine``: TensorRT engine, FP32 / FP16 / INT8 (needs tensorrt and an NVIDIA GPU)."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ... import defaults
from .base import ExportFormat, calib_kwargs, register_format, stem_of


def _default_out(source: Path, precision: str) -> Path:
    return Path(f"{stem_of(source)}{'' if precision == 'fp32' else '.' + precision}.engine")


def _run(source: Path, out: str | None, precision: str, args: argparse.Namespace, common: dict[str, Any]) -> Any:
    from ..tensorrt import export_engine

    extra: dict[str, Any] = {} if args.keep_float is None else {"keep_float": args.keep_float}
    return export_engine(source, out or str(_default_out(source, precision)), precision=precision,
                         int8_mode=args.int8_mode, max_batch=args.max_batch or defaults.TRT_MAX_BATCH,
                         workspace_mb=args.workspace or defaults.TRT_WORKSPACE_MB, timing_cache=args.timing_cache,
                         device=args.device, **calib_kwargs(args), **extra, **common)


register_format(ExportFormat(
    name="engine", help="engine: TensorRT (needs tensorrt + an NVIDIA GPU)",
    run=_run, default_out=_default_out, precisions=("fp32", "fp16", "int8"),
    options=("workspace", "max_batch", "int8_mode", "timing_cache", "keep_float"), out_hint=".engine"))
