"""edgeseg: real-time image segmentation for the edge.

``import edgeseg`` never imports torch; running an exported model needs only numpy, OpenCV,
ONNX Runtime and the C++ core (``edgeseg._C``).
"""
from __future__ import annotations

__version__ = "0.1.0"

import os as _os  # noqa: E402

from . import defaults as _defaults  # noqa: E402

# OpenCV reads its decoder size limit once, at import: set it before anything imports cv2.
_os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(_defaults.max_image_pixels()))

from .errors import (  # noqa: E402
    ArrayError,
    BackendError,
    DataError,
    EdgesegError,
    ExportError,
    InputFileError,
    ModelError,
    OutputError,
    SourceError,
)
from .meta import ModelMeta  # noqa: E402


def load(path=None, backend: str = "auto", **kwargs):
    """Load a deployable model (.onnx, or a checkpoint directory) and return a predictor.

    ``path=None`` loads the semantic model shipped with the package. See
    :func:`edgeseg.runtime.load` for the keyword options.
    """
    from .runtime import load as _load

    return _load(path, backend=backend, **kwargs)


def __getattr__(name: str):
    if name == "Tracker":  # imported on first use (numpy + the C++ core)
        from .tracking import Tracker

        return Tracker
    raise AttributeError(f"module 'edgeseg' has no attribute {name!r}")


__all__ = [
    "__version__",
    "load",
    "Tracker",
    "ModelMeta",
    "EdgesegError",
    "ArrayError",
    "BackendError",
    "DataError",
    "ExportError",
    "InputFileError",
    "ModelError",
    "OutputError",
    "SourceError",
]
