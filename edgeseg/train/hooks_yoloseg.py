"""Training hooks of single-stage instance models (YOLOSeg): TAL-assigned class, box and
prototype-mask losses, and their deployed post-processing for validation.

Validation decodes the model's raw outputs with the runtime's own post-processing
(:func:`edgeseg.runtime.instance.postprocess_instances`: per anchor best class, score threshold,
top-k, class-aware NMS, box-local masks ``sigmoid(coeffs . protos) > 0.5`` at frame resolution).
"""
from __future__ import annotations

from typing import Any, Dict, List, Sequence, Tuple

import numpy as np
import torch

from ..geometry import LetterboxInfo
from .dataset import normalize
from .hooks_instance import InstanceHooks, frame_detections
from .instance_losses import PARTS, InstanceLoss, LossWeights


class _YoloSegStep(torch.nn.Module):
    """Forward (autocast with AMP) and :class:`InstanceLoss` of a single-stage model."""

    def __init__(self, model: torch.nn.Module, loss_fn: InstanceLoss, use_amp: bool) -> None:
        super().__init__()
        self.model, self.loss_fn, self.use_amp = model, loss_fn, use_amp

    def forward(self, x: torch.Tensor, targets: Dict[str, torch.Tensor]) -> Tuple[torch.Tensor, Dict[str, Any]]:
        with torch.autocast(x.device.type, dtype=torch.float16, enabled=self.use_amp):
            outputs = self.model(x)
        return self.loss_fn(outputs, targets)


class YoloSegHooks(InstanceHooks):
    """Hooks of anchor-free single-stage instance models with prototype masks."""

    parts = PARTS

    def mask_stride(self, model: torch.nn.Module) -> int:
        return int(model.output_stride)

    def train_step(self, model: torch.nn.Module, classes: List[str], use_amp: bool) -> torch.nn.Module:
        cfg = self.cfg
        weights = LossWeights(**{k: float(v) for k, v in cfg.loss_weights.items()})
        loss_fn = InstanceLoss(len(classes), weights, cfg.tal_topk, cfg.tal_alpha, cfg.tal_beta,
                               proto_stride=int(model.output_stride))
        return _YoloSegStep(model, loss_fn, use_amp)

    def head_meta(self, model: torch.nn.Module) -> Dict[str, Any]:
        return {"num_protos": int(model.num_protos), "strides": [int(s) for s in model.strides]}

    @staticmethod
    @torch.no_grad()
    def predict(model: torch.nn.Module, images: torch.Tensor, letterboxes: Sequence[LetterboxInfo],
                score_threshold: float, iou_threshold: float, max_detections: int, mean: Sequence[float],
                std: Sequence[float]) -> List[Dict[str, np.ndarray]]:
        from ..runtime.instance import OUTPUTS, InstanceThresholds, postprocess_instances

        outputs = [o.float().cpu().numpy() for o in model(normalize(images, mean, std))]
        t = InstanceThresholds(score=score_threshold, iou=iou_threshold, max_detections=max_detections)
        return [frame_detections(postprocess_instances({k: o[i] for k, o in zip(OUTPUTS, outputs)}, info, t))
                for i, info in enumerate(letterboxes)]
