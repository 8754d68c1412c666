"""Torch references of the single-stage instance decode: the steps of
:func:`edgeseg.runtime.instance.postprocess_instances` written out in torch (best class per
anchor, score threshold, top-k, class-aware greedy NMS, box-local masks sampled through the
letterbox), for checking the runtime decode that training validation runs."""
from __future__ import annotations

import math
from typing import Dict, List, Optional, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F

from edgeseg.geometry import LetterboxInfo


def torch_box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(N, M) IoU of xyxy boxes."""
    lt = torch.maximum(a[:, None, :2], b[None, :, :2])
    rb = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    area_a = (a[:, 2:] - a[:, :2]).clamp(min=0).prod(-1)
    area_b = (b[:, 2:] - b[:, :2]).clamp(min=0).prod(-1)
    union = area_a[:, None] + area_b[None, :] - inter
    return torch.where(union > 0, inter / union.clamp(min=1e-12), torch.zeros_like(inter))


def torch_nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float,
        classes: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Greedy NMS -> kept indices (int64) by descending score; ties keep the lower index first.
    With ``classes`` only boxes of the same class suppress each other."""
    if boxes.numel() == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    order = torch.from_numpy(np.argsort(-scores.detach().cpu().numpy(), kind="stable")).to(boxes.device)
    b = boxes[order].float()
    over = (torch_box_iou(b, b) > iou_threshold)
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


def torch_postprocess(boxes: torch.Tensor, scores: torch.Tensor, score_threshold: float = 0.25,
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
        keep = torch_nms(bx[idx], conf[idx], iou_threshold, cls[idx])[:max_detections]
        idx = idx[keep]
        out.append({"index": idx, "boxes": bx[idx].float(), "scores": conf[idx], "classes": cls[idx]})
    return out


def _pixel_span(lo: float, hi: float, n: int) -> Tuple[int, int]:
    """Pixels j (0 <= j < n) whose centre j + 0.5 lies in [lo, hi)."""
    a = max(0, int(math.ceil(lo - 0.5)))
    b = min(n, int(math.ceil(hi - 0.5)))
    return a, max(a, b)


def torch_masks_in_frame(mask_logits: torch.Tensor, boxes: Union[torch.Tensor, np.ndarray], letterbox: LetterboxInfo,
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
