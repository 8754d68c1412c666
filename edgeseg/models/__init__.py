"""Models (PyTorch): a registry of segmentation networks plus safetensors checkpoints.

    >>> from edgeseg.models import create_model, list_models
    >>> model = create_model("liteseg_t", num_classes=6)   # logits at 1/8: model.output_stride == 8
    >>> model = create_model("yoloseg_n", num_classes=6)   # instance: boxes, scores, coeffs, protos

Importing this package imports torch; the runtime never does.
"""
from __future__ import annotations

from . import instance  # noqa: F401  (registers the instance models)
from . import semantic  # noqa: F401  (registers the semantic models)
from .checkpoint import load_checkpoint, save_checkpoint
from .registry import UnknownModelError, create_model, is_model, list_models, model_task, register_model

__all__ = [
    "create_model",
    "list_models",
    "model_task",
    "is_model",
    "register_model",
    "UnknownModelError",
    "save_checkpoint",
    "load_checkpoint",
]
