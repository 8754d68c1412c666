"""Training hooks of single-stage instance models (YOLOSeg): TAL-assigned class, box and
prototype-mask losses, and their deployed post-processing for validation.

Validation decodes the model's raw outputs with the runtime's own post-processing
(:func:`edgeseg.runtime.instance.postprocess_instances`: per anchor best class, score threshold,
top-k, class-aware NMS, box-local masks ``sigmoid(coeffs . protos) > 0.5`` at frame resolution).
:func:`postprocess` and :func:`masks_in_frame` are the same steps in torch.
"""
from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F

from ..geometry import LetterboxInfo
from .dataset import normalize
from .hooks_instance import InstanceHooks, frame_detections
from .instance_losses import PARTS, InstanceLoss, LossWeights


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(N, M) IoU of xyxy boxes."""
    lt = torch.maximum(a[:, None, :2], b[None, :, :2])
    rb = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    area_a = (a[:, 2:] - a[:, :2]).clamp(min=0).prod(-1)
    area_b = (b[:, 2:] - b[:, :2]).clamp(min=0).prod(-1)
    union = area_a[:, None] + area_b[None, :] - inter
    return torch.where(union > 0, inter / union.clamp(min=1e-12), torch.zeros_like(inter))


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float,
        classes: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Greedy NMS -> kept indices (int64) by descending score; ties keep the lower index first.
    With ``classes`` only boxes of the same class suppress each other."""
    if boxes.numel() == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    order = torch.from_numpy(np.argsort(-scores.detach().cpu().numpy(), kind="stable")).to(boxes.device)
    b = boxes[order].float()
    over = (box_iou(b, b) > iou_threshold)
    if classes is not None:
        c = classes[order]
        over &= c[:, None] == c[None, :]
    over = over.cpu().numpy()
    n = len(order)
    removed = np.zeros(n, bool)
    keep = []
    for i in range(n):
        if removed[i]:
            continue
        keep.append(i)
        removed |= over[i]
    return order[torch.as_tensor(keep, dtype=torch.long, device=boxes.device)]


def postprocess(boxes: torch.Tensor, scores: torch.Tensor, score_threshold: float = 0.25,
                iou_threshold: float = 0.5, max_detections: int = 100, max_candidates: int = 1000
                ) -> List[Dict[str, torch.Tensor]]:
    """Per image: best class per anchor, score threshold, top ``max_candidates``, class-aware NMS,
    at most ``max_detections``. Returns per image ``{"index", "boxes", "scores", "classes"}``
    (``index`` into the anchors, for the coefficients)."""
    out = []
    for bx, sc in zip(boxes, scores):
        conf, cls = sc.float().max(-1)
        idx = torch.nonzero(conf > score_threshold).flatten()
        if idx.numel() > max_candidates:
            idx = idx[conf[idx].topk(max_candidates).indices]
        keep = nms(bx[idx], conf[idx], iou_threshold, cls[idx])[:max_detections]
        idx = idx[keep]
        out.append({"index": idx, "boxes": bx[idx].float(), "scores": conf[idx], "classes": cls[idx]})
    return out


def _pixel_span(lo: float, hi: float, n: int) -> Tuple[int, int]:
    """Pixels j (0 <= j < n) whose centre j + 0.5 lies in [lo, hi)."""
    a = max(0, int(math.ceil(lo - 0.5)))
    b = min(n, int(math.ceil(hi - 0.5)))
    return a, max(a, b)


def masks_in_frame(mask_logits: torch.Tensor, boxes: Union[torch.Tensor, np.ndarray], letterbox: LetterboxInfo,
                   threshold: float = 0.5) -> np.ndarray:
    """Bool (K, h, w) frame masks from prototype-resolution logits (K, hp, wp), box-local.

    Every frame pixel whose centre lies inside its (frame, xyxy (K, 4)) box is mapped to the
    network input (through ``letterbox``: the frame is its ``src_hw``, the input its ``dst_hw``),
    then to prototype coordinates (half-pixel, clamped at the edges), the logit is bilinearly
    interpolated and compared with ``logit(threshold)``.
    """
    (h, w), (in_h, in_w) = letterbox.src_hw, letterbox.dst_hw
    (top, left), (rh, rw) = (letterbox.pad_top, letterbox.pad_left), letterbox.resized_hw
    k = mask_logits.shape[0]
    out = np.zeros((k, h, w), bool)
    cut = math.log(threshold / (1.0 - threshold))
    bx = boxes.detach().cpu().numpy() if isinstance(boxes, torch.Tensor) else np.asarray(boxes)
    for i in range(k):
        x0, x1 = _pixel_span(bx[i, 0], bx[i, 2], w)
        y0, y1 = _pixel_span(bx[i, 1], bx[i, 3], h)
        if x1 <= x0 or y1 <= y0:
            continue
        dev = mask_logits.device
        u = (torch.arange(x0, x1, device=dev, dtype=torch.float32) + 0.5) * (rw / w) + left
        v = (torch.arange(y0, y1, device=dev, dtype=torch.float32) + 0.5) * (rh / h) + top
        gx = (u / in_w) * 2 - 1  # grid_sample align_corners=False: -1/+1 are the outer edges
        gy = (v / in_h) * 2 - 1
        grid = torch.stack(torch.meshgrid(gy, gx, indexing="ij")[::-1], -1)[None]
        val = F.grid_sample(mask_logits[i][None, None].float(), grid, mode="bilinear", padding_mode="border",
                            align_corners=False)[0, 0]
        out[i, y0:y1, x0:x1] = (val > cut).cpu().numpy()
    return out


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
