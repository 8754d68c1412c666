"""Instance validation as deployed: letterbox to the input size, the torch model's outputs decoded
by the runtime's post-processing of its kind (through its training hooks; the functions
``edgeseg eval`` and the predictors run), masks at frame resolution, then COCO scores.

Scores come from pycocotools' COCOeval through :mod:`edgeseg.eval.coco` (box and mask AP50, and
AP over IoU 0.5:0.95) when pycocotools is installed; :class:`~edgeseg.eval.ap50.AP50` computes
the same AP50 with COCO's matching rules without it and gives the per-class AP50. A dataset can
be scored in shards (one per process) whose :class:`InstanceScores` are merged.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset

from .. import defaults
from ..errors import EdgesegError
from ..geometry import LetterboxInfo
from ..eval.ap50 import AP50
from .._progress import Progress
from .common import worker_init
from .hooks import hooks_for_model
from .instance_dataset import InstanceEvalDataset, instance_eval_collate

#: Validation scorers (see evaluate_instances).
EVALUATORS = ("auto", "cocoeval", "builtin")


def use_cocoeval(evaluator: str) -> bool:
    """Whether ``evaluator`` scores with pycocotools ("auto": when it is installed)."""
    if evaluator not in EVALUATORS:
        raise EdgesegError(f"evaluator must be one of {EVALUATORS}, got {evaluator!r}")
    if evaluator != "auto":
        return evaluator == "cocoeval"
    import importlib.util

    return importlib.util.find_spec("pycocotools") is not None


@torch.no_grad()
def predict_instances(model: torch.nn.Module, images: torch.Tensor, letterboxes: Sequence[LetterboxInfo],
                      score_threshold: float = 0.25, iou_threshold: float = 0.5, max_detections: int = 100,
                      mean: Sequence[float] = defaults.MEAN_RGB, std: Sequence[float] = defaults.STD_RGB
                      ) -> List[Dict[str, np.ndarray]]:
    """Detections for a batch of letterboxed RGB uint8 images (``letterboxes``: how each frame was
    placed), mapped back to each frame, by the post-processing of ``model``'s kind.

    Returns per image ``{"boxes" (K,4) float32 frame xyxy, "scores" (K,), "classes" (K,) int64,
    "masks" (K,h,w) bool}``.
    """
    model.eval()
    hooks = hooks_for_model(model, "instance")
    return hooks.predict(model, images, letterboxes, score_threshold, iou_threshold, max_detections, mean, std)


@dataclass
class InstanceScores:
    """What scoring some images accumulated (mergeable across shards)."""

    box: AP50
    mask: AP50
    coco_dets: List[Dict[str, Any]] = field(default_factory=list)
    detections: int = 0
    images: int = 0

    def merge(self, other: "InstanceScores") -> "InstanceScores":
        self.box.merge(other.box)
        self.mask.merge(other.mask)
        self.coco_dets += other.coco_dets
        self.detections += other.detections
        self.images += other.images
        return self


def score_instances(model: torch.nn.Module, dataset: Any, input_size: Tuple[int, int], batch_size: int = 8,
                    device: Union[str, torch.device, None] = None, workers: int = 0, limit: Optional[int] = None,
                    score_threshold: float = 0.01, iou_threshold: float = 0.5, max_detections: int = 100,
                    progress: bool = False, with_coco: bool = False,
                    indices: Optional[Sequence[int]] = None) -> InstanceScores:
    """Detect and match the first ``limit`` samples of ``dataset`` (only ``indices`` of them when
    given); ``with_coco`` keeps the detections in COCO form for COCOeval."""
    device = torch.device(device) if device is not None else next(model.parameters()).device
    classes = list(dataset.classes)
    cat_ids = list(getattr(dataset, "cat_ids", range(1, len(classes) + 1)))
    acc = InstanceScores(AP50(len(classes), "bbox"), AP50(len(classes), "segm"))
    ds: Any = InstanceEvalDataset(dataset, tuple(input_size), limit)
    if indices is not None:
        ds = Subset(ds, list(indices))
    loader = DataLoader(ds, batch_size=batch_size, shuffle=False, num_workers=workers,
                        collate_fn=instance_eval_collate, worker_init_fn=worker_init if workers else None)
    bar = Progress(len(loader), "val", enabled=progress)
    for images, samples, infos in loader:
        dets = predict_instances(model, images.to(device), infos, score_threshold, iou_threshold, max_detections)
        for d, s in zip(dets, samples):
            gt = {"boxes": np.asarray(s.boxes, np.float32).reshape(-1, 4), "classes": np.asarray(s.class_ids),
                  "iscrowd": np.asarray(s.iscrowd, bool), "masks": np.asarray(s.masks, bool)}
            acc.box.update(d, gt)
            acc.mask.update(d, gt)
            acc.detections += len(d["scores"])
            if with_coco:
                from ..eval.coco import detections_to_coco

                acc.coco_dets += detections_to_coco(int(s.image_id), d["masks"], d["scores"], d["classes"],
                                                    cat_ids, d["boxes"])
        acc.images += len(samples)
        bar.update(1)
    bar.close()
    return acc


def summarize_instances(scores: InstanceScores, dataset: Any, with_coco: bool,
                        coco_gt: Optional[Dict[str, Any]] = None, limit: Optional[int] = None) -> Dict[str, Any]:
    """The result dict of :func:`evaluate_instances` from accumulated ``scores``."""
    classes = list(dataset.classes)
    out: Dict[str, Any] = {"box_ap50": scores.box.value(), "mask_ap50": scores.mask.value(), "box_ap": None,
                           "mask_ap": None, "per_class_mask_ap50": dict(zip(classes, scores.mask.per_class())),
                           "evaluator": "cocoeval" if with_coco else "builtin", "images": scores.images,
                           "detections": scores.detections}
    if with_coco:
        from ..eval.coco import coco_gt_from_dataset, evaluate_coco

        gt_doc = coco_gt if coco_gt is not None else coco_gt_from_dataset(dataset, limit)
        res = evaluate_coco(gt_doc, scores.coco_dets)
        out.update(box_ap50=max(res["bbox"]["AP50"], 0.0), mask_ap50=max(res["segm"]["AP50"], 0.0),
                   box_ap=max(res["bbox"]["AP"], 0.0), mask_ap=max(res["segm"]["AP"], 0.0))
    return out


def evaluate_instances(model: torch.nn.Module, dataset: Any, input_size: Tuple[int, int] = defaults.SEMANTIC_INPUT_SIZE,
                       batch_size: int = 8, device: Union[str, torch.device, None] = None, workers: int = 0,
                       limit: Optional[int] = None, score_threshold: float = 0.01, iou_threshold: float = 0.5,
                       max_detections: int = 100, progress: bool = False, evaluator: str = "auto",
                       coco_gt: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """Evaluate an instance model on an instance dataset as deployed (module docstring).

    ``evaluator``: "cocoeval" (pycocotools through :mod:`edgeseg.eval.coco`; adds AP over
    IoU 0.5:0.95), "builtin" (:class:`~edgeseg.eval.ap50.AP50`, no pycocotools needed) or "auto"
    (COCOeval when pycocotools is installed). ``coco_gt`` is the COCO ground truth of the first
    ``limit`` samples (built with ``coco_gt_from_dataset`` when None; pass it to avoid re-reading
    the set).

    Returns ``{"box_ap50", "mask_ap50", "box_ap", "mask_ap" (None without COCOeval),
    "per_class_mask_ap50": {class: ap|None} (built-in), "evaluator", "images", "detections"}``.
    The model is left in eval mode.
    """
    with_coco = use_cocoeval(evaluator)
    scores = score_instances(model, dataset, input_size, batch_size, device, workers, limit, score_threshold,
                             iou_threshold, max_detections, progress, with_coco)
    return summarize_instances(scores, dataset, with_coco, coco_gt, scores.images)
