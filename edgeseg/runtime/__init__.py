"""Run exported models: ``load(path) -> SemanticPredictor``; ``predictor(frame) -> SemanticResult``.

The ONNX path needs numpy, ONNX Runtime and the C++ core only; torch is imported solely by the
torch backend, and only when a checkpoint is loaded with it.
"""
from __future__ import annotations

from .backends import Backend, TensorSpec, get_backend, list_backends, register_backend
from .predictor import SemanticPredictor, default_model_path, load, postprocess, preprocess
from .results import SemanticResult

__all__ = [
    "load",
    "SemanticPredictor",
    "SemanticResult",
    "Backend",
    "TensorSpec",
    "get_backend",
    "list_backends",
    "register_backend",
    "default_model_path",
    "preprocess",
    "postprocess",
]
