"""Semantic segmentation training: ``train(TrainConfig(...)) -> best checkpoint dir``.

The run is the shared loop (:mod:`.loop`, which lists what it writes into ``out_dir``) driven by
:class:`SemanticHooks`; ``history.json`` holds per epoch train_loss, val_miou, val_pixel_acc,
per-class IoU, lr and speed, and ``curve.png`` the loss and val mIoU vs epoch.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Subset

from .. import defaults
from ..errors import EdgesegError
from ..geometry import LetterboxInfo
from ..eval.confusion import ConfusionMatrix
from ..meta import ModelMeta
from ..models import create_model
from .common import RunConfig, open_datasets, worker_init
from .common import lr_at as _lr_at
from .common import STATE_FILE, default_workers, resolve_device, seed_everything  # noqa: F401 (this module's API)
from .dataset import EvalDataset, TrainDataset, eval_collate, normalize
from .hooks import TrainHooks
from .loop import run_training
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
    Under torchrun ``batch_size`` is per process and ``sync_bn`` turns BatchNorm into SyncBatchNorm
    on CUDA (CPU processes keep per-process BatchNorm).
    """

    model: str = "liteseg_t"
    lr: float = 4e-3
    warmup_iters: int = 100
    scale_range: Tuple[float, float] = (0.75, 1.5)
    out_dir: str = "runs/semantic"
    loss: str = "ce"
    class_weights: Optional[List[float]] = None
    crop_size: Optional[Tuple[int, int]] = None

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
def predict_labels(model: torch.nn.Module, images: torch.Tensor, letterboxes: Sequence[LetterboxInfo],
                   out_sizes: Sequence[Tuple[int, int]], mean: Sequence[float] = defaults.MEAN_RGB,
                   std: Sequence[float] = defaults.STD_RGB) -> List[np.ndarray]:
    """Labels for a batch of letterboxed RGB uint8 images (``letterboxes``: how each was placed),
    mapped back to ``out_sizes`` (each frame's size).

    Logits are upsampled bilinearly to the network input, the letterbox padding is cut off, the
    rest is resized bilinearly to the frame size, and the argmax is taken there.
    """
    x = normalize(images, mean, std)
    logits = model(x).float()
    logits = F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)
    out = []
    for i, (info, (h, w)) in enumerate(zip(letterboxes, out_sizes)):
        (top, left), (rh, rw) = (info.pad_top, info.pad_left), info.resized_hw
        lg = logits[i:i + 1, :, top:top + rh, left:left + rw]
        if (rh, rw) != (h, w):
            lg = F.interpolate(lg, size=(h, w), mode="bilinear", align_corners=False)
        out.append(lg.argmax(1)[0].to(torch.uint8 if lg.shape[1] <= 255 else torch.int32).cpu().numpy())
    return out


def _eval_setup(model: torch.nn.Module, dataset: Any, num_classes: Optional[int],
                device: Union[str, torch.device, None]) -> Tuple[torch.device, int]:
    if device is None:
        device = next(model.parameters()).device
    n_cls = int(num_classes or getattr(model, "num_classes", 0) or len(getattr(dataset, "classes", [])))
    if n_cls < 1:
        raise EdgesegError("evaluate: cannot tell the number of classes; pass num_classes=")
    return torch.device(device), n_cls


def confusion(model: torch.nn.Module, dataset: Any, input_size: Tuple[int, int], num_classes: int,
              batch_size: int = 8, device: Union[str, torch.device, None] = None, workers: int = 0,
              limit: Optional[int] = None, progress: bool = False, mean: Sequence[float] = defaults.MEAN_RGB,
              std: Sequence[float] = defaults.STD_RGB, ignore_index: int = defaults.IGNORE_INDEX,
              indices: Optional[Sequence[int]] = None) -> ConfusionMatrix:
    """The confusion matrix of ``model`` on the first ``limit`` samples of ``dataset`` (only those
    in ``indices`` when given), as :func:`evaluate` computes it. The model is left in eval mode."""
    device = torch.device(device) if device is not None else next(model.parameters()).device
    cm = ConfusionMatrix(num_classes, ignore_index)
    ds: Any = EvalDataset(dataset, tuple(input_size), limit)
    if indices is not None:
        ds = Subset(ds, list(indices))
    loader = DataLoader(ds, batch_size=batch_size, shuffle=False, num_workers=workers, collate_fn=eval_collate,
                        worker_init_fn=worker_init if workers else None)
    model.eval()
    bar = Progress(len(loader), "val", enabled=progress)
    for images, labels, infos in loader:
        preds = predict_labels(model, images.to(device), infos, [lb.shape[:2] for lb in labels], mean, std)
        for p, lb in zip(preds, labels):
            cm.update(p, lb)
        bar.update(1)
    bar.close()
    return cm


def summarize(cm: ConfusionMatrix, dataset: Any) -> Dict[str, Any]:
    """``{"miou", "pixel_acc", "per_class_iou": {class: iou|None}, "confusion": cm}``."""
    names = list(getattr(dataset, "classes", [])) or None
    out = cm.summary(names if names and len(names) == cm.num_classes else None)
    out["confusion"] = cm
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
    device, n_cls = _eval_setup(model, dataset, num_classes, device)
    cm = confusion(model, dataset, input_size, n_cls, batch_size, device, workers, limit, progress, mean, std,
                   ignore_index)
    return summarize(cm, dataset)


