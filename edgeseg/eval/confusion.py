"""Segmentation metrics from a confusion matrix. numpy only (no torch), usable anywhere."""
from __future__ import annotations

from typing import Dict, Optional

import numpy as np

from ..defaults import IGNORE_INDEX
from ..errors import ArrayError


class ConfusionMatrix:
    """Accumulates a ``num_classes x num_classes`` confusion matrix (rows: target, cols: prediction).

    Pixels whose target equals ``ignore_index`` are skipped. IoU of class c is
    ``TP / (TP + FP + FN)``; it is nan when the class appears neither in the targets nor in the
    predictions, and nan classes are left out of the mean.
    """

    def __init__(self, num_classes: int, ignore_index: Optional[int] = IGNORE_INDEX) -> None:
        if int(num_classes) < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.num_classes = int(num_classes)
        self.ignore_index = ignore_index
        self.matrix = np.zeros((self.num_classes, self.num_classes), dtype=np.int64)

    def reset(self) -> None:
        """Zero the accumulated counts."""
        self.matrix[:] = 0

    def update(self, pred: np.ndarray, target: np.ndarray) -> "ConfusionMatrix":
        """Add a batch: integer arrays of equal shape (any shape). Returns self."""
        pred = np.asarray(pred)
        target = np.asarray(target)
        if pred.shape != target.shape:
            raise ArrayError(f"pred and target must have the same shape, got {pred.shape} vs {target.shape}")
        for name, a in (("pred", pred), ("target", target)):
            if not (np.issubdtype(a.dtype, np.integer) or a.dtype == np.bool_):
                raise ArrayError(f"{name} must be an integer label array, got dtype {a.dtype}")
        t = target.ravel().astype(np.int64, copy=False)
        p = pred.ravel().astype(np.int64, copy=False)
        if self.ignore_index is not None:
            keep = t != self.ignore_index
            t, p = t[keep], p[keep]
        n = self.num_classes
        if t.size:
            if t.min() < 0 or t.max() >= n:
                raise ArrayError(f"target labels must be in [0, {n}) or {self.ignore_index} (ignore), "
                                 f"got values in [{t.min()}, {t.max()}]")
            if p.min() < 0 or p.max() >= n:
                raise ArrayError(f"predicted labels must be in [0, {n}), got values in [{p.min()}, {p.max()}]")
            self.matrix += np.bincount(t * n + p, minlength=n * n).reshape(n, n)
        return self

    def merge(self, other: "ConfusionMatrix") -> "ConfusionMatrix":
        """Add another matrix's counts (e.g. from a worker). Returns self."""
        if other.num_classes != self.num_classes:
            raise ValueError("cannot merge confusion matrices with different num_classes")
        self.matrix += other.matrix
        return self

    @property
    def total(self) -> int:
        """Number of counted (non-ignored) pixels."""
        return int(self.matrix.sum())

    def iou(self) -> np.ndarray:
        """Per-class IoU (float64, length num_classes); nan for classes absent from target and pred."""
        tp = np.diag(self.matrix).astype(np.float64)
        denom = self.matrix.sum(0) + self.matrix.sum(1) - tp
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(denom > 0, tp / np.maximum(denom, 1), np.nan)

    def miou(self) -> float:
        """Mean IoU over classes that are present (non-nan); nan if nothing was counted."""
        iou = self.iou()
        valid = ~np.isnan(iou)
        return float(iou[valid].mean()) if valid.any() else float("nan")

    def pixel_accuracy(self) -> float:
        """Fraction of counted pixels predicted correctly; nan if nothing was counted."""
        total = self.total
        return float(np.trace(self.matrix) / total) if total else float("nan")

    def class_accuracy(self) -> np.ndarray:
        """Per-class recall TP / (TP + FN); nan for classes absent from the targets."""
        tp = np.diag(self.matrix).astype(np.float64)
        support = self.matrix.sum(1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(support > 0, tp / np.maximum(support, 1), np.nan)

    def summary(self, class_names: Optional[list] = None) -> Dict[str, object]:
        """``{"miou", "pixel_acc", "per_class_iou": {name: iou or None}}`` (JSON-friendly)."""
        names = class_names or [str(i) for i in range(self.num_classes)]
        iou = self.iou()
        return {
            "miou": self.miou(),
            "pixel_acc": self.pixel_accuracy(),
            "per_class_iou": {str(n): (None if np.isnan(v) else float(v)) for n, v in zip(names, iou)},
        }
