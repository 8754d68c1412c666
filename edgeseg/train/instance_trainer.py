"""Instance segmentation training: ``train_instance(InstanceTrainConfig(...)) -> best checkpoint dir``.

Writes into ``out_dir`` (the layout of the semantic trainer)::

    best/  last/          checkpoints (model.safetensors + config.json; EMA weights when ema=True)
    train_state.pt        raw model, EMA, optimizer, scaler, epoch, best score for resume (tensors
                          only; read with torch.load(weights_only=True))
    train_config.json     the InstanceTrainConfig of the run
    history.json          per epoch: train loss and its parts, val box/mask AP50, lr, it/s, time
    curve.png             loss parts and val AP50 vs epoch

Validation runs the model as deployed: letterbox to ``input_size``, per anchor best class,
score threshold, top-k, class-aware NMS, masks ``sigmoid(coeffs . protos) > 0.5`` sampled
bilinearly at each frame pixel inside its box (the mapping of ``edgeseg.ops.assemble_masks``).
Scores come from pycocotools' COCOeval through :mod:`edgeseg.train.coco_eval` (box and mask AP50,
and AP over IoU 0.5:0.95) when pycocotools is installed. :class:`AP50` here computes the same AP50
with COCO's matching rules (101-point interpolated precision, crowd regions ignored, at most 100
detections per image and class; equal to COCOeval's in the tests) without pycocotools; it also
gives the per-class AP50 in the history.
"""
from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from .. import defaults
from ..errors import EdgesegError
from ..meta import ModelMeta
from ..models import create_model, is_model, list_models, model_task
from ..models.checkpoint import save_checkpoint
from .._io import atomic_path
from .._progress import Progress
from .dataset import normalize
from .instance_dataset import InstanceEvalDataset, InstanceTrainDataset, instance_collate, instance_eval_collate
from .instance_losses import PARTS, InstanceLoss, LossWeights
from .trainer import (_atomic_torch_save, _atomic_write_text, _available_cpus, _init_weights, _log, _worker_init,
                      default_workers, make_optimizer, resolve_device, seed_everything)

STATE_FILE = "train_state.pt"
#: Validation scorers (see evaluate_instances).
EVALUATORS = ("auto", "cocoeval", "builtin")