# ---------------------------------------------------------------------------------- training


class _SemanticStep(torch.nn.Module):
    """Forward (under autocast with AMP) and loss of a semantic model: ``(loss, {})``."""

    def __init__(self, model: torch.nn.Module, loss_fn: torch.nn.Module, use_amp: bool) -> None:
        super().__init__()
        self.model, self.loss_fn, self.use_amp = model, loss_fn, use_amp

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        with torch.autocast(x.device.type, dtype=torch.float16, enabled=self.use_amp):
            logits = self.model(x)
        return self.loss_fn(logits.float(), y), {}


class SemanticHooks(TrainHooks):
    """Training hooks of semantic models: pixel losses, crops, mIoU validation."""

    best_key = "val_miou"
    best_name = "mIoU"

    def open_datasets(self) -> Tuple[Any, Any, List[str]]:
        from ..data import open_dataset

        train_ds, val_ds, classes = open_datasets(open_dataset, self.cfg)
        cw = self.cfg.class_weights
        if cw is not None and len(cw) != len(classes):
            raise EdgesegError(f"class_weights has {len(cw)} entries for {len(classes)} classes "
                               f"{classes}; give one weight per class")
        return train_ds, val_ds, classes

    def build_model(self, classes: List[str]) -> torch.nn.Module:
        return create_model(self.cfg.model, len(classes), **self.cfg.model_kwargs)

    def train_dataset(self, train_ds: Any, model: torch.nn.Module) -> Tuple[Any, Any]:
        cfg = self.cfg
        return TrainDataset(train_ds, cfg.crop_size or cfg.input_size, cfg.seed, scale_range=cfg.scale_range,
                            hflip=cfg.hflip, color_jitter=cfg.color_jitter), None

    def train_step(self, model: torch.nn.Module, classes: List[str], use_amp: bool) -> torch.nn.Module:
        return _SemanticStep(model, build_loss(self.cfg.loss, self.cfg.class_weights), use_amp)

    def lr_at(self, it: int, total: int) -> float:
        return lr_at(it, total, self.cfg.lr, self.cfg.warmup_iters, self.cfg.poly_power)

    def val_fields(self) -> Dict[str, Any]:
        return {"val_miou": None, "val_pixel_acc": None}

    def validate_shard(self, model: torch.nn.Module, val_ds: Any, device: torch.device, workers: int,
                       indices: Sequence[int]) -> np.ndarray:
        cfg = self.cfg
        return confusion(model, val_ds, cfg.input_size, len(val_ds.classes), cfg.val_batch_size, device, workers,
                         cfg.max_val_samples, indices=indices).matrix

    def finish_validation(self, partials: Sequence[np.ndarray], val_ds: Any) -> Dict[str, Any]:
        cm = ConfusionMatrix(len(val_ds.classes))
        cm.matrix = np.sum(partials, axis=0, dtype=np.int64)
        res = summarize(cm, val_ds)
        return {"val_miou": res["miou"], "val_pixel_acc": res["pixel_acc"], "val_per_class_iou": res["per_class_iou"]}

    def meta(self, model: torch.nn.Module, train_ds: Any, rec: Dict[str, Any]) -> ModelMeta:
        cfg = self.cfg
        extra = {"epoch": rec["epoch"], "val_miou": rec["val_miou"], "val_pixel_acc": rec["val_pixel_acc"],
                 "dataset": cfg.data}
        return ModelMeta(task="semantic", classes=list(train_ds.classes), input_size=cfg.input_size,
                         arch=cfg.model, mean=defaults.MEAN_RGB, std=defaults.STD_RGB,
                         output_stride=int(model.output_stride), palette=list(getattr(train_ds, "palette", []) or []),
                         extra=extra)

    def epoch_message(self, rec: Dict[str, Any], improved: bool) -> str:
        msg = super().epoch_message(rec, improved)
        if rec["val_miou"] is not None:
            msg += f", val mIoU {rec['val_miou']:.4f}, pixel acc {rec['val_pixel_acc']:.4f}{' (best)' if improved else ''}"
        return msg

    def plot(self, history: Sequence[dict], path: Path) -> Any:
        return plot_history(history, path)


def train(cfg: TrainConfig, on_epoch_end: Optional[Callable[[Dict[str, Any]], Any]] = None) -> Path:
    """Train a semantic model as configured; returns the directory of the best checkpoint.

    Progress goes to stderr. With ``cfg.resume`` a run in ``cfg.out_dir`` continues after its last
    finished epoch (model, optimizer, schedule, best score and history are restored).
    ``on_epoch_end(record)`` is called after each epoch is saved with its history record; returning
    ``False`` stops the run there (it can be resumed later). Under torchrun every process calls
    this; rank 0 writes the files and calls ``on_epoch_end``.
    """
    return run_training(cfg, SemanticHooks, on_epoch_end)
