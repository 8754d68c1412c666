"""The one training loop of every model kind, in one process or under ``torchrun``.

:class:`TrainLoop` does what every run does the same way: device and seeds, data loading (a
:class:`~torch.utils.data.distributed.DistributedSampler` shard per rank under torchrun), the
learning-rate schedule, AMP, the optimizer step, EMA, loss sums reduced over the ranks, sharded
validation merged on rank 0, checkpoints, ``train_state.pt``, ``history.json`` and the curve
(written by rank 0 only, atomically), resume and the per-epoch callback. What differs per kind
comes from its :class:`~edgeseg.train.hooks.TrainHooks`.

Writes into ``out_dir``::

    best/  last/          checkpoints (model.safetensors + config.json)
    train_state.pt        weights, EMA, optimizer, scaler, epoch, best score for resume (tensors
                          only; read with torch.load(weights_only=True))
    train_config.json     the config of the run
    history.json          one record per epoch (losses, validation, lr, speed, world size, global batch)
    curve.png             the training curve
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import torch
from torch.utils.data import DataLoader, Dataset
from torch.utils.data.distributed import DistributedSampler

from ..errors import EdgesegError
from ..models.checkpoint import load_checkpoint
from .._progress import Progress
from . import distributed as D
from .common import (STATE_FILE, atomic_write_text, default_workers, log, log_run_start, logging_enabled, make_optimizer,
                     optimizer_step, prepare_model, resume_run, save_checkpoints, save_run_state, set_lr, setup_run,
                     single_cv2_thread, speed_record, stop_requested, validates, worker_init)
from .dataset import normalize
from .hooks import TrainHooks

EpochCallback = Callable[[Dict[str, Any]], Any]


def _to_device(targets: Any, device: torch.device) -> Any:
    if isinstance(targets, dict):
        return {k: v.to(device, non_blocking=True) for k, v in targets.items()}
    return targets.to(device, non_blocking=True)


class TrainLoop:
    """One run of ``cfg`` (a validated RunConfig) with the kind's ``hooks``.

    ``model`` optionally passes the freshly built model (else ``hooks.build_model``).
    :meth:`run` trains every remaining epoch; :meth:`setup`, :meth:`train_epoch`,
    :meth:`end_epoch` are its steps. ``ctx`` is the torchrun context (default: from the environment).
    """

    def __init__(self, cfg: Any, hooks: TrainHooks, model: Optional[torch.nn.Module] = None,
                 ctx: Optional[D.DistContext] = None) -> None:
        self.cfg, self.hooks, self._model = cfg, hooks, model
        self.ctx = D.from_env() if ctx is None else ctx
        self.out = Path(cfg.out_dir)
        self._created_group = False

    # ------------------------------------------------------------------------------ setup
    def setup(self) -> "TrainLoop":
        cfg, hooks, ctx = self.cfg, self.hooks, self.ctx
        device, use_amp = setup_run(cfg, D.device_for(ctx, cfg.device), self._threads())
        self.device, self.use_amp = device, use_amp
        self._created_group = D.start(ctx, device)
        train_ds, val_ds, classes = hooks.open_datasets()
        self.train_ds, self.val_ds, self.classes = train_ds, val_ds, classes

        model = self._model if self._model is not None else hooks.build_model(classes)
        model = prepare_model(model, cfg, classes, device, make_out_dir=ctx.is_main)
        self.model = model = D.convert_sync_bn(model, ctx, device, getattr(cfg, "sync_bn", True))
        step = hooks.train_step(model, classes, use_amp).to(device)
        self.step = D.wrap(step, ctx, device, hooks.find_unused_parameters)  # broadcasts rank 0's weights
        self.ema = hooks.make_ema(model)
        self.optimizer = make_optimizer(model, cfg)
        self.scaler = torch.amp.GradScaler("cuda") if use_amp else None

        self.train_set, collate = hooks.train_dataset(train_ds, model)
        self._make_loader(self.train_set, collate)
        self.total_iters = cfg.epochs * self.iters

        resume = cfg.resume or (ctx.restart > 0 and (self.out / STATE_FILE).is_file())
        self.start_epoch, self.global_iter, self.best, self.history = (
            resume_run(self.out, cfg.model, self.optimizer, self.scaler, self._load_weights, hooks.best_name,
                       restore_rng=not ctx.enabled) if resume else (0, 0, -1.0, []))
        ctx.check_same("the epoch to resume from", self.start_epoch, self.global_iter)
        if ctx.is_main:
            atomic_write_text(self.out / "train_config.json", json.dumps(cfg.to_dict(), indent=2) + "\n")
            hooks.prepare_validation(val_ds)
            detail = f"{ctx.world} processes (global batch {cfg.batch_size * ctx.world}), " if ctx.enabled else ""
            log_run_start(cfg, model, len(classes), device, use_amp, len(train_ds), len(val_ds), self.iters,
                          self.workers, detail=detail + self._detail())
        ctx.barrier()
        return self

    def _threads(self) -> int:
        from .common import available_cpus

        return int(self.cfg.num_threads or max(1, available_cpus() // self.ctx.local_world))

    def _detail(self) -> str:
        size = self.cfg.input_size
        return f"input {size[0]}x{size[1]}, " if self.hooks.parts else ""

    def _make_loader(self, dataset: Dataset, collate: Any) -> None:
        cfg, ctx = self.cfg, self.ctx
        self.gen = torch.Generator()
        self.workers = default_workers() if cfg.workers is None else cfg.workers
        self.sampler: Optional[DistributedSampler] = None
        if ctx.enabled:  # a disjoint shard per rank; the last len % world samples of an epoch are dropped
            if len(dataset) < ctx.world:
                raise EdgesegError(f"the training set has {len(dataset)} samples for {ctx.world} processes; "
                                   "use fewer processes or more data")
            self.sampler = DistributedSampler(dataset, ctx.world, ctx.rank, shuffle=True, seed=cfg.seed, drop_last=True)
            n = len(self.sampler)
            kw: Dict[str, Any] = {"sampler": self.sampler}
        else:
            n = len(dataset)
            kw = {"shuffle": True, "generator": self.gen}
        self.loader = DataLoader(dataset, batch_size=cfg.batch_size, drop_last=n >= cfg.batch_size,
                                 num_workers=self.workers, collate_fn=collate, pin_memory=self.device.type == "cuda",
                                 worker_init_fn=worker_init if self.workers else None, **kw)
        self.iters = len(self.loader) if cfg.max_iters_per_epoch is None else min(len(self.loader),
                                                                                   cfg.max_iters_per_epoch)

    def _load_weights(self, state: Dict[str, Any]) -> None:
        """Weights (and EMA) from a saved state; states without weights: from ``out/last``."""
        if state.get("model_state"):
            self.model.load_state_dict(state["model_state"])
        else:
            if not (self.out / "last").is_dir():
                raise EdgesegError(f"resume: {self.out / STATE_FILE} holds no weights and {self.out / 'last'} "
                                   "is missing; start a new run")
            self.model.load_state_dict(load_checkpoint(self.out / "last")[0].state_dict())
        if self.ema is not None:
            self.ema.module.load_state_dict(state.get("ema_state") or self.model.state_dict())
            self.ema.updates = int(state.get("ema_updates", 0))

    # ---------------------------------------------------------------------------- epochs
    def begin_epoch(self, epoch: int) -> None:
        """Reseed augmentation, shuffling (and under torchrun the rank's torch RNG) for ``epoch``."""
        self.train_set.set_epoch(epoch)
        if self.sampler is not None:
            self.sampler.set_epoch(epoch)
            torch.manual_seed(D.rank_seed(self.cfg.seed, self.ctx, epoch))
        else:
            self.gen.manual_seed(self.cfg.seed * 100_003 + epoch)
        self.model.train()

    def train_epoch(self, epoch: int) -> Dict[str, Any]:
        """Train one epoch; returns its history record without validation (losses are the means
        over every rank's iterations)."""
        cfg, hooks, ctx, device = self.cfg, self.hooks, self.ctx, self.device
        t0 = time.perf_counter()
        self.begin_epoch(epoch)
        bar = Progress(self.iters, f"epoch {epoch + 1}/{cfg.epochs}", enabled=cfg.progress and ctx.is_main)
        parts = list(hooks.parts)
        sums = torch.zeros(len(parts) + 1, dtype=torch.float64)
        n, lr = 0, cfg.lr
        grad_clip = getattr(cfg, "grad_clip", None)
        for it, (x, targets) in enumerate(self.loader):
            if it >= self.iters:
                break
            lr = set_lr(self.optimizer, hooks.lr_at(self.global_iter, self.total_iters))
            x = normalize(x.to(device, non_blocking=True))
            loss, loss_parts = self.step(x, _to_device(targets, device))
            vals = torch.stack([loss.detach()] + [loss_parts[p].detach() for p in parts]).double().cpu()
            ctx.sum_(vals).div_(ctx.world)  # every rank sees the same value, so every rank stops alike
            if not bool(torch.isfinite(vals[0])):
                raise EdgesegError(f"loss became {float(vals[0])} at epoch {epoch + 1} iter {it + 1}; "
                                   f"lower the learning rate (lr={cfg.lr}) or check the {hooks.data_word}")
            optimizer_step(loss, self.optimizer, self.scaler, self.model, grad_clip)
            if self.ema is not None:
                self.ema.update(self.model)
            self.global_iter += 1
            sums += vals
            n += 1
            mean = (sums / n).tolist()
            bar.update(1, loss=mean[0], **{p: mean[i + 1] for i, p in enumerate(parts)}, lr=lr)
        bar.close()
        train_time = time.perf_counter() - t0
        mean = (sums / max(n, 1)).tolist()
        speed = speed_record(lr, n, train_time)
        global_batch = cfg.batch_size * ctx.world
        rec: Dict[str, Any] = {"epoch": epoch + 1, "train_loss": mean[0],
                               **{f"loss_{p}": mean[i + 1] for i, p in enumerate(parts)}, **speed,
                               "world_size": ctx.world, "global_batch": global_batch,
                               "images_per_s": round(n * global_batch / train_time, 2) if train_time > 0 else None,
                               **hooks.val_fields()}
        self._epoch_t0 = t0
        return rec

    @property
    def eval_model(self) -> torch.nn.Module:
        """What is validated and saved: the EMA when there is one, else the model."""
        return self.ema.module if self.ema is not None else self.model

    def validate(self) -> Dict[str, Any]:
        """Validation entries (on rank 0; ``{}`` elsewhere): each rank scores every world-th sample."""
        ctx, model = self.ctx, self.eval_model
        ctx.sync_buffers(model)
        n = len(self.val_ds) if self.cfg.max_val_samples is None else min(len(self.val_ds), self.cfg.max_val_samples)
        part = self.hooks.validate_shard(model, self.val_ds, self.device, self.workers, range(ctx.rank, n, ctx.world))
        partials = ctx.gather(part)
        return self.hooks.finish_validation(partials, self.val_ds) if partials is not None else {}

    def end_epoch(self, epoch: int, rec: Dict[str, Any], on_epoch_end: Optional[EpochCallback]) -> bool:
        """Validate, save (rank 0) and call ``on_epoch_end``; returns whether the run stops here."""
        cfg, hooks, ctx = self.cfg, self.hooks, self.ctx
        if validates(epoch, cfg):
            rec.update(self.validate())
        stop = False
        if ctx.is_main:
            rec["time_s"] = round(time.perf_counter() - self._epoch_t0, 2)
            self.history.append(rec)
            model = self.eval_model
            self.best, improved = save_checkpoints(self.out, model, hooks.meta(model, self.train_ds, rec),
                                                   rec[hooks.best_key], self.best, cfg.to_dict())
            save_run_state(self.out, self._state(epoch), self.history, hooks.plot)
            log(hooks.epoch_message(rec, improved) + f" [{rec['time_s']:.1f} s, {rec['it_per_s']} it/s]")
            stop = stop_requested(on_epoch_end, rec, epoch)
        return bool(ctx.broadcast(stop))

    def _state(self, epoch: int) -> Dict[str, Any]:
        ema = self.ema
        return {"epoch": epoch, "global_iter": self.global_iter, "best_score": self.best, "model": self.cfg.model,
                "model_state": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
                "ema_state": {k: v.detach().cpu() for k, v in ema.module.state_dict().items()} if ema else {},
                "ema_updates": ema.updates if ema is not None else 0,
                "optimizer": self.optimizer.state_dict(),
                "scaler": self.scaler.state_dict() if self.scaler is not None else {},
                "torch_rng": torch.get_rng_state(), "world_size": self.ctx.world}

    def run(self, on_epoch_end: Optional[EpochCallback] = None) -> Path:
        """Train every remaining epoch; returns ``out_dir/best``."""
        try:
            with logging_enabled(self.ctx.is_main):
                self.setup()
                for epoch in range(self.start_epoch, self.cfg.epochs):
                    rec = self.train_epoch(epoch)
                    if self.end_epoch(epoch, rec, on_epoch_end):
                        break
                self.ctx.barrier()
        finally:
            D.stop(self._created_group)
        return self.out / "best"


def run_training(cfg: Any, hooks_cls: Any, on_epoch_end: Optional[EpochCallback] = None,
                 model: Optional[torch.nn.Module] = None) -> Path:
    """Validate ``cfg`` and train it with ``hooks_cls(cfg)`` (OpenCV on one thread meanwhile);
    returns the best checkpoint's directory."""
    cfg.validate()
    with single_cv2_thread():
        return TrainLoop(cfg, hooks_cls(cfg), model).run(on_epoch_end)


__all__: List[str] = ["TrainLoop", "run_training"]