@dataclass
class InstanceTrainConfig:
    """Everything an instance training run needs. Defaults train ``yoloseg_n`` on synthetic data.

    ``data``/``val_data`` are specs for :func:`edgeseg.data.open_instance_dataset` (val defaults to
    the ``"val"`` split of ``data``; ``data_kwargs`` go to both). The learning rate warms up
    linearly for ``warmup_iters``, then follows ``schedule`` ("cosine" down to
    ``lr * min_lr_ratio``, or "poly" ``(1 - t)^poly_power``). ``ema`` keeps an exponential moving
    average of the weights (decay ``ema_decay * (1 - exp(-updates / ema_tau))``); it is what is
    validated and saved. ``score_threshold``/``iou_threshold`` are the deployment defaults stored
    in the checkpoint metadata; validation keeps detections above ``val_score_threshold`` (low,
    as AP needs the whole precision/recall curve), at most ``max_detections`` per image, and scores
    them with ``evaluator`` (see :func:`evaluate_instances`).
    ``loss_weights`` override :class:`~edgeseg.train.instance_losses.LossWeights` by part name.
    """

    model: str = "yoloseg_n"
    model_kwargs: Dict[str, Any] = field(default_factory=dict)
    data: str = "synthetic"
    val_data: Optional[str] = None
    data_kwargs: Dict[str, Any] = field(default_factory=dict)
    epochs: int = 30
    batch_size: int = 8
    lr: float = 2e-3
    optimizer: str = "adamw"
    weight_decay: float = 1e-2
    momentum: float = 0.9
    warmup_iters: int = 200
    schedule: str = "cosine"
    min_lr_ratio: float = 0.05
    poly_power: float = 0.9
    grad_clip: Optional[float] = 10.0
    input_size: Tuple[int, int] = defaults.SEMANTIC_INPUT_SIZE
    scale_range: Tuple[float, float] = (0.5, 1.5)
    hflip: bool = True
    color_jitter: float = 0.25
    loss_weights: Dict[str, float] = field(default_factory=dict)
    tal_topk: int = 10
    tal_alpha: float = 0.5
    tal_beta: float = 6.0
    ema: bool = True
    ema_decay: float = 0.9998
    ema_tau: float = 500.0
    workers: Optional[int] = None
    seed: int = 0
    out_dir: str = "runs/instance"
    resume: bool = False
    init_from: Optional[str] = None
    device: str = "auto"
    amp: Optional[bool] = None
    val_every: int = 1
    val_batch_size: int = 8
    max_iters_per_epoch: Optional[int] = None
    max_val_samples: Optional[int] = None
    num_threads: Optional[int] = None
    progress: bool = True
    score_threshold: float = 0.25
    iou_threshold: float = 0.5
    val_score_threshold: float = 0.01
    max_detections: int = 100
    evaluator: str = "auto"

    def __post_init__(self) -> None:
        if isinstance(self.input_size, int):
            self.input_size = (self.input_size, self.input_size)
        self.input_size = tuple(int(v) for v in self.input_size)  # type: ignore[assignment]
        self.scale_range = tuple(float(v) for v in self.scale_range)  # type: ignore[assignment]
        self.out_dir = str(self.out_dir)

    def validate(self) -> None:
        """Raise :class:`EdgesegError` naming the first bad field."""
        def bad(msg: str) -> None:
            raise EdgesegError(f"instance training config: {msg}")

        if not is_model(self.model):
            bad(f"unknown model {self.model!r}; valid names: {', '.join(list_models())}")
        if model_task(self.model) != "instance":
            bad(f"{self.model!r} is a {model_task(self.model)} model; instance models: "
                f"{', '.join(list_models(task='instance'))} (or train with --task {model_task(self.model)})")
        for name in ("epochs", "batch_size", "val_every", "val_batch_size", "tal_topk", "max_detections"):
            if int(getattr(self, name)) < 1:
                bad(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.lr > 0:
            bad(f"lr must be > 0, got {self.lr}")
        if self.optimizer not in ("adamw", "sgd"):
            bad(f"optimizer must be 'adamw' or 'sgd', got {self.optimizer!r}")
        if self.schedule not in ("cosine", "poly"):
            bad(f"schedule must be 'cosine' or 'poly', got {self.schedule!r}")
        if len(self.input_size) != 2 or min(self.input_size) < 32 or any(v % 32 for v in self.input_size):
            bad(f"input_size must be (h, w), both positive multiples of 32, got {self.input_size}")
        if len(self.scale_range) != 2 or not 0 < self.scale_range[0] <= self.scale_range[1]:
            bad(f"scale_range must be (min, max) with 0 < min <= max, got {self.scale_range}")
        if (self.workers is not None and self.workers < 0) or self.warmup_iters < 0:
            bad("workers and warmup_iters must be >= 0")
        if self.max_iters_per_epoch is not None and self.max_iters_per_epoch < 1:
            bad(f"max_iters_per_epoch must be >= 1, got {self.max_iters_per_epoch}")
        if self.device not in ("auto", "cpu") and not self.device.startswith("cuda"):
            bad(f"device must be 'auto', 'cpu' or 'cuda[:N]', got {self.device!r}")
        unknown = sorted(set(self.loss_weights) - set(PARTS))
        if unknown:
            bad(f"loss_weights has unknown part(s) {unknown}; known: {list(PARTS)}")
        for name in ("score_threshold", "iou_threshold", "val_score_threshold"):
            if not 0.0 <= float(getattr(self, name)) <= 1.0:
                bad(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if not 0.0 <= self.ema_decay < 1.0 or self.ema_tau <= 0:
            bad(f"ema_decay must be in [0, 1) and ema_tau > 0, got {self.ema_decay}, {self.ema_tau}")
        if self.evaluator not in EVALUATORS:
            bad(f"evaluator must be one of {EVALUATORS}, got {self.evaluator!r}")
        if self.init_from is not None and self.resume:
            bad("init_from and resume exclude each other: resume continues a run, init_from starts a new one "
                "from another model's weights")

    def to_dict(self) -> Dict[str, Any]:
        d = dataclasses.asdict(self)
        d["input_size"] = list(self.input_size)
        d["scale_range"] = list(self.scale_range)
        return d

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "InstanceTrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise EdgesegError(f"instance training config: unknown field(s) {unknown}; known: {sorted(known)}")
        return cls(**d)


def lr_at(it: int, total: int, base_lr: float, warmup: int, schedule: str = "cosine", min_ratio: float = 0.05,
          power: float = 0.9) -> float:
    """Linear warm-up to ``base_lr`` over ``warmup`` iterations, then cosine to ``base_lr * min_ratio``
    (or poly ``(1 - t)^power`` to 0) at ``total``."""
    if warmup > 0 and it < warmup:
        return base_lr * (it + 1) / warmup
    t = min(1.0, (it - warmup) / max(1, total - warmup))
    if schedule == "poly":
        return base_lr * (1.0 - t) ** power
    return base_lr * (min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * t)))


