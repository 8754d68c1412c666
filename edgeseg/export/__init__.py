"""Export checkpoints to deployable artefacts with embedded metadata and a parity / accuracy report:
ONNX (FP32, or INT8 via ONNX Runtime static quantisation), OpenVINO IR, TensorRT engines.

Importing this package is cheap; torch, onnx, openvino and tensorrt are imported when an export runs.
"""
from __future__ import annotations

from .accuracy import accuracy_gate
from .onnx import ExportReport, export_onnx, parity_path, rejected_path
from .openvino import export_openvino
from .parity import ParityReport, check_parity
from .quantize import export_onnx_int8
from .tensorrt import export_engine

__all__ = ["export_onnx", "export_onnx_int8", "export_openvino", "export_engine", "accuracy_gate",
           "ExportReport", "check_parity", "ParityReport", "parity_path", "rejected_path"]
