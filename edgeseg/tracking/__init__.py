"""Tracking and temporal stability for video (numpy + the C++ core; never imports torch).

* :class:`Tracker` (:mod:`.tracker`): ids for instance detections, ByteTrack-style association
  with a constant-velocity Kalman filter on boxes, matched by box IoU or box-local mask IoU;
* stabilisers of semantic label maps (:mod:`.semantic`): mode filter, hysteresis, probability EMA.
"""
from __future__ import annotations

from .semantic import (STABILISERS, Chain, FlowEMA, Hysteresis, ModeFilter, ProbabilityEMA, Stabiliser,
                       make_stabiliser)
from .similarity import SIMILARITIES, box_iou, register_similarity
from .tracker import Tracker, TrackerConfig

__all__ = ["Tracker", "TrackerConfig", "SIMILARITIES", "register_similarity", "box_iou",
           "Stabiliser", "ModeFilter", "Hysteresis", "ProbabilityEMA", "FlowEMA", "Chain", "STABILISERS", "make_stabiliser"]
