"""Mask R-CNN training: target assignment, balanced sampling and the standard losses.

``MaskRCNNLoss(model)(x, targets) -> (total, parts)`` runs a :class:`~edgeseg.models.instance.MaskRCNN`
through its stages on a normalised batch ``x`` with the padded targets of
:func:`~edgeseg.train.instance_dataset.instance_collate` (``boxes`` (B,M,4) input pixels,
``classes`` (B,M), ``valid`` (B,M), ``masks`` (B,M,H,W) at full input resolution). Parts
(each returned unweighted and detached; ``total`` is the weighted sum):

* ``rpn_cls`` - binary cross-entropy of the objectness of ``rpn_batch`` sampled anchors per image
  (at most ``rpn_pos_fraction`` positive): positive at IoU >= 0.7 with a ground-truth box, or the
  best anchors of a box (low-quality matches); negative below 0.3; others ignored.
* ``rpn_box`` - smooth L1 (beta 1/9) of the positive anchors' deltas (weights 1, 1, 1, 1), summed
  and divided by the number of sampled anchors.
* ``cls``  - cross-entropy over C + 1 classes of ``roi_batch`` sampled proposals per image (ground
  truth boxes added to the proposals; foreground at IoU >= 0.5, at most ``roi_pos_fraction``).
* ``box``  - smooth L1 (beta 0, i.e. L1) of the foreground RoIs' deltas for their class (weights
  10, 10, 5, 5), divided by the number of sampled RoIs.
* ``mask`` - per-pixel binary cross-entropy of the foreground RoIs' 28x28 mask logits of their
  class against the matched ground-truth mask RoIAligned onto the RoI (threshold 0.5).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Tuple

import torch
import torch.nn.functional as F

from ..models.instance.maskrcnn import BOX_WEIGHTS, RPN_WEIGHTS, MaskRCNN, box_iou_torch, encode_boxes
from ..models.instance.maskrcnn.ops import roi_align_per_roi
from .losses import PartWeights

PARTS = ("rpn_cls", "rpn_box", "cls", "box", "mask")
#: Matcher labels.
POSITIVE, NEGATIVE, IGNORE = 1, 0, -1


@dataclass
class MaskRCNNLossWeights(PartWeights):
    """Weights of the loss parts (``total = sum(weight * part)``)."""

    rpn_cls: float = 1.0
    rpn_box: float = 1.0
    cls: float = 1.0
    box: float = 1.0
    mask: float = 1.0


def match(iou: torch.Tensor, high: float, low: float, allow_low_quality: bool) -> Tuple[torch.Tensor, torch.Tensor]:
    """Assign each column (anchor / proposal) of an IoU matrix (G, A) to its best row (ground truth).

    Returns ``(gt_index (A,) int64, label (A,) int8)``: POSITIVE where the best IoU is ``>= high``,
    NEGATIVE where it is ``< low``, IGNORE in between. With ``allow_low_quality`` every ground
    truth's best columns (all ties, IoU > 0) are POSITIVE too, so each box gets at least one
    match. Without ground truth everything is NEGATIVE (gt_index 0).
    """
    g, a = iou.shape
    label = torch.full((a,), NEGATIVE, dtype=torch.int8, device=iou.device)
    if g == 0:
        return torch.zeros(a, dtype=torch.int64, device=iou.device), label
    best, idx = iou.max(0)
    label[best >= low] = IGNORE
    label[best >= high] = POSITIVE
    if allow_low_quality:
        per_gt = iou.max(1, keepdim=True).values
        hit = ((iou == per_gt) & (per_gt > 0)).any(0)
        label[hit] = POSITIVE
    return idx, label


def sample(label: torch.Tensor, num: int, pos_fraction: float) -> Tuple[torch.Tensor, torch.Tensor]:
    """Random balanced sample: at most ``num * pos_fraction`` POSITIVE indices, NEGATIVE ones to fill
    ``num`` (fewer when there are not enough). Returns ``(pos_idx, neg_idx)``."""
    pos = torch.nonzero(label == POSITIVE).flatten()
    neg = torch.nonzero(label == NEGATIVE).flatten()
    n_pos = min(pos.numel(), int(num * pos_fraction))
    n_neg = min(neg.numel(), num - n_pos)
    pos = pos[torch.randperm(pos.numel(), device=pos.device)[:n_pos]]
    neg = neg[torch.randperm(neg.numel(), device=neg.device)[:n_neg]]
    return pos, neg


def _gt(targets: Dict[str, torch.Tensor], i: int) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Image i's valid, non-degenerate ground truth: boxes (G, 4), classes (G,), masks (G, H, W)."""
    b = targets["boxes"][i]
    ok = targets["valid"][i] & (b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1])
    return b[ok].float(), targets["classes"][i][ok], targets["masks"][i][ok]


