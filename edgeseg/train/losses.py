"""Segmentation losses: cross-entropy, soft Jaccard (IoU), Lovasz-softmax, and weighted sums.

All take ``logits`` N,C,h,w (any resolution: they are upsampled bilinearly to the label size
first) and integer ``target`` N,H,W where ``ignore_index`` pixels contribute nothing.

    >>> loss_fn = build_loss("ce+lovasz")            # or "ce", "ce+jaccard", "ce+0.5*lovasz"
    >>> loss = loss_fn(logits, labels)
"""
from __future__ import annotations

import dataclasses
from typing import Dict, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import nn

from ..defaults import IGNORE_INDEX
from ..errors import EdgesegError


def upsample_logits(logits: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Bilinear (align_corners=False) resize of N,C,h,w logits to ``size`` = (H, W), if needed."""
    if tuple(logits.shape[-2:]) == tuple(size):
        return logits
    return F.interpolate(logits, size=tuple(size), mode="bilinear", align_corners=False)


def _f32(x: torch.Tensor) -> torch.Tensor:
    """Half-precision logits (AMP) -> float32; float32/float64 unchanged."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def cross_entropy(logits: torch.Tensor, target: torch.Tensor, weight: Optional[torch.Tensor] = None,
                  ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """Pixel-wise cross-entropy with ``ignore_index`` and optional per-class ``weight``.

    With weights the mean is ``sum_i w[y_i] * nll_i / sum_i w[y_i]`` over non-ignored pixels (as in
    ``F.cross_entropy``). Returns 0 (with a graph) if every pixel is ignored.
    """
    logits = upsample_logits(logits, target.shape[-2:])
    target = target.long()
    if not bool((target != ignore_index).any()):
        return logits.sum() * 0.0
    logits = _f32(logits)
    w = weight.to(device=logits.device, dtype=logits.dtype) if weight is not None else None
    return F.cross_entropy(logits, target, weight=w, ignore_index=ignore_index)


def _probs_onehot_valid(logits: torch.Tensor, target: torch.Tensor, ignore_index: int):
    logits = _f32(upsample_logits(logits, target.shape[-2:]))
    probs = logits.softmax(dim=1)
    valid = (target != ignore_index)
    safe = torch.where(valid, target.long(), torch.zeros_like(target, dtype=torch.long))
    onehot = F.one_hot(safe, probs.shape[1]).permute(0, 3, 1, 2).to(probs.dtype)
    v = valid.unsqueeze(1).to(probs.dtype)
    return probs * v, onehot * v, valid


def soft_jaccard_loss(logits: torch.Tensor, target: torch.Tensor, ignore_index: int = IGNORE_INDEX,
                      smooth: float = 1.0, per_image: bool = False, classes: str = "all") -> torch.Tensor:
    """Soft Jaccard loss ``1 - mean_c (I_c + s) / (U_c + s)`` on softmax probabilities.

    ``I_c = sum p_c * y_c``, ``U_c = sum p_c + y_c - p_c * y_c`` over non-ignored pixels (per image or
    over the batch). Classes with ``U_c == 0`` are left out of the mean (``classes="present"`` also
    leaves out classes absent from the target). For hard one-hot predictions and ``smooth=0`` this
    is exactly ``1 - mIoU`` as :class:`~edgeseg.eval.confusion.ConfusionMatrix` computes it.
    """
    if classes not in ("all", "present"):
        raise ValueError(f"classes must be 'all' or 'present', got {classes!r}")
    p, y, _ = _probs_onehot_valid(logits, target, ignore_index)
    dims = (2, 3) if per_image else (0, 2, 3)
    inter = (p * y).sum(dims)
    union = p.sum(dims) + y.sum(dims) - inter
    iou = (inter + smooth) / (union + smooth).clamp_min(1e-12)
    mask = union > 0
    if classes == "present":
        mask = mask & (y.sum(dims) > 0)
    if not bool(mask.any()):
        return logits.sum() * 0.0
    return 1.0 - iou[mask].mean()


def lovasz_grad(gt_sorted: torch.Tensor) -> torch.Tensor:
    """Gradient of the Lovasz extension of the Jaccard loss w.r.t. sorted errors (Berman et al. 2018)."""
    gts = gt_sorted.sum()
    intersection = gts - gt_sorted.cumsum(0)
    union = gts + (1.0 - gt_sorted).cumsum(0)
    jaccard = 1.0 - intersection / union
    if gt_sorted.numel() > 1:
        jaccard = torch.cat([jaccard[:1], jaccard[1:] - jaccard[:-1]])
    return jaccard


def lovasz_softmax_flat(probs: torch.Tensor, labels: torch.Tensor, classes: str = "present") -> torch.Tensor:
    """Lovasz-softmax on flattened P x C probabilities and P labels (no ignored pixels).

    For hard one-hot ``probs`` it equals ``1 - mean_c IoU_c`` over the classes used.
    """
    if probs.numel() == 0:
        return probs.sum() * 0.0
    losses = []
    for c in range(probs.shape[1]):
        fg = (labels == c).to(probs.dtype)
        if classes == "present" and not bool(fg.any()):
            continue
        errors = (fg - probs[:, c]).abs()
        errors_sorted, perm = torch.sort(errors, descending=True)
        losses.append(torch.dot(errors_sorted, lovasz_grad(fg[perm])))
    if not losses:
        return probs.sum() * 0.0
    return torch.stack(losses).mean()


def lovasz_softmax(logits: torch.Tensor, target: torch.Tensor, ignore_index: int = IGNORE_INDEX,
                   per_image: bool = False, classes: str = "present") -> torch.Tensor:
    """Lovasz-softmax loss (Berman et al., CVPR 2018): a convex surrogate of 1 - mIoU.

    ``per_image=True`` averages the per-image losses; otherwise the batch is one big image.
    ``classes="present"`` averages over classes in the (non-ignored) target, ``"all"`` over all.
    """
    if classes not in ("all", "present"):
        raise ValueError(f"classes must be 'all' or 'present', got {classes!r}")
    logits = _f32(upsample_logits(logits, target.shape[-2:]))
    probs = logits.softmax(dim=1)
    c = probs.shape[1]

    def flat(p: torch.Tensor, t: torch.Tensor):
        p = p.permute(0, 2, 3, 1).reshape(-1, c)
        t = t.reshape(-1)
        keep = t != ignore_index
        return p[keep], t[keep].long()

    if per_image:
        return torch.stack([lovasz_softmax_flat(*flat(probs[i:i + 1], target[i:i + 1]), classes=classes)
                            for i in range(probs.shape[0])]).mean()
    return lovasz_softmax_flat(*flat(probs, target), classes=classes)


LOSSES = ("ce", "jaccard", "lovasz")


class SegLoss(nn.Module):
    """A weighted sum of named losses, e.g. ``{"ce": 1.0, "lovasz": 0.5}``. Call ``(logits, target)``.

    ``class_weights`` apply to the cross-entropy term.
    """

    def __init__(self, terms: Dict[str, float], class_weights: Optional[Sequence[float]] = None,
                 ignore_index: int = IGNORE_INDEX, per_image: bool = False) -> None:
        super().__init__()
        unknown = [k for k in terms if k not in LOSSES]
        if unknown or not terms:
            raise EdgesegError(f"unknown loss term(s) {unknown}; use a '+'-joined list of {LOSSES}, "
                               "e.g. 'ce+lovasz' or 'ce+0.5*jaccard'")
        self.terms = dict(terms)
        self.ignore_index = ignore_index
        self.per_image = per_image
        w = None if class_weights is None else torch.as_tensor(list(class_weights), dtype=torch.float32)
        self.register_buffer("class_weights", w, persistent=False)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logits = upsample_logits(logits, target.shape[-2:])
        if self.class_weights is not None and self.class_weights.numel() != logits.shape[1]:
            raise EdgesegError(f"class_weights has {self.class_weights.numel()} entries but the model "
                               f"predicts {logits.shape[1]} classes; give one weight per class")
        total = logits.new_zeros((), dtype=torch.float32)
        for name, w in self.terms.items():
            if name == "ce":
                v = cross_entropy(logits, target, self.class_weights, self.ignore_index)
            elif name == "jaccard":
                v = soft_jaccard_loss(logits, target, self.ignore_index, per_image=self.per_image)
            else:
                v = lovasz_softmax(logits, target, self.ignore_index, per_image=self.per_image)
            total = total + w * v
        return total

    def extra_repr(self) -> str:
        return " + ".join(f"{w:g}*{k}" for k, w in self.terms.items())


class PartWeights:
    """Base of a loss's weights dataclass: one float field per loss part, in the order of its
    ``PARTS`` (``total = sum(weight * part)``)."""

    def to_dict(self) -> Dict[str, float]:
        return {f.name: float(getattr(self, f.name)) for f in dataclasses.fields(self)}  # type: ignore[arg-type]


def parse_loss_spec(spec: Union[str, Dict[str, float]]) -> Dict[str, float]:
    """``"ce+0.5*lovasz"`` (or ``"ce+lovasz:0.5"``, or a dict) -> ``{"ce": 1.0, "lovasz": 0.5}``."""
    if isinstance(spec, dict):
        return {str(k): float(v) for k, v in spec.items()}
    terms: Dict[str, float] = {}
    for part in str(spec).replace(" ", "").lower().split("+"):
        if not part:
            continue
        weight = 1.0
        try:
            if "*" in part:
                a, b = part.split("*", 1)
                weight, part = (float(a), b) if a.replace(".", "", 1).isdigit() else (float(b), a)
            elif ":" in part:
                part, b = part.split(":", 1)
                weight = float(b)
        except ValueError:
            raise EdgesegError(f"bad loss spec {spec!r}: write terms like 'ce', '0.5*lovasz' or "
                               "'lovasz:0.5' joined by '+'") from None
        terms[part] = terms.get(part, 0.0) + weight
    if not terms:
        raise EdgesegError(f"empty loss spec {spec!r}; use e.g. 'ce' or 'ce+lovasz'")
    return terms


def build_loss(spec: Union[str, Dict[str, float]] = "ce", class_weights: Optional[Sequence[float]] = None,
               ignore_index: int = IGNORE_INDEX, per_image: bool = False) -> SegLoss:
    """Build a :class:`SegLoss` from a spec such as ``"ce"``, ``"ce+lovasz"``, ``"ce+0.5*jaccard"``."""
    return SegLoss(parse_loss_spec(spec), class_weights, ignore_index, per_image)
