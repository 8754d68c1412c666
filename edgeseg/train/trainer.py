"""Semantic segmentation training: ``train(TrainConfig(...)) -> best checkpoint dir``.

Writes into ``out_dir``::

    best/  last/          checkpoints (model.safetensors + config.json, see models.checkpoint)
    train_state.pt        optimizer / scaler / epoch / best mIoU for --resume (tensors only;
                          read with torch.load(weights_only=True))
    train_config.json     the TrainConfig of the run
    history.json          per epoch: train_loss, val_miou, val_pixel_acc, lr, time
    curve.png             loss and val mIoU vs epoch
"""
from __future__ import annotations

import json
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
from ..eval.confusion import ConfusionMatrix
from ..meta import ModelMeta
from ..models import create_model
from ..models.checkpoint import load_checkpoint
from .common import (RunConfig, atomic_write_text, begin_epoch, log, log_run_start, make_optimizer, make_train_loader,
                     open_datasets, optimizer_step, prepare_model, resume_run, save_checkpoints, save_run_state,
                     set_lr, setup_run, single_cv2_thread, speed_record, stop_requested, validates, worker_init)
from .common import lr_at as _lr_at
from .common import STATE_FILE, default_workers, resolve_device, seed_everything  # noqa: F401 (this module's API)
from .dataset import EvalDataset, TrainDataset, eval_collate, normalize
from .losses import build_loss, parse_loss_spec
from .plotting import plot_history
from .._progress import Progress


@dataclass
class TrainConfig(RunConfig):
    """Everything a training run needs. Defaults train the shipped tiny model on synthetic data.

    ``data``/``val_data`` are dataset specs for :func:`edgeseg.data.open_dataset` (val defaults to
    the ``"val"`` split of ``data``; ``data_kwargs`` go to both, e.g. ``{"size": 64}`` for synthetic). The learning rate warms up linearly for ``warmup_iters`` and
    then decays as ``(1 - t)^poly_power``. ``device="auto"`` picks CUDA when available (with AMP
    unless ``amp=False``). ``crop_size`` (default: ``input_size``) is the training crop: crops smaller
    than the deployed input, at the deployed scale, train several times faster per pass over the
    pixels. ``max_iters_per_epoch`` caps an epoch (quick runs, huge datasets).
    ``workers=None`` picks the data-loading process count from the core count (see default_workers).
    """

    model: str = "liteseg_t"
    model_kwargs: Dict[str, Any] = field(default_factory=dict)
    data: str = "synthetic"
    val_data: Optional[str] = None
    data_kwargs: Dict[str, Any] = field(default_factory=dict)
    epochs: int = 30
    batch_size: int = 8
    lr: float = 4e-3
    optimizer: str = "adamw"
    weight_decay: float = 1e-2
    momentum: float = 0.9
    warmup_iters: int = 100
    poly_power: float = 0.9
    loss: str = "ce"
    class_weights: Optional[List[float]] = None
    input_size: Tuple[int, int] = defaults.SEMANTIC_INPUT_SIZE
    crop_size: Optional[Tuple[int, int]] = None
    scale_range: Tuple[float, float] = (0.75, 1.5)
    hflip: bool = True
    color_jitter: float = 0.25
    workers: Optional[int] = None
    seed: int = 0
    out_dir: str = "runs/semantic"
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

    _name = "training config"
    _task = "semantic"

    def __post_init__(self) -> None:
        self._normalize()
        if isinstance(self.crop_size, int):
            self.crop_size = (self.crop_size, self.crop_size)
        if self.crop_size is not None:
            self.crop_size = tuple(int(v) for v in self.crop_size)  # type: ignore[assignment]

    def validate(self) -> None:
        """Raise :class:`EdgesegError` naming the first bad field."""
        self._check_model_and_optimizer()
        if len(self.input_size) != 2 or min(self.input_size) < 8:
            self._bad(f"input_size must be (h, w) with both >= 8, got {self.input_size}")
        self._check_loop()
        parse_loss_spec(self.loss)
        self._check_start()


# ----------------------------------------------------------------------------------- helpers


def lr_at(it: int, total: int, base_lr: float, warmup: int, power: float) -> float:
    """Linear warmup to ``base_lr`` over ``warmup`` iterations, then poly decay to 0 at ``total``."""
    return _lr_at(it, total, base_lr, warmup, "poly", power=power)


# -------------------------------------------------------------------------------- evaluation