class ModelEMA:
    """Exponential moving average of a model's floating-point state (weights and BN statistics)."""

    def __init__(self, model: torch.nn.Module, decay: float = 0.9998, tau: float = 500.0) -> None:
        import copy

        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.decay, self.tau, self.updates = float(decay), float(tau), 0

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        self.updates += 1
        d = self.decay * (1.0 - math.exp(-self.updates / self.tau))
        src = model.state_dict()
        for k, v in self.module.state_dict().items():
            if v.dtype.is_floating_point:
                v.mul_(d).add_(src[k].detach(), alpha=1.0 - d)
            else:
                v.copy_(src[k])


# ------------------------------------------------------------------------- post-processing


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


def masks_in_frame(mask_logits: torch.Tensor, boxes: torch.Tensor, frame_hw: Tuple[int, int],
                   input_hw: Tuple[int, int], lb: Tuple[int, int, int, int], threshold: float = 0.5) -> np.ndarray:
    """Bool (K, h, w) frame masks from prototype-resolution logits (K, hp, wp), box-local.

    Every frame pixel whose centre lies inside its (frame) box is mapped to the network input
    (letterbox ``lb`` = (top, left, rh, rw)), then to prototype coordinates (half-pixel, clamped at
    the edges), the logit is bilinearly interpolated and compared with ``logit(threshold)``.
    """
    h, w = frame_hw
    in_h, in_w = input_hw
    top, left, rh, rw = lb
    k = mask_logits.shape[0]
    out = np.zeros((k, h, w), bool)
    cut = math.log(threshold / (1.0 - threshold))
    bx = boxes.detach().cpu().numpy()
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


@torch.no_grad()
def predict_instances(model: torch.nn.Module, images: torch.Tensor, lb_boxes: Sequence[Tuple[int, int, int, int]],
                      frame_sizes: Sequence[Tuple[int, int]], score_threshold: float = 0.25,
                      iou_threshold: float = 0.5, max_detections: int = 100,
                      mean: Sequence[float] = defaults.MEAN_RGB, std: Sequence[float] = defaults.STD_RGB
                      ) -> List[Dict[str, np.ndarray]]:
    """Detections for a batch of letterboxed RGB uint8 images, mapped back to each frame.

    Returns per image ``{"boxes" (K,4) float32 frame xyxy, "scores" (K,), "classes" (K,) int64,
    "masks" (K,h,w) bool}``.
    """
    model.eval()
    x = normalize(images, mean, std)
    boxes, scores, coeffs, protos = model(x)
    dets = postprocess(boxes, scores, score_threshold, iou_threshold, max_detections)
    in_h, in_w = x.shape[-2:]
    out = []
    for i, (d, (top, left, rh, rw), (h, w)) in enumerate(zip(dets, lb_boxes, frame_sizes)):
        b = d["boxes"].clone()
        b[:, 0::2] = ((b[:, 0::2] - left) * (w / rw)).clamp(0, w)
        b[:, 1::2] = ((b[:, 1::2] - top) * (h / rh)).clamp(0, h)
        kp, hp, wp = protos.shape[1:]
        logits = (coeffs[i][d["index"]].float() @ protos[i].float().reshape(kp, hp * wp)).view(-1, hp, wp)
        masks = masks_in_frame(logits, b, (h, w), (in_h, in_w), (top, left, rh, rw))
        out.append({"boxes": b.cpu().numpy().astype(np.float32), "scores": d["scores"].cpu().numpy(),
                    "classes": d["classes"].cpu().numpy().astype(np.int64), "masks": masks})
    return out


# ----------------------------------------------------------------------------------- AP50


