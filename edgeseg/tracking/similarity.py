"""How alike a track and a detection are: box IoU or mask IoU (a registry of similarity kinds).

A similarity takes the tracks' predicted boxes and last masks moved to their predicted place, and
the frame's detections, and returns an (n_tracks, n_detections) IoU matrix in [0, 1].
"""
from __future__ import annotations

from typing import Callable, Optional

import numpy as np

from .. import ops
from ..errors import EdgesegError
from ..geometry import box_iou
from ..masks import MaskSet
from ..registry import Registry

Similarity = Callable[..., np.ndarray]

#: name -> function(track_boxes, track_masks, shift, det_boxes, det_masks) -> IoU matrix
SIMILARITIES: Registry[Similarity] = Registry("track matching")


def register_similarity(name: str) -> Callable[[Similarity], Similarity]:
    """Decorator: register a similarity function under ``name`` (``--track NAME``)."""
    return lambda fn: SIMILARITIES.add(name, fn)


def get_similarity(name: str) -> Similarity:
    """The similarity registered as ``name``; EdgesegError listing the valid names otherwise."""
    return SIMILARITIES.lookup(name)


@register_similarity("box")
def _box(track_boxes: np.ndarray, track_masks: Optional[MaskSet], shift: Optional[np.ndarray],
         det_boxes: np.ndarray, det_masks: Optional[MaskSet]) -> np.ndarray:
    """IoU of each track's Kalman-predicted box with each detection's box (what ByteTrack and
    the trackers of Ultralytics and supervision do)."""
    return box_iou(track_boxes, det_boxes)


@register_similarity("mask")
def _mask(track_boxes: np.ndarray, track_masks: Optional[MaskSet], shift: Optional[np.ndarray],
          det_boxes: np.ndarray, det_masks: Optional[MaskSet]) -> np.ndarray:
    """IoU of each track's last mask, moved by the Kalman-predicted motion of its box centre,
    with each detection's mask (box-local, in C++)."""
    if track_masks is None or det_masks is None:
        raise EdgesegError("mask matching needs masks with every detection; pass masks=, "
                           "or track with matching='box'")
    return ops.mask_iou(track_masks, det_masks, shift).astype(np.float64)
