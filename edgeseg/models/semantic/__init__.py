"""Semantic segmentation models. Importing this package registers them."""
from . import fcn, liteseg  # noqa: F401  (registration side effects)
from .fcn import FCN
from .liteseg import LiteSeg

__all__ = ["FCN", "LiteSeg"]
