"""Building blocks of the training loop (:mod:`.loop`) shared by every model kind.

Config checks, thread and device setup, datasets, the learning-rate schedule, fine-tuning and
resume loading, the optimizer step, and the per-epoch checkpoints, ``train_state.pt``
(:data:`STATE_FILE`), ``history.json`` and curve.
"""
from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass, field
import json
import math
import os
import random
import sys
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, NoReturn, Optional, Sequence, Tuple, Type, TypeVar

import numpy as np
import torch

from .. import defaults
from ..errors import EdgesegError
from ..meta import ModelMeta
from ..models import is_model, list_models, model_task
from ..models.checkpoint import load_checkpoint, save_checkpoint
from .._io import atomic_path

#: Optimizer / scaler / epoch / best score of a run, for resume (tensors only; read with weights_only=True).
STATE_FILE = "train_state.pt"

EpochCallback = Callable[[Dict[str, Any]], Any]
C = TypeVar("C", bound="RunConfig")


# ----------------------------------------------------------------------------------- config


@dataclass
class RunConfig:
    """What the trainers' config dataclasses share: the fields of every run (model, data,
    optimisation, augmentation, the loop, validation), normalising, the checks of those fields,
    and (de)serialisation. Subclasses are dataclasses that add their kind's fields, redeclare
    ``model``, ``lr``, ``warmup_iters``, ``scale_range`` and ``out_dir`` with their own defaults,
    and set ``_name`` (the error-message prefix) and ``_task`` (the model task they train).
    """

    model: str = ""
    model_kwargs: Dict[str, Any] = field(default_factory=dict)
    data: str = "synthetic"
    val_data: Optional[str] = None
    data_kwargs: Dict[str, Any] = field(default_factory=dict)
    epochs: int = 30
    batch_size: int = 8
    lr: float = 1e-3
    optimizer: str = "adamw"
    weight_decay: float = 1e-2
    momentum: float = 0.9
    warmup_iters: int = 100
    poly_power: float = 0.9
    input_size: Tuple[int, int] = defaults.SEMANTIC_INPUT_SIZE
    scale_range: Tuple[float, float] = (0.75, 1.5)
    hflip: bool = True
    color_jitter: float = 0.25
    workers: Optional[int] = None
    seed: int = 0
    out_dir: str = "runs"
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
    sync_bn: bool = True

    _name = "training config"
    _task = "semantic"

    def _normalize(self) -> None:
        """For ``__post_init__``: sizes as int tuples, ``scale_range`` as floats, ``out_dir`` as str."""
        if isinstance(self.input_size, int):
            self.input_size = (self.input_size, self.input_size)
        self.input_size = tuple(int(v) for v in self.input_size)
        self.scale_range = tuple(float(v) for v in self.scale_range)
        self.out_dir = str(self.out_dir)

    def _bad(self, msg: str) -> NoReturn:
        raise EdgesegError(f"{self._name}: {msg}")

    def _check_model_and_optimizer(self, positive: Sequence[str] = ()) -> None:
        """The model is registered for ``_task``; epochs, batch sizes, val_every and ``positive``
        are >= 1; lr > 0; a known optimizer."""
        if not is_model(self.model):
            self._bad(f"unknown model {self.model!r}; valid names: {', '.join(list_models())}")
        if model_task(self.model) != self._task:
            self._bad(f"{self.model!r} is a {model_task(self.model)} model; {self._task} models: "
                      f"{', '.join(list_models(task=self._task))} (or train with --task {model_task(self.model)})")
        for name in ("epochs", "batch_size", "val_every", "val_batch_size", *positive):
            if int(getattr(self, name)) < 1:
                self._bad(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.lr > 0:
            self._bad(f"lr must be > 0, got {self.lr}")
        if self.optimizer not in ("adamw", "sgd"):
            self._bad(f"optimizer must be 'adamw' or 'sgd', got {self.optimizer!r}")

    def _check_loop(self) -> None:
        """workers, warmup_iters, num_threads, max_iters_per_epoch and device."""
        if (self.workers is not None and self.workers < 0) or self.warmup_iters < 0:
            self._bad("workers and warmup_iters must be >= 0")
        if self.num_threads is not None and self.num_threads < 1:
            self._bad(f"num_threads must be >= 1, got {self.num_threads}")
        if self.max_iters_per_epoch is not None and self.max_iters_per_epoch < 1:
            self._bad(f"max_iters_per_epoch must be >= 1, got {self.max_iters_per_epoch}")
        if self.device not in ("auto", "cpu") and not self.device.startswith("cuda"):
            self._bad(f"device must be 'auto', 'cpu' or 'cuda[:N]', got {self.device!r}")

    def _check_start(self) -> None:
        """init_from and resume are not both set."""
        if self.init_from is not None and self.resume:
            self._bad("init_from and resume exclude each other: resume continues a run, init_from starts a new one "
                      "from another model's weights")

    def to_dict(self) -> Dict[str, Any]:
        """The fields as a JSON-ready dict (sizes as lists)."""
        d = dataclasses.asdict(self)  # type: ignore[call-overload]
        d["input_size"] = list(self.input_size)
        d["scale_range"] = list(self.scale_range)
        return d

    @classmethod
    def from_dict(cls: Type[C], d: Dict[str, Any]) -> C:
        """The config of ``d`` (as written by :meth:`to_dict`); unknown fields are an error."""
        known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(d) - known)
        if unknown:
            raise EdgesegError(f"{cls._name}: unknown field(s) {unknown}; known: {sorted(known)}")
        return cls(**d)


