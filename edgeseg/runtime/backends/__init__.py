"""Backend registry: backends by name, and the suffix map that ``backend="auto"`` uses.

Each backend module registers its class with :func:`register_backend`; the class declares its
``suffixes``, so choosing a backend for a path is a dictionary lookup, not an if/elif chain.
Importing this package imports neither torch nor onnxruntime (backends import their engine
lazily, when a model is loaded or :meth:`Backend.is_available` is asked).
"""
from __future__ import annotations

from .base import Backend, TensorSpec
from .registry import (BACKENDS, DIRECTORY, SUFFIXES, available_backends, get_backend, list_backends,
                       open_backend, register_backend, resolve_backend)

# Built-in backends register themselves on import (cheap: no engine is imported here).
from . import onnxruntime_backend as _ort  # noqa: F401
from . import torch_backend as _torch  # noqa: F401
from . import openvino_backend as _openvino  # noqa: F401
from . import tensorrt_backend as _tensorrt  # noqa: F401
from . import litert_backend as _litert  # noqa: F401
from . import ncnn_backend as _ncnn  # noqa: F401

__all__ = [
    "Backend",
    "TensorSpec",
    "BACKENDS",
    "SUFFIXES",
    "DIRECTORY",
    "register_backend",
    "list_backends",
    "available_backends",
    "get_backend",
    "resolve_backend",
    "open_backend",
]
