"""Target assignment for the anchor-free instance head: task-aligned assignment (TAL).

TOOD / YOLOv8 style. For every ground-truth box the candidates are the anchors whose point lies
inside the box; each candidate scores ``alignment = score^alpha * IoU^beta`` (``score`` = the
predicted probability of the GT's class, ``IoU`` = predicted box vs GT box), and the ``topk`` best
candidates become positives. An anchor claimed by several GTs keeps the one its box overlaps most.
Soft class targets are the alignment normalised per GT so that the best anchor of a GT gets that
GT's best IoU (IoU-aware classification, as TAL does).

A GT whose box contains no anchor point at all (a sliver smaller than a stride-8 cell) falls back to
the anchor nearest its centre, so every GT gets at least one positive.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

import torch


@dataclass
class Assignment:
    """Per-anchor targets for a batch. ``fg`` (B,A) bool marks positives; ``gt_index`` (B,A) int64
    is the matched GT (0 for negatives); ``boxes`` (B,A,4) xyxy pixels and ``labels`` (B,A) int64
    are the matched GT's box and class; ``scores`` (B,A,C) are soft classification targets (zero
    rows for negatives)."""

    fg: torch.Tensor
    gt_index: torch.Tensor
    labels: torch.Tensor
    boxes: torch.Tensor
    scores: torch.Tensor


def box_inter_union(a: torch.Tensor, b: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Intersection and union areas of boxes ``a`` (..., 4) and ``b`` (..., 4) (broadcast, xyxy),
    element-wise."""
    lt = torch.maximum(a[..., :2], b[..., :2])
    rb = torch.minimum(a[..., 2:], b[..., 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    area_a = (a[..., 2:] - a[..., :2]).clamp(min=0).prod(-1)
    area_b = (b[..., 2:] - b[..., :2]).clamp(min=0).prod(-1)
    return inter, area_a + area_b - inter


def box_iou_pairwise(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-9) -> torch.Tensor:
    """IoU of boxes ``a`` (..., 4) and ``b`` (..., 4) (broadcast, xyxy), element-wise."""
    inter, union = box_inter_union(a, b)
    return inter / (union + eps)


@torch.no_grad()
def task_aligned_assign(pred_scores: torch.Tensor, pred_boxes: torch.Tensor, anchors: torch.Tensor,
                        gt_labels: torch.Tensor, gt_boxes: torch.Tensor, gt_valid: torch.Tensor,
                        topk: int = 10, alpha: float = 0.5, beta: float = 6.0,
                        eps: float = 1e-9) -> Assignment:
    """Task-aligned assignment for a padded batch.

    Args:
        pred_scores: (B, A, C) predicted class probabilities (after sigmoid).
        pred_boxes: (B, A, 4) predicted xyxy boxes in pixels.
        anchors: (A, 2) anchor points (x, y) in pixels.
        gt_labels: (B, M) int64 class ids (0-based object classes); padded rows arbitrary.
        gt_boxes: (B, M, 4) xyxy pixels; padded rows arbitrary.
        gt_valid: (B, M) bool, False for padding.
        topk: positives per GT (at most); alpha, beta: alignment exponents.
    """
    b, a, c = pred_scores.shape
    m = gt_boxes.shape[1]
    dev = pred_scores.device
    if m == 0 or not bool(gt_valid.any()):
        zeros = torch.zeros(b, a, dtype=torch.long, device=dev)
        return Assignment(torch.zeros(b, a, dtype=torch.bool, device=dev), zeros, zeros,
                          torch.zeros(b, a, 4, device=dev), torch.zeros_like(pred_scores))
    pred_scores, pred_boxes, gt_boxes = pred_scores.float(), pred_boxes.float(), gt_boxes.float()
    labels = gt_labels.clamp(0, c - 1)

    # candidates: anchor point strictly inside the GT box (B, M, A)
    pts = anchors.view(1, 1, a, 2)
    d = torch.cat([pts - gt_boxes[:, :, None, :2], gt_boxes[:, :, None, 2:] - pts], -1)
    inside = (d.amin(-1) > eps) & gt_valid[:, :, None]
    # fallback for GTs without any inside anchor: the anchor nearest the box centre
    empty = gt_valid & ~inside.any(-1)
    if bool(empty.any()):
        centre = (gt_boxes[..., :2] + gt_boxes[..., 2:]) / 2
        nearest = ((pts - centre[:, :, None, :]) ** 2).sum(-1).argmin(-1)  # (B, M)
        near = torch.zeros_like(inside)
        near.scatter_(2, nearest[..., None], True)
        inside = inside | (near & empty[..., None])

    # alignment metric (B, M, A)
    iou = box_iou_pairwise(gt_boxes[:, :, None, :], pred_boxes[:, None, :, :]).clamp(min=0)
    iou = iou * inside
    cls_score = pred_scores.gather(2, labels[:, None, :].expand(b, a, m)).transpose(1, 2)  # (B, M, A)
    align = cls_score.pow(alpha) * iou.pow(beta) * inside

    # top-k candidates per GT (ties among zeros may pick outside anchors: masked by `inside`)
    k = min(topk, a)
    # a tiny tie-breaker keeps candidates ahead of non-candidates when every alignment is 0
    top_idx = (align + inside * 1e-12).topk(k, dim=-1).indices
    pos = torch.zeros_like(inside)
    pos.scatter_(2, top_idx, True)
    pos = pos & inside

    # an anchor claimed by several GTs keeps the GT with the highest IoU
    multi = pos.sum(1, keepdim=True) > 1  # (B, 1, A)
    if bool(multi.any()):
        best = torch.where(pos, iou, torch.full_like(iou, -1.0)).argmax(1)  # (B, A)
        one = torch.zeros_like(pos)
        one.scatter_(1, best[:, None, :], True)
        pos = torch.where(multi, one & pos, pos)

    fg = pos.any(1)  # (B, A)
    gt_index = pos.float().argmax(1)  # (B, A)
    t_labels = labels.gather(1, gt_index)
    t_boxes = gt_boxes.gather(1, gt_index[..., None].expand(b, a, 4))

    # soft targets: alignment normalised per GT so its best anchor gets its best IoU
    align = align * pos
    max_align = align.amax(-1, keepdim=True)
    max_iou = (iou * pos).amax(-1, keepdim=True)
    norm = (align * max_iou / (max_align + eps)).amax(1)  # (B, A)
    scores = torch.zeros_like(pred_scores)
    scores.scatter_(2, t_labels[..., None], norm[..., None])
    scores = scores * fg[..., None]
    return Assignment(fg, gt_index, t_labels, t_boxes, scores)
