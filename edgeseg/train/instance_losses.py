"""Losses of the single-stage instance model (YOLO-seg style), driven by task-aligned assignment.

``InstanceLoss(num_classes)(outputs, targets) -> (total, parts)`` where ``outputs`` is the train-mode
dict of :class:`~edgeseg.models.instance.YOLOSeg` and ``targets`` the padded batch of
:func:`~edgeseg.train.instance_dataset.instance_collate`. Parts:

* ``cls``  - BCE of every anchor's class logits against the IoU-aware soft targets of the
  assignment, summed and divided by the sum of the soft targets (as YOLOv8).
* ``box``  - ``1 - GIoU`` of each positive's box vs its GT, weighted by its soft target.
* ``l1``   - L1 between positive and GT boxes in coordinates normalised by the input size.
* ``mask`` - per positive: ``coeffs . protos`` (mask logits at 1/4 input) against its GT mask
  (downsampled to that resolution, soft), BCE summed INSIDE the GT box only and divided by the box
  area (in prototype pixels), averaged over positives.
* ``dice`` - 1 - Dice of the same masks, inside the box.

Each part is returned unweighted (a detached scalar tensor); ``total`` is the weighted sum.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from .instance_assign import Assignment, box_inter_union, task_aligned_assign
from .losses import PartWeights

PARTS = ("cls", "box", "l1", "mask", "dice")


@dataclass
class LossWeights(PartWeights):
    """Weights of the loss parts (``total = sum(weight * part)``)."""

    cls: float = 1.0
    box: float = 5.0
    l1: float = 5.0
    mask: float = 2.0
    dice: float = 1.0


def giou_loss(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """``1 - GIoU`` of matching xyxy boxes (..., 4) -> (...). 0 for identical boxes, up to 2."""
    inter, union = box_inter_union(pred, target)
    union = union + eps
    iou = inter / union
    hull = (torch.maximum(pred[..., 2:], target[..., 2:]) - torch.minimum(pred[..., :2], target[..., :2])
            ).clamp(min=0).prod(-1) + eps
    return 1.0 - (iou - (hull - union) / hull)


def box_mask(boxes: torch.Tensor, h: int, w: int, scale: float) -> torch.Tensor:
    """(P, h, w) bool: pixel centres of an (h, w) grid inside each xyxy box given in input pixels,
    the grid having ``scale`` input pixels per cell (``x0 <= (j + 0.5) * scale < x1``)."""
    xs = (torch.arange(w, device=boxes.device, dtype=boxes.dtype) + 0.5) * scale
    ys = (torch.arange(h, device=boxes.device, dtype=boxes.dtype) + 0.5) * scale
    inx = (xs[None] >= boxes[:, 0:1]) & (xs[None] < boxes[:, 2:3])  # (P, w)
    iny = (ys[None] >= boxes[:, 1:2]) & (ys[None] < boxes[:, 3:4])  # (P, h)
    return iny[:, :, None] & inx[:, None, :]


def mask_losses(coeffs: torch.Tensor, protos: torch.Tensor, gt_masks: torch.Tensor, gt_boxes: torch.Tensor,
                stride: float) -> Tuple[torch.Tensor, torch.Tensor]:
    """Box-cropped mask BCE (summed in the box / box area) and Dice for one image's positives.

    ``coeffs`` (P, K), ``protos`` (K, h, w), ``gt_masks`` (P, h, w) in [0, 1] at prototype
    resolution, ``gt_boxes`` (P, 4) xyxy input pixels, ``stride`` input pixels per prototype cell.
    Returns per-positive ``(bce, dice)`` of shape (P,).
    """
    k, h, w = protos.shape
    logits = (coeffs @ protos.reshape(k, h * w)).view(-1, h, w)
    inside = box_mask(gt_boxes, h, w, stride).to(logits.dtype)
    area = inside.sum((1, 2)).clamp(min=1.0)
    bce = F.binary_cross_entropy_with_logits(logits, gt_masks, reduction="none")
    bce = (bce * inside).sum((1, 2)) / area
    p = torch.sigmoid(logits) * inside
    t = gt_masks * inside
    dice = 1.0 - (2.0 * (p * t).sum((1, 2)) + 1.0) / (p.sum((1, 2)) + t.sum((1, 2)) + 1.0)
    return bce, dice


class InstanceLoss(nn.Module):
    """TAL assignment + classification / box / mask losses (module docstring)."""

    def __init__(self, num_classes: int, weights: LossWeights | None = None, topk: int = 10,
                 alpha: float = 0.5, beta: float = 6.0, proto_stride: int = 4) -> None:
        super().__init__()
        self.proto_stride = int(proto_stride)
        self.num_classes = int(num_classes)
        self.weights = weights or LossWeights()
        self.topk, self.alpha, self.beta = int(topk), float(alpha), float(beta)

    def assign(self, out: Dict[str, torch.Tensor], targets: Dict[str, torch.Tensor]) -> Assignment:
        return task_aligned_assign(out["cls"].detach().sigmoid(), out["boxes"].detach(), out["anchors"],
                                   targets["classes"], targets["boxes"], targets["valid"],
                                   self.topk, self.alpha, self.beta)

    def forward(self, out: Dict[str, torch.Tensor], targets: Dict[str, torch.Tensor]
                ) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        """``(total loss, {part: detached scalar tensor})`` for a train-mode model output and a padded
        target batch (``boxes`` (B,M,4), ``classes`` (B,M), ``valid`` (B,M), ``masks`` (B,M,h,w))."""
        cls_logits = out["cls"].float()
        boxes = out["boxes"].float()
        coeffs, protos = out["coeffs"].float(), out["protos"].float()
        asg = self.assign(out, targets)
        fg = asg.fg
        score_sum = asg.scores.sum().clamp(min=1.0)

        loss_cls = F.binary_cross_entropy_with_logits(cls_logits, asg.scores, reduction="sum") / score_sum
        zero = cls_logits.sum() * 0.0  # keeps the graph connected when there are no positives
        loss_box = loss_l1 = loss_mask = loss_dice = zero
        if bool(fg.any()):
            weight = asg.scores.sum(-1)[fg]
            pb, tb = boxes[fg], asg.boxes[fg]
            loss_box = (giou_loss(pb, tb) * weight).sum() / score_sum
            stride = self.proto_stride
            h_in, w_in = protos.shape[2] * stride, protos.shape[3] * stride
            norm = torch.tensor([w_in, h_in, w_in, h_in], dtype=pb.dtype, device=pb.device)
            loss_l1 = ((pb - tb).abs() / norm).sum(-1).mean()
            bce_all, dice_all = [], []
            masks = targets["masks"]
            for i in range(fg.shape[0]):
                sel = fg[i]
                if not bool(sel.any()):
                    continue
                idx = asg.gt_index[i][sel]
                bce, dice = mask_losses(coeffs[i][sel], protos[i], masks[i][idx].float(), asg.boxes[i][sel],
                                        stride)
                bce_all.append(bce)
                dice_all.append(dice)
            loss_mask = torch.cat(bce_all).mean()
            loss_dice = torch.cat(dice_all).mean()
        w = self.weights
        total = (w.cls * loss_cls + w.box * loss_box + w.l1 * loss_l1 + w.mask * loss_mask
                 + w.dice * loss_dice)
        parts = {"cls": loss_cls.detach(), "box": loss_box.detach(), "l1": loss_l1.detach(),
                 "mask": loss_mask.detach(), "dice": loss_dice.detach()}
        return total, parts