def _box_iou_np(d: np.ndarray, g: np.ndarray, crowd: np.ndarray) -> np.ndarray:
    """COCO box IoU (D, G); for crowd GTs the denominator is the detection's area."""
    lt = np.maximum(d[:, None, :2], g[None, :, :2])
    rb = np.minimum(d[:, None, 2:], g[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    ad = np.clip(d[:, 2:] - d[:, :2], 0, None).prod(-1)
    ag = np.clip(g[:, 2:] - g[:, :2], 0, None).prod(-1)
    union = np.where(crowd[None, :], ad[:, None], ad[:, None] + ag[None, :] - inter)
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def _mask_iou_np(d: np.ndarray, g: np.ndarray, crowd: np.ndarray) -> np.ndarray:
    """COCO mask IoU (D, G) of bool masks; crowd GTs divide by the detection's area."""
    df = d.reshape(len(d), -1)
    gf = g.reshape(len(g), -1)
    inter = df.astype(np.float32) @ gf.T.astype(np.float32)
    ad, ag = df.sum(1).astype(np.float32), gf.sum(1).astype(np.float32)
    union = np.where(crowd[None, :], ad[:, None], ad[:, None] + ag[None, :] - inter)
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


class AP50:
    """COCO-style AP at IoU 0.5 (area "all", ``max_dets`` per image and class), accumulated image by
    image so no masks are kept. ``iou_type`` is "bbox" or "segm"."""

    def __init__(self, num_classes: int, iou_type: str = "bbox", max_dets: int = 100) -> None:
        if iou_type not in ("bbox", "segm"):
            raise ValueError(f"iou_type must be 'bbox' or 'segm', got {iou_type!r}")
        self.num_classes, self.iou_type, self.max_dets = int(num_classes), iou_type, int(max_dets)
        self._scores: List[List[np.ndarray]] = [[] for _ in range(num_classes)]
        self._tp: List[List[np.ndarray]] = [[] for _ in range(num_classes)]
        self._ig: List[List[np.ndarray]] = [[] for _ in range(num_classes)]
        self._npos = np.zeros(num_classes, np.int64)

    def update(self, det: Dict[str, np.ndarray], gt: Dict[str, np.ndarray]) -> None:
        """One image. ``det``: boxes (D,4) xyxy, scores (D,), classes (D,), masks (D,h,w) for segm;
        ``gt``: boxes (G,4), classes (G,), iscrowd (G,), masks (G,h,w) for segm."""
        key = "boxes" if self.iou_type == "bbox" else "masks"
        g_cls = np.asarray(gt["classes"]).astype(np.int64)
        g_crowd = np.asarray(gt.get("iscrowd", np.zeros(len(g_cls), bool)), bool)
        d_cls = np.asarray(det["classes"]).astype(np.int64)
        d_sc = np.asarray(det["scores"], np.float64)
        for c in np.union1d(np.unique(g_cls), np.unique(d_cls)):
            gi = np.flatnonzero(g_cls == c)
            gi = gi[np.argsort(g_crowd[gi], kind="mergesort")]  # non-crowd first
            di = np.flatnonzero(d_cls == c)
            di = di[np.argsort(-d_sc[di], kind="mergesort")][:self.max_dets]
            crowd = g_crowd[gi]
            self._npos[c] += int((~crowd).sum())
            if len(di) == 0:
                continue
            tp, ig = np.zeros(len(di), bool), np.zeros(len(di), bool)
            if len(gi):
                dd, gg = np.asarray(det[key])[di], np.asarray(gt[key])[gi]
                ious = _box_iou_np(dd, gg, crowd) if key == "boxes" else _mask_iou_np(dd, gg, crowd)
                taken = np.zeros(len(gi), bool)
                for j in range(len(di)):
                    best, m = 0.5, -1
                    for k in range(len(gi)):
                        if taken[k] and not crowd[k]:
                            continue
                        if m > -1 and not crowd[m] and crowd[k]:
                            break
                        if ious[j, k] < best:
                            continue
                        best, m = ious[j, k], k
                    if m == -1:
                        continue
                    ig[j] = crowd[m]
                    tp[j] = not crowd[m]
                    taken[m] = True
            self._scores[c].append(d_sc[di])
            self._tp[c].append(tp)
            self._ig[c].append(ig)

    def per_class(self) -> List[Optional[float]]:
        """AP50 per class (None for classes without ground truth)."""
        rec_thrs = np.linspace(0.0, 1.0, 101)
        out: List[Optional[float]] = []
        for c in range(self.num_classes):
            if self._npos[c] == 0:
                out.append(None)
                continue
            if not self._scores[c]:
                out.append(0.0)
                continue
            sc = np.concatenate(self._scores[c])
            order = np.argsort(-sc, kind="mergesort")
            tp = np.concatenate(self._tp[c])[order]
            ig = np.concatenate(self._ig[c])[order]
            tps = np.cumsum(tp & ~ig).astype(np.float64)
            fps = np.cumsum(~tp & ~ig).astype(np.float64)
            rc = tps / self._npos[c]
            pr = tps / (fps + tps + np.spacing(1))
            pr = np.maximum.accumulate(pr[::-1])[::-1]
            idx = np.searchsorted(rc, rec_thrs, side="left")
            q = np.where(idx < len(pr), pr[np.minimum(idx, len(pr) - 1)], 0.0)
            out.append(float(q.mean()))
        return out

    def value(self) -> float:
        """Mean AP50 over classes with ground truth (0.0 if there is none)."""
        vals = [v for v in self.per_class() if v is not None]
        return float(np.mean(vals)) if vals else 0.0


def _use_cocoeval(evaluator: str) -> bool:
    if evaluator not in EVALUATORS:
        raise EdgesegError(f"evaluator must be one of {EVALUATORS}, got {evaluator!r}")
    if evaluator != "auto":
        return evaluator == "cocoeval"
    import importlib.util

    return importlib.util.find_spec("pycocotools") is not None


def evaluate_instances(model: torch.nn.Module, dataset: Any, input_size: Tuple[int, int] = defaults.SEMANTIC_INPUT_SIZE,
                       batch_size: int = 8, device: Union[str, torch.device, None] = None, workers: int = 0,
                       limit: Optional[int] = None, score_threshold: float = 0.01, iou_threshold: float = 0.5,
                       max_detections: int = 100, progress: bool = False, evaluator: str = "auto",
                       coco_gt: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """Evaluate an instance model on an instance dataset as deployed (module docstring).

    ``evaluator``: "cocoeval" (pycocotools through :mod:`edgeseg.train.coco_eval`; adds AP over
    IoU 0.5:0.95), "builtin" (this module's :class:`AP50`, no pycocotools needed) or "auto" (COCOeval
    when pycocotools is installed). ``coco_gt`` is the COCO ground truth of the first ``limit``
    samples (built with ``coco_gt_from_dataset`` when None; pass it to avoid re-reading the set).

    Returns ``{"box_ap50", "mask_ap50", "box_ap", "mask_ap" (None without COCOeval),
    "per_class_mask_ap50": {class: ap|None} (built-in), "evaluator", "images", "detections"}``.
    The model is left in eval mode.
    """
    use_coco = _use_cocoeval(evaluator)
    if device is None:
        device = next(model.parameters()).device
    device = torch.device(device)
    classes = list(dataset.classes)
    cat_ids = list(getattr(dataset, "cat_ids", range(1, len(classes) + 1)))
    box_ap, mask_ap = AP50(len(classes), "bbox"), AP50(len(classes), "segm")
    ds = InstanceEvalDataset(dataset, tuple(input_size), limit)
    loader = DataLoader(ds, batch_size=batch_size, shuffle=False, num_workers=workers,
                        collate_fn=instance_eval_collate, worker_init_fn=_worker_init if workers else None)
    bar = Progress(len(loader), "val", enabled=progress)
    coco_dets: List[Dict[str, Any]] = []
    n_det = 0
    for images, samples, lbs in loader:
        dets = predict_instances(model, images.to(device), lbs, [s.image.shape[:2] for s in samples],
                                 score_threshold, iou_threshold, max_detections)
        for d, s in zip(dets, samples):
            gt = {"boxes": np.asarray(s.boxes, np.float32).reshape(-1, 4), "classes": np.asarray(s.class_ids),
                  "iscrowd": np.asarray(s.iscrowd, bool), "masks": np.asarray(s.masks, bool)}
            box_ap.update(d, gt)
            mask_ap.update(d, gt)
            n_det += len(d["scores"])
            if use_coco:
                from .coco_eval import detections_to_coco

                coco_dets += detections_to_coco(int(s.image_id), d["masks"], d["scores"], d["classes"], cat_ids,
                                                d["boxes"])
        bar.update(1)
    bar.close()
    out: Dict[str, Any] = {"box_ap50": box_ap.value(), "mask_ap50": mask_ap.value(), "box_ap": None, "mask_ap": None,
                           "per_class_mask_ap50": dict(zip(classes, mask_ap.per_class())),
                           "evaluator": "cocoeval" if use_coco else "builtin", "images": len(ds), "detections": n_det}
    if use_coco:
        from .coco_eval import coco_gt_from_dataset, evaluate_coco

        gt_doc = coco_gt if coco_gt is not None else coco_gt_from_dataset(dataset, len(ds))
        res = evaluate_coco(gt_doc, coco_dets)
        out.update(box_ap50=max(res["bbox"]["AP50"], 0.0), mask_ap50=max(res["segm"]["AP50"], 0.0),
                   box_ap=max(res["bbox"]["AP"], 0.0), mask_ap=max(res["segm"]["AP"], 0.0))
    return out


# -------------------------------------------------------------------------------- plotting


def plot_instance_history(history: Sequence[dict], path: Union[str, Path]) -> Path:
    """Loss (total and parts) and val box/mask AP50 per epoch, as a PNG (written atomically)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = Path(path)
    fig = Figure(figsize=(9, 3.6), dpi=100)
    FigureCanvasAgg(fig)
    ax_loss, ax_ap = fig.subplots(1, 2)
    ep = [h["epoch"] for h in history]
    ax_loss.plot(ep, [h["train_loss"] for h in history], "o-", color="black", ms=3, label="total")
    for part in PARTS:
        if all(f"loss_{part}" in h for h in history):
            ax_loss.plot(ep, [h[f"loss_{part}"] for h in history], "-", lw=1, label=part)
    ax_loss.set(xlabel="epoch", ylabel="train loss", title="loss", yscale="log")
    ax_loss.legend(loc="upper right", fontsize=7)
    ax_loss.grid(alpha=0.3)
    val = [(h["epoch"], h.get("val_box_ap50"), h.get("val_mask_ap50")) for h in history
           if h.get("val_mask_ap50") is not None]
    if val:
        ax_ap.plot([v[0] for v in val], [v[2] for v in val], "o-", ms=3, label="mask AP50")
        ax_ap.plot([v[0] for v in val], [v[1] for v in val], "s--", ms=3, label="box AP50")
        ax_ap.legend(loc="upper left")
    ax_ap.set(xlabel="epoch", title="validation", ylim=(0, 1))
    ax_ap.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return path


# ---------------------------------------------------------------------------------- training


def _make_meta(cfg: InstanceTrainConfig, model: torch.nn.Module, dataset: Any, extra: Dict[str, Any]) -> ModelMeta:
    palette = list(getattr(dataset, "palette", []) or [])
    extra = {"num_protos": int(model.num_protos), "strides": [int(s) for s in model.strides],
             "score_threshold": cfg.score_threshold, "iou_threshold": cfg.iou_threshold,
             "max_detections": cfg.max_detections, **extra}
    return ModelMeta(task="instance", classes=list(dataset.classes), input_size=cfg.input_size, arch=cfg.model,
                     mean=defaults.MEAN_RGB, std=defaults.STD_RGB, output_stride=int(model.output_stride),
                     output_names=list(model.output_names), palette=palette, extra=extra)


def _load_resume(out: Path, cfg: InstanceTrainConfig, model: torch.nn.Module, ema: Optional[ModelEMA],
                 optimizer: torch.optim.Optimizer, scaler: Any) -> Optional[Dict[str, Any]]:
    state_path = out / STATE_FILE
    if not state_path.is_file():
        _log(f"resume: nothing to resume in {out} (no {STATE_FILE}); starting from scratch")
        return None
    state = torch.load(state_path, map_location="cpu", weights_only=True)
    if state.get("model") != cfg.model:
        raise EdgesegError(f"resume: {out} holds a {state.get('model')!r} run but the config asks for "
                           f"{cfg.model!r}; use another out_dir or the same model")
    model.load_state_dict(state["model_state"])
    if ema is not None:
        if state.get("ema_state"):
            ema.module.load_state_dict(state["ema_state"])
            ema.updates = int(state.get("ema_updates", 0))
        else:
            ema.module.load_state_dict(state["model_state"])
    optimizer.load_state_dict(state["optimizer"])
    if scaler is not None and state.get("scaler"):
        scaler.load_state_dict(state["scaler"])
    torch.set_rng_state(state["torch_rng"])
    hist_path = out / "history.json"
    state["history"] = json.loads(hist_path.read_text()) if hist_path.is_file() else []
    return state


def train_instance(cfg: InstanceTrainConfig, on_epoch_end: Optional[Callable[[Dict[str, Any]], Any]] = None) -> Path:
    """Train an instance model as configured; returns the directory of the best checkpoint (by val
    mask AP50).

    Progress goes to stderr. With ``cfg.resume`` a run in ``cfg.out_dir`` continues after its last
    finished epoch. ``on_epoch_end(record)`` is called after each saved epoch; returning ``False``
    stops the run there (it can be resumed later).
    """
    import cv2

    cfg.validate()
    cv2_threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        return _train(cfg, on_epoch_end)
    finally:
        cv2.setNumThreads(cv2_threads)


def _train(cfg: InstanceTrainConfig, on_epoch_end: Optional[Callable[[Dict[str, Any]], Any]]) -> Path:
    out = Path(cfg.out_dir)
    seed_everything(cfg.seed)
    device = resolve_device(cfg.device)
    use_amp = device.type == "cuda" and cfg.amp is not False
    torch.set_num_threads(int(cfg.num_threads or _available_cpus()))
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True

    from ..data import open_instance_dataset

    train_ds = open_instance_dataset(cfg.data, "train", **cfg.data_kwargs)
    val_ds = open_instance_dataset(cfg.val_data or cfg.data, "val", **cfg.data_kwargs)
    if len(train_ds) == 0:
        raise EdgesegError(f"training dataset {cfg.data!r} is empty")
    classes = list(train_ds.classes)
    if list(val_ds.classes) != classes:
        raise EdgesegError(f"train and val datasets have different classes: {classes} vs {list(val_ds.classes)}")

    model = create_model(cfg.model, len(classes), **cfg.model_kwargs)
    if getattr(model, "task", None) != "instance":
        raise EdgesegError(f"model {cfg.model!r} is not an instance segmentation model; use e.g. yoloseg_n")
    if cfg.init_from is not None:
        _init_weights(model, cfg.init_from, cfg.model, classes)
    model = model.to(device)
    out.mkdir(parents=True, exist_ok=True)
    weights = LossWeights(**{k: float(v) for k, v in cfg.loss_weights.items()})
    loss_fn = InstanceLoss(len(classes), weights, cfg.tal_topk, cfg.tal_alpha, cfg.tal_beta,
                           proto_stride=int(model.output_stride))
    optimizer = make_optimizer(model, cfg)  # type: ignore[arg-type]
    scaler = torch.amp.GradScaler("cuda") if use_amp else None
    ema = ModelEMA(model, cfg.ema_decay, cfg.ema_tau) if cfg.ema else None

    tds = InstanceTrainDataset(train_ds, cfg.input_size, cfg.seed, cfg.scale_range, cfg.hflip, cfg.color_jitter,
                               mask_stride=int(model.output_stride))
    gen = torch.Generator()
    workers = default_workers() if cfg.workers is None else cfg.workers
    loader = DataLoader(tds, batch_size=cfg.batch_size, shuffle=True, drop_last=len(tds) >= cfg.batch_size,
                        num_workers=workers, generator=gen, collate_fn=instance_collate,
                        pin_memory=device.type == "cuda", worker_init_fn=_worker_init if workers else None)
    iters = len(loader) if cfg.max_iters_per_epoch is None else min(len(loader), cfg.max_iters_per_epoch)
    total_iters = cfg.epochs * iters

    start_epoch, global_iter, best, history = 0, 0, -1.0, []
    if cfg.resume:
        state = _load_resume(out, cfg, model, ema, optimizer, scaler)
        if state is not None:
            start_epoch, global_iter = int(state["epoch"]) + 1, int(state["global_iter"])
            best, history = float(state["best_score"]), state["history"][:start_epoch]
            _log(f"resume: continuing {out} after epoch {start_epoch} (best mask AP50 {best:.4f})")
    _atomic_write_text(out / "train_config.json", json.dumps(cfg.to_dict(), indent=2) + "\n")
    coco_gt = None
    if _use_cocoeval(cfg.evaluator):  # the val ground truth, read once for the whole run
        from .coco_eval import coco_gt_from_dataset

        coco_gt = coco_gt_from_dataset(val_ds, cfg.max_val_samples)

    n_params = sum(p.numel() for p in model.parameters())
    _log(f"train: {cfg.model} ({n_params / 1e6:.2f} M params, {len(classes)} classes) on {device}"
         f"{' +AMP' if use_amp else ''}; {len(train_ds)} train / {len(val_ds)} val samples; "
         f"{cfg.epochs} epochs x {iters} iters, batch {cfg.batch_size}, input {cfg.input_size[0]}x"
         f"{cfg.input_size[1]}, {torch.get_num_threads()} threads, {workers} data workers")

    for epoch in range(start_epoch, cfg.epochs):
        t0 = time.perf_counter()
        tds.set_epoch(epoch)
        gen.manual_seed(cfg.seed * 100_003 + epoch)
        model.train()
        bar = Progress(iters, f"epoch {epoch + 1}/{cfg.epochs}", enabled=cfg.progress)
        sums = torch.zeros(len(PARTS) + 1, dtype=torch.float64)
        n, lr = 0, cfg.lr
        for it, (x, targets) in enumerate(loader):
            if it >= iters:
                break
            lr = lr_at(global_iter, total_iters, cfg.lr, cfg.warmup_iters, cfg.schedule, cfg.min_lr_ratio,
                       cfg.poly_power)
            for g in optimizer.param_groups:
                g["lr"] = lr
            x = normalize(x.to(device, non_blocking=True))
            targets = {k: v.to(device, non_blocking=True) for k, v in targets.items()}
            with torch.autocast(device.type, dtype=torch.float16, enabled=use_amp):
                outputs = model(x)
            loss, parts = loss_fn(outputs, targets)
            vals = torch.stack([loss.detach()] + [parts[p] for p in PARTS]).double().cpu()
            if not bool(torch.isfinite(vals[0])):
                raise EdgesegError(f"loss became {float(vals[0])} at epoch {epoch + 1} iter {it + 1}; "
                                   f"lower the learning rate (lr={cfg.lr}) or check the annotations")
            optimizer.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                if cfg.grad_clip:
                    scaler.unscale_(optimizer)
                    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                scaler.step(optimizer)
                scaler.update()
            else:
                loss.backward()
                if cfg.grad_clip:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                optimizer.step()
            if ema is not None:
                ema.update(model)
            global_iter += 1
            sums += vals
            n += 1
            mean = (sums / n).tolist()
            bar.update(1, loss=mean[0], **{p: mean[i + 1] for i, p in enumerate(PARTS)}, lr=lr)
        bar.close()
        train_time = time.perf_counter() - t0
        mean = (sums / max(n, 1)).tolist()

        rec: Dict[str, Any] = {"epoch": epoch + 1, "train_loss": mean[0],
                               **{f"loss_{p}": mean[i + 1] for i, p in enumerate(PARTS)},
                               "lr": lr, "iters": n, "train_time_s": round(train_time, 2),
                               "it_per_s": round(n / train_time, 3) if train_time > 0 else None,
                               "val_box_ap50": None, "val_mask_ap50": None}
        eval_model = ema.module if ema is not None else model
        if (epoch + 1) % cfg.val_every == 0 or epoch + 1 == cfg.epochs:
            res = evaluate_instances(eval_model, val_ds, cfg.input_size, cfg.val_batch_size, device, workers,
                                     cfg.max_val_samples, cfg.val_score_threshold, cfg.iou_threshold,
                                     cfg.max_detections, evaluator=cfg.evaluator, coco_gt=coco_gt)
            rec.update(val_box_ap50=res["box_ap50"], val_mask_ap50=res["mask_ap50"], val_box_ap=res["box_ap"],
                       val_mask_ap=res["mask_ap"], val_per_class_mask_ap50=res["per_class_mask_ap50"],
                       val_detections=res["detections"], val_evaluator=res["evaluator"])
        rec["time_s"] = round(time.perf_counter() - t0, 2)
        history.append(rec)

        score = rec["val_mask_ap50"]
        extra = {"epoch": epoch + 1, "val_mask_ap50": score, "val_box_ap50": rec["val_box_ap50"],
                 "val_mask_ap": rec.get("val_mask_ap"), "val_box_ap": rec.get("val_box_ap"), "dataset": cfg.data}
        meta = _make_meta(cfg, eval_model, train_ds, extra)
        save_checkpoint(out / "last", eval_model, meta, model_cfg=model.edgeseg_cfg, extra={"train": cfg.to_dict()})
        improved = score is not None and not math.isnan(score) and score > best
        if improved or not (out / "best").is_dir():
            best = max(best, score if score is not None and not math.isnan(score) else -1.0)
            save_checkpoint(out / "best", eval_model, meta, model_cfg=model.edgeseg_cfg,
                            extra={"train": cfg.to_dict()})
        _atomic_torch_save({"epoch": epoch, "global_iter": global_iter, "best_score": best, "model": cfg.model,
                            "model_state": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                            "ema_state": ({k: v.detach().cpu() for k, v in ema.module.state_dict().items()}
                                          if ema is not None else {}),
                            "ema_updates": ema.updates if ema is not None else 0,
                            "optimizer": optimizer.state_dict(),
                            "scaler": scaler.state_dict() if scaler is not None else {},
                            "torch_rng": torch.get_rng_state()}, out / STATE_FILE)
        _atomic_write_text(out / "history.json", json.dumps(history, indent=2) + "\n")
        plot_instance_history(history, out / "curve.png")
        msg = (f"epoch {epoch + 1}/{cfg.epochs}: loss {mean[0]:.4f} ("
               + ", ".join(f"{p} {mean[i + 1]:.3f}" for i, p in enumerate(PARTS)) + ")")
        if score is not None:
            msg += f", val mask AP50 {score:.4f}, box AP50 {rec['val_box_ap50']:.4f}"
            if rec["val_mask_ap"] is not None:
                msg += f", mask AP {rec['val_mask_ap']:.4f}, box AP {rec['val_box_ap']:.4f}"
            msg += " (best)" if improved else ""
        _log(msg + f" [{rec['time_s']:.1f} s, {rec['it_per_s']} it/s]")
        if on_epoch_end is not None and on_epoch_end(dict(rec)) is False:
            _log(f"stopped after epoch {epoch + 1}; continue with resume=True")
            break

    return out / "best"
