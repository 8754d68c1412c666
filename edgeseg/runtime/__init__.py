"""Run exported models: ``load(path)`` -> a predictor (semantic or instance, by the model's task);
``predictor(frame)`` -> SemanticResult / InstanceResult.

The ONNX path needs numpy, ONNX Runtime and the C++ core only; torch is imported solely by the
torch backend, and only when a checkpoint is loaded with it.
"""
from __future__ import annotations

from .backends import Backend, TensorSpec, get_backend, list_backends, register_backend
from .instance import InstancePredictor, postprocess_instances
from .predictor import Predictor, SemanticPredictor, default_model_path, load, postprocess, preprocess
from .results import InstanceResult, SemanticResult

__all__ = [
    "load",
    "SemanticPredictor",
    "SemanticResult",
    "Predictor",
    "InstancePredictor",
    "InstanceResult",
    "postprocess_instances",
    "Backend",
    "TensorSpec",
    "get_backend",
    "list_backends",
    "register_backend",
    "default_model_path",
    "preprocess",
    "postprocess",
]