# ------------------------------------------------------------------------------ environment


def resolve_device(name: str = "auto") -> torch.device:
    """``"auto"`` -> cuda if available else cpu."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise EdgesegError(f"device {name!r} requested but CUDA is not available; use device='cpu'")
    return torch.device(name)


def available_cpus() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def default_workers() -> int:
    """Data-loading processes for this machine: 0 up to 2 cores (measured faster: the workers
    steal the cores torch computes on), else ``min(4, cpus - 2)``."""
    cpus = available_cpus()
    return 0 if cpus <= 2 else min(4, cpus - 2)


def worker_init(_: int) -> None:
    """DataLoader ``worker_init_fn``: single-threaded OpenCV in each worker."""
    # OpenCV's own thread pool fights torch's OpenMP threads; workers are single-threaded anyway
    import cv2

    cv2.setNumThreads(1)


@contextlib.contextmanager
def single_cv2_thread() -> Iterator[None]:
    """OpenCV on one thread for the duration (its pool next to torch's OpenMP threads slows both
    down a lot); the previous setting is restored afterwards."""
    import cv2

    cv2_threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        yield
    finally:
        cv2.setNumThreads(cv2_threads)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def setup_run(cfg: Any, device_name: Optional[str] = None, threads: Optional[int] = None
              ) -> Tuple[torch.device, bool]:
    """Seed, pick the device (``device_name``, default ``cfg.device``) and torch's thread count
    (``threads``, default ``cfg.num_threads`` or every core); returns ``(device, use_amp)``."""
    seed_everything(cfg.seed)
    device = resolve_device(cfg.device if device_name is None else device_name)
    use_amp = device.type == "cuda" and cfg.amp is not False
    torch.set_num_threads(int(threads or cfg.num_threads or available_cpus()))
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    return device, use_amp


#: Whether :func:`log` prints (off in the torchrun workers other than rank 0).
_LOG = {"enabled": True}


@contextlib.contextmanager
def logging_enabled(enabled: bool) -> Iterator[None]:
    """:func:`log` prints only if ``enabled`` for the duration."""
    before = _LOG["enabled"]
    _LOG["enabled"] = bool(enabled)
    try:
        yield
    finally:
        _LOG["enabled"] = before


def log(msg: str) -> None:
    """A progress message to stderr."""
    if _LOG["enabled"]:
        print(msg, file=sys.stderr, flush=True)


def atomic_write_text(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def atomic_torch_save(obj: Any, path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


# ----------------------------------------------------------------------------- data, model


def open_datasets(open_fn: Callable[..., Any], cfg: Any) -> Tuple[Any, Any, List[str]]:
    """``(train set, val set, classes)`` from ``cfg.data`` / ``cfg.val_data`` (default: the "val"
    split of ``cfg.data``) through ``open_fn(spec, split, **cfg.data_kwargs)``."""
    train_ds = open_fn(cfg.data, "train", **cfg.data_kwargs)
    val_ds = open_fn(cfg.val_data or cfg.data, "val", **cfg.data_kwargs)
    if len(train_ds) == 0:
        raise EdgesegError(f"training dataset {cfg.data!r} is empty")
    classes = list(train_ds.classes)
    if list(val_ds.classes) != classes:
        raise EdgesegError(f"train and val datasets have different classes: {classes} vs {list(val_ds.classes)}")
    return train_ds, val_ds, classes


def init_weights(model: torch.nn.Module, path: str, name: str, classes: List[str]) -> None:
    """Start from the weights of checkpoint ``path`` (fine-tuning); same model and classes required."""
    src, meta, ccfg = load_checkpoint(path)
    if ccfg["model"]["name"] != name:
        raise EdgesegError(f"init_from: {path} holds a {ccfg['model']['name']!r} model but the config trains "
                           f"{name!r}; use --model {ccfg['model']['name']} or another checkpoint")
    if list(meta.classes) != list(classes):
        raise EdgesegError(f"init_from: {path} was trained for classes {list(meta.classes)} but the data has "
                           f"{list(classes)}; fine-tune from a checkpoint with the same classes")
    model.load_state_dict(src.state_dict(), strict=True)
    log(f"init: weights from {path}")


def prepare_model(model: torch.nn.Module, cfg: Any, classes: List[str], device: torch.device,
                  make_out_dir: bool = True) -> torch.nn.Module:
    """Load ``cfg.init_from`` weights if set, move the model to ``device`` and create ``cfg.out_dir``
    (only now that data and model are known to be good; not with ``make_out_dir=False``)."""
    if cfg.init_from is not None:
        init_weights(model, cfg.init_from, cfg.model, classes)
    model = model.to(device)
    if make_out_dir:
        Path(cfg.out_dir).mkdir(parents=True, exist_ok=True)
    return model


def make_optimizer(model: torch.nn.Module, cfg: Any) -> torch.optim.Optimizer:
    """AdamW or SGD (``cfg.optimizer``, ``lr``, ``weight_decay``, ``momentum``); no weight decay on
    norm weights and biases (1-D parameters)."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 else decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=True)
    return torch.optim.AdamW(groups, lr=cfg.lr)


