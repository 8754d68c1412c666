"""Run exported models: ``load(path)`` -> the predictor of the model's kind; ``predictor(frame)``
-> SemanticResult / InstanceResult.

Layout: :mod:`.base` (the Predictor stages), one module per model kind (:mod:`.semantic`,
:mod:`.instance`, :mod:`.maskrcnn`, registered in :mod:`.kinds`), :mod:`.conventions` (how files
from edgeseg and other tools lay out their outputs), :mod:`.backends` (one per inference engine)
and :mod:`.loader`. The ONNX path needs numpy, ONNX Runtime and the C++ core only; torch is
imported solely by the torch backend, and only when a checkpoint is loaded with it.
"""
from __future__ import annotations

from . import instance, maskrcnn, semantic  # noqa: F401  (importing a kind registers it)
from .backends import Backend, TensorSpec, get_backend, list_backends, register_backend
from .base import Predictor, preprocess
from .instance import InstancePredictor, postprocess_instances
from .kinds import ModelKind, get_kind, kind_of_meta, list_kinds
from .loader import default_model_path, load
from .maskrcnn import MaskRCNNPredictor
from .results import InstanceResult, SemanticResult
from .semantic import SemanticPredictor, postprocess

__all__ = [
    "load",
    "SemanticPredictor",
    "SemanticResult",
    "Predictor",
    "InstancePredictor",
    "MaskRCNNPredictor",
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
    "ModelKind",
    "get_kind",
    "kind_of_meta",
    "list_kinds",
]
