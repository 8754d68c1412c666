"""Export-format registry: what ``edgeseg export --format NAME`` can build.

Each format is one module in this package that registers an :class:`ExportFormat`: its name,
the precisions it builds, the format-specific CLI options it takes, where its output goes by
default, and the call that runs the exporter. The CLI builds ``--format`` choices and its
checks from the registry, so a new target is a new file here, not another branch.
Importing this package imports no exporter engine (torch, onnx, LiteRT, ncnn, ...).
"""
from __future__ import annotations

from .base import FORMATS, OPTION_FLAGS, PRECISIONS, ExportFormat, calib_kwargs, get_format, register_format, stem_of

# Built-in formats register themselves on import (cheap: no engine is imported here).
from . import onnx as _onnx  # noqa: F401
from . import openvino as _openvino  # noqa: F401
from . import engine as _engine  # noqa: F401
from . import litert as _litert  # noqa: F401
from . import ncnn as _ncnn  # noqa: F401

__all__ = ["ExportFormat", "FORMATS", "OPTION_FLAGS", "PRECISIONS", "register_format", "get_format",
           "stem_of", "calib_kwargs"]