def log_run_start(cfg: Any, model: torch.nn.Module, n_classes: int, device: torch.device, use_amp: bool,
                  n_train: int, n_val: int, iters: int, workers: int, detail: str = "") -> None:
    """The one-line summary of a run (``detail`` goes before the thread count)."""
    n_params = sum(p.numel() for p in model.parameters())
    log(f"train: {cfg.model} ({n_params / 1e6:.2f} M params, {n_classes} classes) on {device}"
        f"{' +AMP' if use_amp else ''}; {n_train} train / {n_val} val samples; "
        f"{cfg.epochs} epochs x {iters} iters, batch {cfg.batch_size}, {detail}{torch.get_num_threads()} threads, "
        f"{workers} data workers")


# --------------------------------------------------------------------------------- resume


def resume_run(out: Path, model_name: str, optimizer: torch.optim.Optimizer, scaler: Any,
               load_model: Callable[[Dict[str, Any]], None], best_name: str, restore_rng: bool = True
               ) -> Tuple[int, int, float, List[Dict[str, Any]]]:
    """``(start_epoch, global_iter, best score, history)`` to continue the run in ``out``.

    Reads :data:`STATE_FILE`, checks that it is a run of ``model_name``, calls
    ``load_model(state)`` to restore the weights, then restores optimizer, AMP scaler and (with
    ``restore_rng``) the torch RNG. ``best_name`` names the best score in the log. Nothing to
    resume: a fresh start ``(0, 0, -1.0, [])``.
    """
    state_path = out / STATE_FILE
    if not state_path.is_file():
        log(f"resume: nothing to resume in {out} (no {STATE_FILE}); starting from scratch")
        return 0, 0, -1.0, []
    state = torch.load(state_path, map_location="cpu", weights_only=True)
    if state.get("model") != model_name:
        raise EdgesegError(f"resume: {out} holds a {state.get('model')!r} run but the config asks for "
                           f"{model_name!r}; use another out_dir or the same model")
    load_model(state)
    optimizer.load_state_dict(state["optimizer"])
    if scaler is not None and state.get("scaler"):
        scaler.load_state_dict(state["scaler"])
    if restore_rng:
        torch.set_rng_state(state["torch_rng"])
    hist_path = out / "history.json"
    history = json.loads(hist_path.read_text()) if hist_path.is_file() else []
    start_epoch = int(state["epoch"]) + 1
    best = float(state["best_score"] if "best_score" in state else state["best_miou"])
    log(f"resume: continuing {out} after epoch {start_epoch} (best {best_name} {best:.4f})")
    return start_epoch, int(state["global_iter"]), best, history[:start_epoch]


