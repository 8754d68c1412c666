"""Instance segmentation models. Importing this package registers them (``yoloseg_n``, ``yoloseg_s``)."""
from . import yoloseg  # noqa: F401  (registration side effects)
from .yoloseg import STRIDES, YOLOSeg, decode_boxes, make_anchors

__all__ = ["YOLOSeg", "STRIDES", "decode_boxes", "make_anchors"]
