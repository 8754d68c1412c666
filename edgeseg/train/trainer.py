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

import dataclasses
import json
import math
import os
import random
import sys
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
from ..models.checkpoint import load_checkpoint, save_checkpoint
from .dataset import EvalDataset, TrainDataset, eval_collate, normalize
from .losses import build_loss, parse_loss_spec
from .metrics import ConfusionMatrix
from .plotting import plot_history
from .._io import atomic_path
from .._progress import Progress

STATE_FILE = "train_state.pt"


@dataclass
class TrainConfig:
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

    def __post_init__(self) -> None:
        if isinstance(self.input_size, int):
            self.input_size = (self.input_size, self.input_size)
        self.input_size = tuple(int(v) for v in self.input_size)  # type: ignore[assignment]
        if isinstance(self.crop_size, int):
            self.crop_size = (self.crop_size, self.crop_size)
        if self.crop_size is not None:
            self.crop_size = tuple(int(v) for v in self.crop_size)  # type: ignore[assignment]
        self.scale_range = tuple(float(v) for v in self.scale_range)  # type: ignore[assignment]
        self.out_dir = str(self.out_dir)

    def validate(self) -> None:
        """Raise :class:`EdgesegError` naming the first bad field."""
        def bad(msg: str) -> None:
            raise EdgesegError(f"training config: {msg}")

        if not is_model(self.model):
            bad(f"unknown model {self.model!r}; valid names: {', '.join(list_models())}")
        if model_task(self.model) != "semantic":
            bad(f"{self.model!r} is a {model_task(self.model)} model; semantic models: "
                f"{', '.join(list_models(task='semantic'))} (or train with --task {model_task(self.model)})")
        for name in ("epochs", "batch_size", "val_every", "val_batch_size"):
            if int(getattr(self, name)) < 1:
                bad(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.lr > 0:
            bad(f"lr must be > 0, got {self.lr}")
        if self.optimizer not in ("adamw", "sgd"):
            bad(f"optimizer must be 'adamw' or 'sgd', got {self.optimizer!r}")
        if len(self.input_size) != 2 or min(self.input_size) < 8:
            bad(f"input_size must be (h, w) with both >= 8, got {self.input_size}")
        if (self.workers is not None and self.workers < 0) or self.warmup_iters < 0:
            bad("workers and warmup_iters must be >= 0")
        if self.max_iters_per_epoch is not None and self.max_iters_per_epoch < 1:
            bad(f"max_iters_per_epoch must be >= 1, got {self.max_iters_per_epoch}")
        if self.device not in ("auto", "cpu") and not self.device.startswith("cuda"):
            bad(f"device must be 'auto', 'cpu' or 'cuda[:N]', got {self.device!r}")
        parse_loss_spec(self.loss)
        if self.init_from is not None and self.resume:
            bad("init_from and resume exclude each other: resume continues a run, init_from starts a new one "
                "from another model's weights")

    def to_dict(self) -> Dict[str, Any]:
        d = dataclasses.asdict(self)
        d["input_size"] = list(self.input_size)
        d["scale_range"] = list(self.scale_range)
        return d

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise EdgesegError(f"training config: unknown field(s) {unknown}; known: {sorted(known)}")
        return cls(**d)


# ----------------------------------------------------------------------------------- helpers


def resolve_device(name: str = "auto") -> torch.device:
    """``"auto"`` -> cuda if available else cpu."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise EdgesegError(f"device {name!r} requested but CUDA is not available; use device='cpu'")
    return torch.device(name)


def _available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def default_workers() -> int:
    """Data-loading processes for this machine: 0 up to 2 cores (measured faster: the workers
    steal the cores torch computes on), else ``min(4, cpus - 2)``."""
    cpus = _available_cpus()
    return 0 if cpus <= 2 else min(4, cpus - 2)


def _worker_init(_: int) -> None:
    # OpenCV's own thread pool fights torch's OpenMP threads; workers are single-threaded anyway
    import cv2

    cv2.setNumThreads(1)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def lr_at(it: int, total: int, base_lr: float, warmup: int, power: float) -> float:
    """Linear warmup to ``base_lr`` over ``warmup`` iterations, then poly decay to 0 at ``total``."""
    if warmup > 0 and it < warmup:
        return base_lr * (it + 1) / warmup
    span = max(1, total - warmup)
    t = min(1.0, (it - warmup) / span)
    return base_lr * (1.0 - t) ** power


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW or SGD; no weight decay on norm weights and biases (1-D parameters)."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 else decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=True)
    return torch.optim.AdamW(groups, lr=cfg.lr)


def _atomic_write_text(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def _atomic_torch_save(obj: Any, path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


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
                        worker_init_fn=_worker_init if workers else None)
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


def _load_resume(out: Path, cfg: TrainConfig, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                 scaler: Any, device: torch.device) -> Optional[Dict[str, Any]]:
    state_path, last = out / STATE_FILE, out / "last"
    if not state_path.is_file() or not last.is_dir():
        _log(f"resume: nothing to resume in {out} (no {STATE_FILE} / last/); starting from scratch")
        return None
    state = torch.load(state_path, map_location="cpu", weights_only=True)
    if state.get("model") != cfg.model:
        raise EdgesegError(f"resume: {out} holds a {state.get('model')!r} run but the config asks for "
                           f"{cfg.model!r}; use another out_dir or the same model")
    last_model, _, _ = load_checkpoint(last)
    model.load_state_dict(last_model.state_dict())
    optimizer.load_state_dict(state["optimizer"])
    if scaler is not None and state.get("scaler"):
        scaler.load_state_dict(state["scaler"])
    torch.set_rng_state(state["torch_rng"])
    hist_path = out / "history.json"
    state["history"] = json.loads(hist_path.read_text()) if hist_path.is_file() else []
    return state


def _init_weights(model: torch.nn.Module, path: str, name: str, classes: List[str]) -> None:
    """Start from the weights of checkpoint ``path`` (fine-tuning); same model and classes required."""
    from ..models.checkpoint import load_checkpoint

    src, meta, ccfg = load_checkpoint(path)
    if ccfg["model"]["name"] != name:
        raise EdgesegError(f"init_from: {path} holds a {ccfg['model']['name']!r} model but the config trains "
                           f"{name!r}; use --model {ccfg['model']['name']} or another checkpoint")
    if list(meta.classes) != list(classes):
        raise EdgesegError(f"init_from: {path} was trained for classes {list(meta.classes)} but the data has "
                           f"{list(classes)}; fine-tune from a checkpoint with the same classes")
    model.load_state_dict(src.state_dict(), strict=True)
    _log(f"init: weights from {path}")


def train(cfg: TrainConfig, on_epoch_end: Optional[Callable[[Dict[str, Any]], Any]] = None) -> Path:
    """Train a semantic model as configured; returns the directory of the best checkpoint.

    Progress goes to stderr. With ``cfg.resume`` a run in ``cfg.out_dir`` continues after its last
    finished epoch (model, optimizer, schedule, best score and history are restored).
    ``on_epoch_end(record)`` is called after each epoch is saved with its history record; returning
    ``False`` stops the run there (it can be resumed later).
    """
    import cv2

    cfg.validate()
    cv2_threads = cv2.getNumThreads()
    cv2.setNumThreads(1)  # OpenCV's pool next to torch's OpenMP threads slows both down a lot
    try:
        return _train(cfg, on_epoch_end)
    finally:
        cv2.setNumThreads(cv2_threads)


def _train(cfg: TrainConfig, on_epoch_end: Optional[Callable[[Dict[str, Any]], Any]]) -> Path:
    from ..data import open_dataset

    out = Path(cfg.out_dir)
    seed_everything(cfg.seed)
    device = resolve_device(cfg.device)
    use_amp = device.type == "cuda" and cfg.amp is not False
    torch.set_num_threads(int(cfg.num_threads or _available_cpus()))
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True

    train_ds = open_dataset(cfg.data, "train", **cfg.data_kwargs)
    val_ds = open_dataset(cfg.val_data or cfg.data, "val", **cfg.data_kwargs)
    if len(train_ds) == 0:
        raise EdgesegError(f"training dataset {cfg.data!r} is empty")
    classes = list(train_ds.classes)
    if list(val_ds.classes) != classes:
        raise EdgesegError(f"train and val datasets have different classes: {classes} vs {list(val_ds.classes)}")
    if cfg.class_weights is not None and len(cfg.class_weights) != len(classes):
        raise EdgesegError(f"class_weights has {len(cfg.class_weights)} entries for {len(classes)} classes "
                           f"{classes}; give one weight per class")

    model = create_model(cfg.model, len(classes), **cfg.model_kwargs)
    if cfg.init_from is not None:
        _init_weights(model, cfg.init_from, cfg.model, classes)
    model = model.to(device)
    out.mkdir(parents=True, exist_ok=True)  # only once data and model are known to be good
    loss_fn = build_loss(cfg.loss, cfg.class_weights).to(device)
    optimizer = make_optimizer(model, cfg)
    scaler = torch.amp.GradScaler("cuda") if use_amp else None

    tds = TrainDataset(train_ds, cfg.crop_size or cfg.input_size, cfg.seed, scale_range=cfg.scale_range, hflip=cfg.hflip,
                       color_jitter=cfg.color_jitter)
    gen = torch.Generator()
    drop_last = len(tds) >= cfg.batch_size
    workers = default_workers() if cfg.workers is None else cfg.workers
    loader = DataLoader(tds, batch_size=cfg.batch_size, shuffle=True, drop_last=drop_last,
                        num_workers=workers, generator=gen, pin_memory=device.type == "cuda",
                        worker_init_fn=_worker_init if workers else None)
    iters = len(loader) if cfg.max_iters_per_epoch is None else min(len(loader), cfg.max_iters_per_epoch)
    total_iters = cfg.epochs * iters

    start_epoch, global_iter, best_miou, history = 0, 0, -1.0, []
    if cfg.resume:
        state = _load_resume(out, cfg, model, optimizer, scaler, device)
        if state is not None:
            start_epoch, global_iter = int(state["epoch"]) + 1, int(state["global_iter"])
            best_miou, history = float(state["best_miou"]), state["history"][:start_epoch]
            _log(f"resume: continuing {out} after epoch {start_epoch} (best mIoU {best_miou:.4f})")
    _atomic_write_text(out / "train_config.json", json.dumps(cfg.to_dict(), indent=2) + "\n")

    n_params = sum(p.numel() for p in model.parameters())
    _log(f"train: {cfg.model} ({n_params / 1e6:.2f} M params, {len(classes)} classes) on {device}"
         f"{' +AMP' if use_amp else ''}; {len(train_ds)} train / {len(val_ds)} val samples; "
         f"{cfg.epochs} epochs x {iters} iters, batch {cfg.batch_size}, {torch.get_num_threads()} threads, "
         f"{workers} data workers")

    for epoch in range(start_epoch, cfg.epochs):
        t0 = time.perf_counter()
        tds.set_epoch(epoch)
        gen.manual_seed(cfg.seed * 100_003 + epoch)
        model.train()
        bar = Progress(iters, f"epoch {epoch + 1}/{cfg.epochs}", enabled=cfg.progress)
        loss_sum, n = 0.0, 0
        lr = cfg.lr
        for it, (x, y) in enumerate(loader):
            if it >= iters:
                break
            lr = lr_at(global_iter, total_iters, cfg.lr, cfg.warmup_iters, cfg.poly_power)
            for g in optimizer.param_groups:
                g["lr"] = lr
            x = normalize(x.to(device, non_blocking=True))
            y = y.to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=torch.float16, enabled=use_amp):
                logits = model(x)
            loss = loss_fn(logits.float(), y)
            if not torch.isfinite(loss):
                raise EdgesegError(f"loss became {loss.item()} at epoch {epoch + 1} iter {it + 1}; "
                                   f"lower the learning rate (lr={cfg.lr}) or check the labels")
            optimizer.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
            else:
                loss.backward()
                optimizer.step()
            global_iter += 1
            loss_sum += float(loss.detach())
            n += 1
            bar.update(1, loss=loss_sum / n, lr=lr)
        bar.close()
        train_time = time.perf_counter() - t0

        rec: Dict[str, Any] = {"epoch": epoch + 1, "train_loss": loss_sum / max(n, 1), "lr": lr,
                               "iters": n, "train_time_s": round(train_time, 2),
                               "it_per_s": round(n / train_time, 3) if train_time > 0 else None,
                               "val_miou": None, "val_pixel_acc": None}
        if (epoch + 1) % cfg.val_every == 0 or epoch + 1 == cfg.epochs:
            res = evaluate(model, val_ds, cfg.input_size, len(classes), cfg.val_batch_size, device,
                           workers, cfg.max_val_samples)
            rec.update(val_miou=res["miou"], val_pixel_acc=res["pixel_acc"], val_per_class_iou=res["per_class_iou"])
        rec["time_s"] = round(time.perf_counter() - t0, 2)
        history.append(rec)

        extra = {"epoch": epoch + 1, "val_miou": rec["val_miou"], "val_pixel_acc": rec["val_pixel_acc"],
                 "dataset": cfg.data}
        meta = _make_meta(cfg, model, train_ds, extra)
        save_checkpoint(out / "last", model, meta, extra={"train": cfg.to_dict()})
        miou = rec["val_miou"]
        improved = miou is not None and not math.isnan(miou) and miou > best_miou
        if improved or not (out / "best").is_dir():
            best_miou = max(best_miou, miou if miou is not None and not math.isnan(miou) else -1.0)
            save_checkpoint(out / "best", model, meta, extra={"train": cfg.to_dict()})
        _atomic_torch_save({"epoch": epoch, "global_iter": global_iter, "best_miou": best_miou,
                            "model": cfg.model, "optimizer": optimizer.state_dict(),
                            "scaler": scaler.state_dict() if scaler is not None else {},
                            "torch_rng": torch.get_rng_state()}, out / STATE_FILE)
        _atomic_write_text(out / "history.json", json.dumps(history, indent=2) + "\n")
        plot_history(history, out / "curve.png")
        msg = f"epoch {epoch + 1}/{cfg.epochs}: loss {rec['train_loss']:.4f}"
        if miou is not None:
            msg += f", val mIoU {miou:.4f}, pixel acc {rec['val_pixel_acc']:.4f}{' (best)' if improved else ''}"
        _log(msg + f" [{rec['time_s']:.1f} s]")
        if on_epoch_end is not None and on_epoch_end(dict(rec)) is False:
            _log(f"stopped after epoch {epoch + 1}; continue with resume=True")
            break

    return out / "best"
