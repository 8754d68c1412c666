"""Evaluation shared by training, ``edgeseg eval`` and the export gate (numpy; never imports torch).

* :mod:`~edgeseg.eval.confusion`: confusion matrix, mIoU, pixel accuracy (semantic);
* :mod:`~edgeseg.eval.coco`: COCO ground truth and results, pycocotools' COCOeval (instance);
* :mod:`~edgeseg.eval.ap50`: COCO-rule AP50 without pycocotools (instance);
* :mod:`~edgeseg.eval.matching`: greedy one-to-one matching of two detection sets.
"""
from __future__ import annotations

from .ap50 import AP50
from .coco import coco_gt_from_dataset, detections_to_coco, evaluate_coco, evaluate_predictor
from .confusion import ConfusionMatrix
from .matching import match_detections

__all__ = ["ConfusionMatrix", "AP50", "match_detections", "coco_gt_from_dataset", "detections_to_coco",
           "evaluate_coco", "evaluate_predictor"]