class MaskRCNNLoss:
    """The Mask R-CNN losses (module docstring). Sampling uses torch's global RNG."""

    def __init__(self, weights: MaskRCNNLossWeights | None = None, rpn_batch: int = 256, rpn_pos_fraction: float = 0.5,
                 rpn_iou: Tuple[float, float] = (0.3, 0.7), roi_batch: int = 64, roi_pos_fraction: float = 0.25,
                 roi_iou: float = 0.5) -> None:
        self.weights = weights or MaskRCNNLossWeights()
        self.rpn_batch, self.rpn_pos_fraction, self.rpn_iou = int(rpn_batch), float(rpn_pos_fraction), rpn_iou
        self.roi_batch, self.roi_pos_fraction, self.roi_iou = int(roi_batch), float(roi_pos_fraction), float(roi_iou)

    def __call__(self, model: MaskRCNN, x: torch.Tensor, targets: Dict[str, torch.Tensor]
                 ) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        n = x.shape[0]
        hw = (int(x.shape[2]), int(x.shape[3]))
        feats = model.features(x)
        objs, deltas, anchors = model.rpn(feats)
        all_anchors = torch.cat(anchors)
        obj_all, delta_all = torch.cat(objs, 1), torch.cat(deltas, 1)  # (N, A), (N, A, 4)
        gts = [_gt(targets, i) for i in range(n)]

        # ---- RPN: anchors vs ground truth
        rpn_cls = obj_all.new_zeros(())
        rpn_box = obj_all.new_zeros(())
        for i, (g_boxes, _, _) in enumerate(gts):
            idx, label = match(box_iou_torch(g_boxes, all_anchors), self.rpn_iou[1], self.rpn_iou[0], True)
            pos, neg = sample(label, self.rpn_batch, self.rpn_pos_fraction)
            sel = torch.cat([pos, neg])
            tgt = torch.cat([torch.ones_like(pos, dtype=obj_all.dtype), torch.zeros_like(neg, dtype=obj_all.dtype)])
            rpn_cls = rpn_cls + F.binary_cross_entropy_with_logits(obj_all[i, sel], tgt, reduction="sum")
            if pos.numel():
                t = encode_boxes(all_anchors[pos], g_boxes[idx[pos]], RPN_WEIGHTS)
                rpn_box = rpn_box + F.smooth_l1_loss(delta_all[i, pos], t, beta=1.0 / 9, reduction="sum")
        norm = float(self.rpn_batch * n)
        rpn_cls, rpn_box = rpn_cls / norm, rpn_box / norm

        # ---- RoI sampling: proposals (+ ground truth) vs ground truth
        rois, roi_img, roi_cls, roi_tgt, fg_gt = [], [], [], [], []
        c = model.num_classes
        for i, (g_boxes, g_cls, _) in enumerate(gts):
            props, _ = model.proposals(objs, deltas, anchors, hw, i, training=True)
            props = torch.cat([props, g_boxes])
            idx, label = match(box_iou_torch(g_boxes, props), self.roi_iou, self.roi_iou, False)
            pos, neg = sample(label, self.roi_batch, self.roi_pos_fraction)
            sel = torch.cat([pos, neg])
            rois.append(props[sel])
            roi_img.append(torch.full((sel.numel(),), i, dtype=torch.int64, device=x.device))
            cls = torch.full((sel.numel(),), c, dtype=torch.int64, device=x.device)  # background = C
            if pos.numel():
                cls[:pos.numel()] = g_cls[idx[pos]]
            roi_cls.append(cls)
            roi_tgt.append(g_boxes[idx[sel]] if g_boxes.numel() else props[sel])
            fg_gt.append(idx[pos])
        boxes_r, img_r, cls_r, tgt_r = torch.cat(rois), torch.cat(roi_img), torch.cat(roi_cls), torch.cat(roi_tgt)

        # ---- box head
        logits, box_deltas = model.box_head(feats, boxes_r, img_r)
        cls_loss = F.cross_entropy(logits, cls_r, reduction="mean") if cls_r.numel() else logits.sum() * 0.0
        fg = torch.nonzero(cls_r < c).flatten()
        if fg.numel():
            t = encode_boxes(boxes_r[fg], tgt_r[fg], BOX_WEIGHTS)
            pred = box_deltas[fg, cls_r[fg]]
            box_loss = F.l1_loss(pred, t, reduction="sum") / max(cls_r.numel(), 1)
        else:
            box_loss = box_deltas.sum() * 0.0

        # ---- mask head on the foreground RoIs
        if fg.numel():
            mask_logits = model.mask_head(feats, boxes_r[fg], img_r[fg])  # (P, C, 28, 28)
            gt_masks = torch.cat([gts[i][2][gi] for i, gi in enumerate(fg_gt)])  # (P, H, W), order of fg
            size = mask_logits.shape[-1]
            with torch.no_grad():
                tm = roi_align_per_roi(gt_masks[:, None].float(), boxes_r[fg], (size, size), 1.0, 2)[:, 0]
                tm = (tm >= 0.5).to(mask_logits.dtype)
            pred = mask_logits[torch.arange(fg.numel(), device=x.device), cls_r[fg]]
            mask_loss = F.binary_cross_entropy_with_logits(pred, tm, reduction="mean")
        else:
            mask_loss = sum(p.sum() for p in model.mask_predictor.parameters()) * 0.0

        parts = {"rpn_cls": rpn_cls, "rpn_box": rpn_box, "cls": cls_loss, "box": box_loss, "mask": mask_loss}
        w = self.weights
        total = sum(getattr(w, k) * v for k, v in parts.items())
        return total, {k: v.detach() for k, v in parts.items()}  # type: ignore[return-value]
