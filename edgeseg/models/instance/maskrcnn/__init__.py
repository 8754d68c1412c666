"""Mask R-CNN in plain PyTorch (registers ``maskrcnn``); see :mod:`.model` and :mod:`.ops`."""
from .model import BOX_WEIGHTS, OUTPUT_NAMES, RPN_WEIGHTS, STRIDES, MaskRCNN, maskrcnn
from .ops import (assign_levels, batched_nms, box_iou_torch, decode_boxes, encode_boxes, grid_anchors,
                  multilevel_roi_align, roi_align)

__all__ = ["MaskRCNN", "maskrcnn", "OUTPUT_NAMES", "STRIDES", "BOX_WEIGHTS", "RPN_WEIGHTS", "roi_align",
           "multilevel_roi_align", "batched_nms", "box_iou_torch", "encode_boxes", "decode_boxes", "grid_anchors",
           "assign_levels"]
