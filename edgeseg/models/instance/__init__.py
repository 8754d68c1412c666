"""Instance segmentation models. Importing this package registers them (``yoloseg_n``, ``yoloseg_s``,
``maskrcnn``)."""
from . import maskrcnn, yoloseg  # noqa: F401  (registration side effects)
from .maskrcnn import MaskRCNN
from .yoloseg import STRIDES, YOLOSeg, decode_boxes, make_anchors

__all__ = ["MaskRCNN", "YOLOSeg", "STRIDES", "decode_boxes", "make_anchors"]
