"""Training hooks of Mask R-CNN: the model drives its own stages.

Its losses come from :mod:`edgeseg.train.maskrcnn_losses` (proposals and RoI sampling happen
between the stages, so the loss calls the stage methods), it predicts post-NMS detections itself
(``model.detect``: boxes, labels, scores, 28x28 masks, taken to the frame by the runtime's own
post-processing, :func:`edgeseg.runtime.maskrcnn.postprocess_maskrcnn`), wants full-resolution mask targets
(``model.mask_target_stride``) and describes its graph for the metadata (``model.meta_extra()``).
"""
from __future__ import annotations

from typing import Any, Dict, List, Sequence, Tuple

import numpy as np
import torch

from ..geometry import LetterboxInfo
from .dataset import normalize
from .hooks_instance import InstanceHooks, frame_detections
from .maskrcnn_losses import PARTS, MaskRCNNLoss, MaskRCNNLossWeights


class _MaskRCNNStep(torch.nn.Module):
    """RPN + RoI-head losses of a Mask R-CNN (autocast with AMP)."""

    def __init__(self, model: torch.nn.Module, loss_fn: MaskRCNNLoss, use_amp: bool) -> None:
        super().__init__()
        self.model, self.loss_fn, self.use_amp = model, loss_fn, use_amp

    def forward(self, x: torch.Tensor, targets: Dict[str, torch.Tensor]) -> Tuple[torch.Tensor, Dict[str, Any]]:
        with torch.autocast(x.device.type, dtype=torch.float16, enabled=self.use_amp):
            return self.loss_fn(self.model, x, targets)  # type: ignore[arg-type]


class MaskRCNNHooks(InstanceHooks):
    """Hooks of two-stage Mask R-CNN models."""

    parts = PARTS
    find_unused_parameters = True  # a step without sampled positives leaves heads without gradient

    def mask_stride(self, model: torch.nn.Module) -> int:
        return int(model.mask_target_stride)

    def train_step(self, model: torch.nn.Module, classes: List[str], use_amp: bool) -> torch.nn.Module:
        weights = MaskRCNNLossWeights(**{k: float(v) for k, v in self.cfg.loss_weights.items()})
        return _MaskRCNNStep(model, MaskRCNNLoss(weights), use_amp)

    def head_meta(self, model: torch.nn.Module) -> Dict[str, Any]:
        return model.meta_extra()

    @staticmethod
    @torch.no_grad()
    def predict(model: Any, images: torch.Tensor, letterboxes: Sequence[LetterboxInfo],
                score_threshold: float, iou_threshold: float, max_detections: int, mean: Sequence[float],
                std: Sequence[float]) -> List[Dict[str, np.ndarray]]:
        from ..runtime.instance import InstanceThresholds
        from ..runtime.maskrcnn import postprocess_maskrcnn

        dets = model.detect(normalize(images, mean, std), score_threshold=score_threshold, nms_iou=iou_threshold,
                            max_detections=max_detections)
        t = InstanceThresholds(score=score_threshold, iou=iou_threshold, max_detections=max_detections)
        return [frame_detections(postprocess_maskrcnn(
                    {k: d[k].cpu().numpy() if k == "labels" else d[k].float().cpu().numpy()
                     for k in ("boxes", "labels", "scores", "masks")}, info, t, graph_iou=iou_threshold))
                for d, info in zip(dets, letterboxes)]