@torch.no_grad()
def predict_labels(model: torch.nn.Module, images: torch.Tensor, boxes: Sequence[Tuple[int, int, int, int]],
                   out_sizes: Sequence[Tuple[int, int]], mean: Sequence[float] = defaults.MEAN_RGB,
                   std: Sequence[float] = defaults.STD_RGB) -> List[np.ndarray]:
    """Labels for a batch of letterboxed RGB uint8 images, mapped back to each frame's size.

    Logits are upsampled bilinearly to the network input, the letterbox padding is cut off, the
    rest is resized bilinearly to the frame size, and the argmax is taken there.
    """
    x = normalize(images, mean, std)
    logits = model(x).float()
    logits = F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)
    out = []
    for i, ((top, left, rh, rw), (h, w)) in enumerate(zip(boxes, out_sizes)):
        lg = logits[i:i + 1, :, top:top + rh, left:left + rw]
        if (rh, rw) != (h, w):
            lg = F.interpolate(lg, size=(h, w), mode="bilinear", align_corners=False)
        out.append(lg.argmax(1)[0].to(torch.uint8 if lg.shape[1] <= 255 else torch.int32).cpu().numpy())
    return out


def evaluate(model: torch.nn.Module, dataset: Any, input_size: Tuple[int, int] = defaults.SEMANTIC_INPUT_SIZE,
             num_classes: Optional[int] = None, batch_size: int = 8, device: Union[str, torch.device, None] = None,
             workers: int = 0, limit: Optional[int] = None, progress: bool = False,
             mean: Sequence[float] = defaults.MEAN_RGB, std: Sequence[float] = defaults.STD_RGB,
             ignore_index: int = defaults.IGNORE_INDEX) -> Dict[str, Any]:
    """Evaluate ``model`` on a numpy dataset (``(BGR image, label)`` items) as deployed.

    Each image is letterboxed to ``input_size``; predictions are the argmax of logits upsampled to
    the label size. Returns ``{"miou", "pixel_acc", "per_class_iou": {class: iou|None},
    "confusion": ConfusionMatrix}``. The model is left in eval mode.
    """
    if device is None:
        device = next(model.parameters()).device
    device = torch.device(device)
    n_cls = int(num_classes or getattr(model, "num_classes", 0) or len(getattr(dataset, "classes", [])))
    if n_cls < 1:
        raise EdgesegError("evaluate: cannot tell the number of classes; pass num_classes=")
    cm = ConfusionMatrix(n_cls, ignore_index)
    ds = EvalDataset(dataset, tuple(input_size), limit)
    loader = DataLoader(ds, batch_size=batch_size, shuffle=False, num_workers=workers, collate_fn=eval_collate,
                        worker_init_fn=worker_init if workers else None)
    model.eval()
    bar = Progress(len(loader), "val", enabled=progress)
    for images, labels, boxes in loader:
        preds = predict_labels(model, images.to(device), boxes, [lb.shape[:2] for lb in labels], mean, std)
        for p, lb in zip(preds, labels):
            cm.update(p, lb)
        bar.update(1)
    bar.close()
    names = list(getattr(dataset, "classes", [])) or None
    out = cm.summary(names if names and len(names) == n_cls else None)
    out["confusion"] = cm
    return out


# ---------------------------------------------------------------------------------- training


def _make_meta(cfg: TrainConfig, model: torch.nn.Module, dataset: Any, extra: Dict[str, Any]) -> ModelMeta:
    palette = list(getattr(dataset, "palette", []) or [])
    return ModelMeta(task="semantic", classes=list(dataset.classes), input_size=cfg.input_size,
                     arch=cfg.model, mean=defaults.MEAN_RGB, std=defaults.STD_RGB,
                     output_stride=int(model.output_stride), palette=palette, extra=extra)


def train(cfg: TrainConfig, on_epoch_end: Optional[Callable[[Dict[str, Any]], Any]] = None) -> Path:
    """Train a semantic model as configured; returns the directory of the best checkpoint.

    Progress goes to stderr. With ``cfg.resume`` a run in ``cfg.out_dir`` continues after its last
    finished epoch (model, optimizer, schedule, best score and history are restored).
    ``on_epoch_end(record)`` is called after each epoch is saved with its history record; returning
    ``False`` stops the run there (it can be resumed later).
    """
    cfg.validate()
    with single_cv2_thread():
        return _train(cfg, on_epoch_end)


