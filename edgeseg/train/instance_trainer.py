"""Instance segmentation training: ``train_instance(InstanceTrainConfig(...)) -> best checkpoint dir``.

One config for every instance kind; the model's kind (single-stage YOLOSeg or Mask R-CNN, found
through the registry of model kinds) brings its training hooks (:mod:`.hooks_yoloseg`,
:mod:`.hooks_maskrcnn`) and the shared loop (:mod:`.loop`) runs them. Writes into ``out_dir``
what the loop writes (checkpoints hold the EMA weights when ema=True); ``history.json`` holds per
epoch the train loss and its parts, val box/mask AP50 (and AP with pycocotools), lr and speed;
``curve.png`` the loss parts and val AP50 vs epoch. Validation is :mod:`.instance_eval`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

from .. import defaults
from ..eval.ap50 import AP50  # noqa: F401 (this module's API)
from ..models import create_model
from .common import STATE_FILE, lr_at  # noqa: F401 (this module's API)
from .common import RunConfig
from .ema import ModelEMA  # noqa: F401 (this module's API)
from .hooks import hooks_for_model
from .hooks_instance import plot_instance_history  # noqa: F401 (this module's API)
from .instance_eval import EVALUATORS, evaluate_instances, predict_instances  # noqa: F401 (this module's API)
from .instance_losses import PARTS
from .loop import run_training


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
    ``loss_weights`` override the loss weights of the model's kind by part name. Under torchrun
    ``batch_size`` is per process and ``sync_bn`` turns BatchNorm into SyncBatchNorm on CUDA.
    """

    model: str = "yoloseg_n"
    lr: float = 2e-3
    warmup_iters: int = 200
    scale_range: Tuple[float, float] = (0.5, 1.5)
    out_dir: str = "runs/instance"
    schedule: str = "cosine"
    min_lr_ratio: float = 0.05
    grad_clip: Optional[float] = 10.0
    loss_weights: Dict[str, float] = field(default_factory=dict)
    tal_topk: int = 10
    tal_alpha: float = 0.5
    tal_beta: float = 6.0
    ema: bool = True
    ema_decay: float = 0.9998
    ema_tau: float = 500.0
    score_threshold: float = defaults.SCORE_THRESHOLD
    iou_threshold: float = defaults.IOU_THRESHOLD
    val_score_threshold: float = 0.01
    max_detections: int = defaults.MAX_DETECTIONS
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


def _loss_parts_of(name: str, model_kwargs: Dict[str, Any]) -> Sequence[str]:
    """The loss part names of registered model ``name`` (for validating ``loss_weights``)."""
    try:
        probe = create_model(name, 1, **model_kwargs)
    except Exception:  # noqa: BLE001 - a bad model config is reported when the run builds the model
        return PARTS
    return hooks_for_model(probe).parts


def train_instance(cfg: InstanceTrainConfig, on_epoch_end: Optional[Callable[[Dict[str, Any]], Any]] = None) -> Path:
    """Train an instance model as configured; returns the directory of the best checkpoint (by val
    mask AP50).

    Progress goes to stderr. With ``cfg.resume`` a run in ``cfg.out_dir`` continues after its last
    finished epoch. ``on_epoch_end(record)`` is called after each saved epoch; returning ``False``
    stops the run there (it can be resumed later). Under torchrun every process calls this; rank 0
    writes the files and calls ``on_epoch_end``.
    """
    cfg.validate()
    probe = create_model(cfg.model, 1, **cfg.model_kwargs)  # its kind picks the hooks
    return run_training(cfg, hooks_for_model(probe), on_epoch_end)
