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
Scores come from pycocotools' COCOeval through :mod:`edgeseg.eval.coco` (box and mask AP50,
and AP over IoU 0.5:0.95) when pycocotools is installed. :class:`~edgeseg.eval.ap50.AP50` computes the same AP50
with COCO's matching rules (101-point interpolated precision, crowd regions ignored, at most 100
detections per image and class; equal to COCOeval's in the tests) without pycocotools; it also
gives the per-class AP50 in the history.
"""
from __future__ import annotations

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
from ..eval.ap50 import AP50
from ..errors import EdgesegError
from ..meta import ModelMeta
from ..models import create_model
from .._progress import Progress
from .common import STATE_FILE  # noqa: F401 (this module's API)
from .common import (RunConfig, atomic_write_text, begin_epoch, log, log_run_start, lr_at, make_optimizer,
                     make_train_loader, open_datasets, optimizer_step, prepare_model, resume_run, save_checkpoints,
                     save_run_state, set_lr, setup_run, single_cv2_thread, speed_record, stop_requested, validates,
                     worker_init)
from .dataset import normalize
from .instance_dataset import InstanceEvalDataset, InstanceTrainDataset, instance_collate, instance_eval_collate
from .instance_losses import PARTS, InstanceLoss, LossWeights
from .plotting import plot_curves

#: Validation scorers (see evaluate_instances).
EVALUATORS = ("auto", "cocoeval", "builtin")


@dataclass
class InstanceTrainConfig(RunConfig):
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

    _name = "instance training config"
    _task = "instance"

    def __post_init__(self) -> None:
        self._normalize()

    def validate(self) -> None:
        """Raise :class:`EdgesegError` naming the first bad field."""
        bad = self._bad
        self._check_model_and_optimizer(("tal_topk", "max_detections"))
        if self.schedule not in ("cosine", "poly"):
            bad(f"schedule must be 'cosine' or 'poly', got {self.schedule!r}")
        if len(self.input_size) != 2 or min(self.input_size) < 32 or any(v % 32 for v in self.input_size):
            bad(f"input_size must be (h, w), both positive multiples of 32, got {self.input_size}")
        if len(self.scale_range) != 2 or not 0 < self.scale_range[0] <= self.scale_range[1]:
            bad(f"scale_range must be (min, max) with 0 < min <= max, got {self.scale_range}")
        self._check_loop()
        parts = _loss_parts_of(self.model, self.model_kwargs) if self.loss_weights else PARTS
        unknown = sorted(set(self.loss_weights) - set(parts))
        if unknown:
            bad(f"loss_weights has unknown part(s) {unknown}; known: {list(parts)}")
        for name in ("score_threshold", "iou_threshold", "val_score_threshold"):
            if not 0.0 <= float(getattr(self, name)) <= 1.0:
                bad(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if not 0.0 <= self.ema_decay < 1.0 or self.ema_tau <= 0:
            bad(f"ema_decay must be in [0, 1) and ema_tau > 0, got {self.ema_decay}, {self.ema_tau}")
        if self.evaluator not in EVALUATORS:
            bad(f"evaluator must be one of {EVALUATORS}, got {self.evaluator!r}")
        self._check_start()


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
    if _is_two_stage(model):
        return _predict_two_stage(model, images, lb_boxes, frame_sizes, score_threshold, iou_threshold,
                                  max_detections, mean, std)
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

    ``evaluator``: "cocoeval" (pycocotools through :mod:`edgeseg.eval.coco`; adds AP over
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
                        collate_fn=instance_eval_collate, worker_init_fn=worker_init if workers else None)
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
                from ..eval.coco import detections_to_coco

                coco_dets += detections_to_coco(int(s.image_id), d["masks"], d["scores"], d["classes"], cat_ids,
                                                d["boxes"])
        bar.update(1)
    bar.close()
    out: Dict[str, Any] = {"box_ap50": box_ap.value(), "mask_ap50": mask_ap.value(), "box_ap": None, "mask_ap": None,
                           "per_class_mask_ap50": dict(zip(classes, mask_ap.per_class())),
                           "evaluator": "cocoeval" if use_coco else "builtin", "images": len(ds), "detections": n_det}
    if use_coco:
        from ..eval.coco import coco_gt_from_dataset, evaluate_coco

        gt_doc = coco_gt if coco_gt is not None else coco_gt_from_dataset(dataset, len(ds))
        res = evaluate_coco(gt_doc, coco_dets)
        out.update(box_ap50=max(res["bbox"]["AP50"], 0.0), mask_ap50=max(res["segm"]["AP50"], 0.0),
                   box_ap=max(res["bbox"]["AP"], 0.0), mask_ap=max(res["segm"]["AP"], 0.0))
    return out


# -------------------------------------------------------------------------------- plotting


def plot_instance_history(history: Sequence[dict], path: Union[str, Path]) -> Path:
    """Loss (total and parts) and val box/mask AP50 per epoch, as a PNG (written atomically)."""
    return plot_curves(history, path,
                       [("train_loss", "o-", {"color": "black", "ms": 3, "label": "total"})]
                       + [(f"loss_{part}", "-", {"lw": 1, "label": part}) for part in _history_parts(history)],
                       [("val_mask_ap50", "o-", "mask AP50"), ("val_box_ap50", "s--", "box AP50")],
                       loss_log=True, val_legend_loc="upper left")


# ------------------------------------------------------------------ two-stage models (Mask R-CNN)
# A model with ``head_type == "maskrcnn"`` drives its own stages: its losses come from
# edgeseg.train.maskrcnn_losses (proposals and RoI sampling happen between the stages), it predicts
# post-NMS detections itself (``model.detect``: boxes, labels, scores, 28x28 masks), wants
# full-resolution mask targets (``model.mask_target_stride``) and describes its graph for the
# metadata (``model.meta_extra()``). Single-stage models (YOLOSeg) never reach this code.


def _is_two_stage(model: Any) -> bool:
    return getattr(model, "head_type", None) == "maskrcnn"


def _loss_parts_of(name: str, model_kwargs: Dict[str, Any]) -> Sequence[str]:
    """The loss part names of registered model ``name`` (for validating ``loss_weights``)."""
    try:
        probe = create_model(name, 1, **model_kwargs)
    except Exception:  # noqa: BLE001 - a bad model config is reported when the run builds the model
        return PARTS
    if _is_two_stage(probe):
        from .maskrcnn_losses import PARTS as TWO_STAGE_PARTS

        return TWO_STAGE_PARTS
    return PARTS


def _history_parts(history: Sequence[dict]) -> List[str]:
    """Loss part names recorded in a history (``loss_<part>`` keys of its first record)."""
    return [k[5:] for k in history[0] if k.startswith("loss_")] if history else list(PARTS)


def _two_stage_loss(model: torch.nn.Module, cfg: "InstanceTrainConfig", use_amp: bool
                    ) -> Tuple[Callable[[torch.Tensor, Dict[str, torch.Tensor]], Tuple[torch.Tensor, Dict[str, Any]]],
                               Sequence[str]]:
    """``(compute_loss(x, targets) -> (total, parts), part names)`` of a Mask R-CNN model."""
    from .maskrcnn_losses import PARTS as TWO_STAGE_PARTS
    from .maskrcnn_losses import MaskRCNNLoss, MaskRCNNLossWeights

    loss_fn = MaskRCNNLoss(MaskRCNNLossWeights(**{k: float(v) for k, v in cfg.loss_weights.items()}))

    def compute_loss(x: torch.Tensor, targets: Dict[str, torch.Tensor]) -> Tuple[torch.Tensor, Dict[str, Any]]:
        with torch.autocast(x.device.type, dtype=torch.float16, enabled=use_amp):
            return loss_fn(model, x, targets)  # type: ignore[arg-type]

    return compute_loss, TWO_STAGE_PARTS


def _predict_two_stage(model: Any, images: torch.Tensor, lb_boxes: Sequence[Tuple[int, int, int, int]],
                       frame_sizes: Sequence[Tuple[int, int]], score_threshold: float, iou_threshold: float,
                       max_detections: int, mean: Sequence[float], std: Sequence[float]) -> List[Dict[str, np.ndarray]]:
    """:func:`predict_instances` for a Mask R-CNN: its detections mapped to each frame, the 28x28
    masks pasted at frame resolution by the C++ ``paste_masks`` (as the runtime does)."""
    from .. import ops

    dets = model.detect(normalize(images, mean, std), score_threshold=score_threshold, nms_iou=iou_threshold,
                        max_detections=max_detections)
    out = []
    for d, (top, left, rh, rw), (h, w) in zip(dets, lb_boxes, frame_sizes):
        b = d["boxes"].float().cpu().numpy()
        fb = np.empty((len(b), 4), np.float32)  # unclipped: the mask was predicted over the whole box
        fb[:, 0::2] = (b[:, 0::2] - left) * (w / rw)
        fb[:, 1::2] = (b[:, 1::2] - top) * (h / rh)
        masks = ops.paste_masks(np.ascontiguousarray(d["masks"].float().cpu().numpy()), fb, (h, w)).to_dense()
        fb[:, 0::2] = fb[:, 0::2].clip(0, w)
        fb[:, 1::2] = fb[:, 1::2].clip(0, h)
        out.append({"boxes": fb, "scores": d["scores"].float().cpu().numpy(),
                    "classes": d["labels"].cpu().numpy().astype(np.int64), "masks": masks.astype(bool)})
    return out


# ---------------------------------------------------------------------------------- training


def _make_meta(cfg: InstanceTrainConfig, model: torch.nn.Module, dataset: Any, extra: Dict[str, Any]) -> ModelMeta:
    palette = list(getattr(dataset, "palette", []) or [])
    head = (model.meta_extra() if _is_two_stage(model)
            else {"num_protos": int(model.num_protos), "strides": [int(s) for s in model.strides]})
    extra = {**head, "score_threshold": cfg.score_threshold, "iou_threshold": cfg.iou_threshold,
             "max_detections": cfg.max_detections, **extra}
    return ModelMeta(task="instance", classes=list(dataset.classes), input_size=cfg.input_size, arch=cfg.model,
                     mean=defaults.MEAN_RGB, std=defaults.STD_RGB, output_stride=int(model.output_stride),
                     output_names=list(model.output_names), palette=palette, extra=extra)


def train_instance(cfg: InstanceTrainConfig, on_epoch_end: Optional[Callable[[Dict[str, Any]], Any]] = None) -> Path:
    """Train an instance model as configured; returns the directory of the best checkpoint (by val
    mask AP50).

    Progress goes to stderr. With ``cfg.resume`` a run in ``cfg.out_dir`` continues after its last
    finished epoch. ``on_epoch_end(record)`` is called after each saved epoch; returning ``False``
    stops the run there (it can be resumed later).
    """
    cfg.validate()
    with single_cv2_thread():
        return _train(cfg, on_epoch_end)


def _train(cfg: InstanceTrainConfig, on_epoch_end: Optional[Callable[[Dict[str, Any]], Any]]) -> Path:
    from ..data import open_instance_dataset

    out = Path(cfg.out_dir)
    device, use_amp = setup_run(cfg)
    train_ds, val_ds, classes = open_datasets(open_instance_dataset, cfg)

    model = create_model(cfg.model, len(classes), **cfg.model_kwargs)
    if getattr(model, "task", None) != "instance":
        raise EdgesegError(f"model {cfg.model!r} is not an instance segmentation model; use e.g. yoloseg_n")
    model = prepare_model(model, cfg, classes, device)
    if _is_two_stage(model):
        compute_loss, parts_names = _two_stage_loss(model, cfg, use_amp)
    else:
        weights = LossWeights(**{k: float(v) for k, v in cfg.loss_weights.items()})
        loss_fn = InstanceLoss(len(classes), weights, cfg.tal_topk, cfg.tal_alpha, cfg.tal_beta,
                               proto_stride=int(model.output_stride))
        parts_names = PARTS

        def compute_loss(x: torch.Tensor, targets: Dict[str, torch.Tensor]) -> Tuple[torch.Tensor, Dict[str, Any]]:
            with torch.autocast(device.type, dtype=torch.float16, enabled=use_amp):
                outputs = model(x)
            return loss_fn(outputs, targets)
    optimizer = make_optimizer(model, cfg)
    scaler = torch.amp.GradScaler("cuda") if use_amp else None
    ema = ModelEMA(model, cfg.ema_decay, cfg.ema_tau) if cfg.ema else None

    tds = InstanceTrainDataset(train_ds, cfg.input_size, cfg.seed, cfg.scale_range, cfg.hflip, cfg.color_jitter,
                               mask_stride=int(getattr(model, "mask_target_stride", model.output_stride)))
    loader, gen, workers, iters = make_train_loader(tds, cfg, device, collate_fn=instance_collate)
    total_iters = cfg.epochs * iters

    def load_weights(state: Dict[str, Any]) -> None:  # raw model and EMA
        model.load_state_dict(state["model_state"])
        if ema is not None:
            if state.get("ema_state"):
                ema.module.load_state_dict(state["ema_state"])
                ema.updates = int(state.get("ema_updates", 0))
            else:
                ema.module.load_state_dict(state["model_state"])

    start_epoch, global_iter, best, history = (
        resume_run(out, cfg.model, optimizer, scaler, load_weights, "best_score", "mask AP50")
        if cfg.resume else (0, 0, -1.0, []))
    atomic_write_text(out / "train_config.json", json.dumps(cfg.to_dict(), indent=2) + "\n")
    coco_gt = None
    if _use_cocoeval(cfg.evaluator):  # the val ground truth, read once for the whole run
        from ..eval.coco import coco_gt_from_dataset

        coco_gt = coco_gt_from_dataset(val_ds, cfg.max_val_samples)
    log_run_start(cfg, model, len(classes), device, use_amp, len(train_ds), len(val_ds), iters, workers,
                  detail=f"input {cfg.input_size[0]}x{cfg.input_size[1]}, ")

    for epoch in range(start_epoch, cfg.epochs):
        t0 = time.perf_counter()
        bar = begin_epoch(epoch, cfg, tds, gen, model, iters)
        sums = torch.zeros(len(parts_names) + 1, dtype=torch.float64)
        n, lr = 0, cfg.lr
        for it, (x, targets) in enumerate(loader):
            if it >= iters:
                break
            lr = set_lr(optimizer, lr_at(global_iter, total_iters, cfg.lr, cfg.warmup_iters, cfg.schedule,
                                         cfg.min_lr_ratio, cfg.poly_power))
            x = normalize(x.to(device, non_blocking=True))
            targets = {k: v.to(device, non_blocking=True) for k, v in targets.items()}
            loss, parts = compute_loss(x, targets)
            vals = torch.stack([loss.detach()] + [parts[p] for p in parts_names]).double().cpu()
            if not bool(torch.isfinite(vals[0])):
                raise EdgesegError(f"loss became {float(vals[0])} at epoch {epoch + 1} iter {it + 1}; "
                                   f"lower the learning rate (lr={cfg.lr}) or check the annotations")
            optimizer_step(loss, optimizer, scaler, model, cfg.grad_clip)
            if ema is not None:
                ema.update(model)
            global_iter += 1
            sums += vals
            n += 1
            mean = (sums / n).tolist()
            bar.update(1, loss=mean[0], **{p: mean[i + 1] for i, p in enumerate(parts_names)}, lr=lr)
        bar.close()
        train_time = time.perf_counter() - t0
        mean = (sums / max(n, 1)).tolist()

        rec: Dict[str, Any] = {"epoch": epoch + 1, "train_loss": mean[0],
                               **{f"loss_{p}": mean[i + 1] for i, p in enumerate(parts_names)},
                               **speed_record(lr, n, train_time), "val_box_ap50": None, "val_mask_ap50": None}
        eval_model = ema.module if ema is not None else model
        if validates(epoch, cfg):
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
        best, improved = save_checkpoints(out, eval_model, meta, score, best, cfg.to_dict(),
                                          model_cfg=model.edgeseg_cfg)
        save_run_state(out, {"epoch": epoch, "global_iter": global_iter, "best_score": best, "model": cfg.model,
                             "model_state": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                             "ema_state": ({k: v.detach().cpu() for k, v in ema.module.state_dict().items()}
                                           if ema is not None else {}),
                             "ema_updates": ema.updates if ema is not None else 0,
                             "optimizer": optimizer.state_dict(),
                             "scaler": scaler.state_dict() if scaler is not None else {},
                             "torch_rng": torch.get_rng_state()}, history, plot_instance_history)
        msg = (f"epoch {epoch + 1}/{cfg.epochs}: loss {mean[0]:.4f} ("
               + ", ".join(f"{p} {mean[i + 1]:.3f}" for i, p in enumerate(parts_names)) + ")")
        if score is not None:
            msg += f", val mask AP50 {score:.4f}, box AP50 {rec['val_box_ap50']:.4f}"
            if rec["val_mask_ap"] is not None:
                msg += f", mask AP {rec['val_mask_ap']:.4f}, box AP {rec['val_box_ap']:.4f}"
            msg += " (best)" if improved else ""
        log(msg + f" [{rec['time_s']:.1f} s, {rec['it_per_s']} it/s]")
        if stop_requested(on_epoch_end, rec, epoch):
            break

    return out / "best"