def _train(cfg: TrainConfig, on_epoch_end: Optional[Callable[[Dict[str, Any]], Any]]) -> Path:
    from ..data import open_dataset

    out = Path(cfg.out_dir)
    device, use_amp = setup_run(cfg)
    train_ds, val_ds, classes = open_datasets(open_dataset, cfg)
    if cfg.class_weights is not None and len(cfg.class_weights) != len(classes):
        raise EdgesegError(f"class_weights has {len(cfg.class_weights)} entries for {len(classes)} classes "
                           f"{classes}; give one weight per class")

    model = prepare_model(create_model(cfg.model, len(classes), **cfg.model_kwargs), cfg, classes, device)
    loss_fn = build_loss(cfg.loss, cfg.class_weights).to(device)
    optimizer = make_optimizer(model, cfg)
    scaler = torch.amp.GradScaler("cuda") if use_amp else None

    tds = TrainDataset(train_ds, cfg.crop_size or cfg.input_size, cfg.seed, scale_range=cfg.scale_range, hflip=cfg.hflip,
                       color_jitter=cfg.color_jitter)
    loader, gen, workers, iters = make_train_loader(tds, cfg, device)
    total_iters = cfg.epochs * iters

    def load_last(state: Dict[str, Any]) -> None:  # the weights of the last saved epoch
        model.load_state_dict(load_checkpoint(out / "last")[0].state_dict())

    start_epoch, global_iter, best_miou, history = (
        resume_run(out, cfg.model, optimizer, scaler, load_last, "best_miou", "mIoU", need_last=True)
        if cfg.resume else (0, 0, -1.0, []))
    atomic_write_text(out / "train_config.json", json.dumps(cfg.to_dict(), indent=2) + "\n")
    log_run_start(cfg, model, len(classes), device, use_amp, len(train_ds), len(val_ds), iters, workers)

    for epoch in range(start_epoch, cfg.epochs):
        t0 = time.perf_counter()
        bar = begin_epoch(epoch, cfg, tds, gen, model, iters)
        loss_sum, n = 0.0, 0
        lr = cfg.lr
        for it, (x, y) in enumerate(loader):
            if it >= iters:
                break
            lr = set_lr(optimizer, lr_at(global_iter, total_iters, cfg.lr, cfg.warmup_iters, cfg.poly_power))
            x = normalize(x.to(device, non_blocking=True))
            y = y.to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=torch.float16, enabled=use_amp):
                logits = model(x)
            loss = loss_fn(logits.float(), y)
            if not torch.isfinite(loss):
                raise EdgesegError(f"loss became {loss.item()} at epoch {epoch + 1} iter {it + 1}; "
                                   f"lower the learning rate (lr={cfg.lr}) or check the labels")
            optimizer_step(loss, optimizer, scaler, model)
            global_iter += 1
            loss_sum += float(loss.detach())
            n += 1
            bar.update(1, loss=loss_sum / n, lr=lr)
        bar.close()
        train_time = time.perf_counter() - t0

        rec: Dict[str, Any] = {"epoch": epoch + 1, "train_loss": loss_sum / max(n, 1),
                               **speed_record(lr, n, train_time), "val_miou": None, "val_pixel_acc": None}
        if validates(epoch, cfg):
            res = evaluate(model, val_ds, cfg.input_size, len(classes), cfg.val_batch_size, device,
                           workers, cfg.max_val_samples)
            rec.update(val_miou=res["miou"], val_pixel_acc=res["pixel_acc"], val_per_class_iou=res["per_class_iou"])
        rec["time_s"] = round(time.perf_counter() - t0, 2)
        history.append(rec)

        extra = {"epoch": epoch + 1, "val_miou": rec["val_miou"], "val_pixel_acc": rec["val_pixel_acc"],
                 "dataset": cfg.data}
        meta = _make_meta(cfg, model, train_ds, extra)
        miou = rec["val_miou"]
        best_miou, improved = save_checkpoints(out, model, meta, miou, best_miou, cfg.to_dict())
        save_run_state(out, {"epoch": epoch, "global_iter": global_iter, "best_miou": best_miou,
                             "model": cfg.model, "optimizer": optimizer.state_dict(),
                             "scaler": scaler.state_dict() if scaler is not None else {},
                             "torch_rng": torch.get_rng_state()}, history, plot_history)
        msg = f"epoch {epoch + 1}/{cfg.epochs}: loss {rec['train_loss']:.4f}"
        if miou is not None:
            msg += f", val mIoU {miou:.4f}, pixel acc {rec['val_pixel_acc']:.4f}{' (best)' if improved else ''}"
        log(msg + f" [{rec['time_s']:.1f} s]")
        if stop_requested(on_epoch_end, rec, epoch):
            break

    return out / "best"
