"""Export checkpoints to deployable artefacts (ONNX) with embedded metadata and a parity report.

Importing this package is cheap; torch and onnx are imported when an export runs.
"""
from __future__ import annotations

from .onnx import ExportReport, export_onnx, parity_path, rejected_path
from .parity import ParityReport, check_parity

__all__ = ["export_onnx", "ExportReport", "check_parity", "ParityReport", "parity_path", "rejected_path"]