# ------------------------------------------------------------------------------ iterations


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> float:
    """Set every parameter group's learning rate; returns ``lr``."""
    for g in optimizer.param_groups:
        g["lr"] = lr
    return lr


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


def optimizer_step(loss: torch.Tensor, optimizer: torch.optim.Optimizer, scaler: Any, model: torch.nn.Module,
                   grad_clip: Optional[float] = None) -> None:
    """Backward pass and optimizer step, through the AMP ``scaler`` when there is one; gradients are
    clipped to norm ``grad_clip`` when it is set."""
    optimizer.zero_grad(set_to_none=True)
    if scaler is not None:
        scaler.scale(loss).backward()
        if grad_clip:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        scaler.step(optimizer)
        scaler.update()
    else:
        loss.backward()
        if grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()


# -------------------------------------------------------------------------------- epoch end


def speed_record(lr: float, iters: int, train_time: float) -> Dict[str, Any]:
    """The ``lr``, ``iters``, ``train_time_s`` and ``it_per_s`` entries of an epoch's history record."""
    return {"lr": lr, "iters": iters, "train_time_s": round(train_time, 2),
            "it_per_s": round(iters / train_time, 3) if train_time > 0 else None}


def validates(epoch: int, cfg: Any) -> bool:
    """Whether epoch ``epoch`` (0-based) is validated: every ``cfg.val_every`` epochs and the last."""
    return (epoch + 1) % cfg.val_every == 0 or epoch + 1 == cfg.epochs


def save_checkpoints(out: Path, model: torch.nn.Module, meta: ModelMeta, score: Optional[float], best: float,
                     train_cfg: Dict[str, Any], model_cfg: Optional[dict] = None) -> Tuple[float, bool]:
    """Save ``out/last`` and, when ``score`` beats ``best`` (or there is no ``out/best`` yet),
    ``out/best``; returns ``(new best, improved)``. A None or NaN score never improves."""
    save_checkpoint(out / "last", model, meta, model_cfg=model_cfg, extra={"train": train_cfg})
    valid = score is not None and not math.isnan(score)
    improved = valid and score > best
    if improved or not (out / "best").is_dir():
        best = max(best, score if valid else -1.0)
        save_checkpoint(out / "best", model, meta, model_cfg=model_cfg, extra={"train": train_cfg})
    return best, improved


def save_run_state(out: Path, state: Dict[str, Any], history: Sequence[Dict[str, Any]],
                   plot: Callable[[Sequence[dict], Path], Any]) -> None:
    """Write :data:`STATE_FILE`, ``history.json`` and ``curve.png`` (drawn by ``plot``)."""
    atomic_torch_save(state, out / STATE_FILE)
    atomic_write_text(out / "history.json", json.dumps(history, indent=2) + "\n")
    plot(history, out / "curve.png")


def stop_requested(on_epoch_end: Optional[EpochCallback], rec: Dict[str, Any], epoch: int) -> bool:
    """Call ``on_epoch_end`` with a copy of ``rec``; True (and a log line) when it returned False."""
    if on_epoch_end is not None and on_epoch_end(dict(rec)) is False:
        log(f"stopped after epoch {epoch + 1}; continue with resume=True")
        return True
    return False
