"""What differs between the kinds of model in training, as one small interface.

The shared loop (:mod:`.loop`) drives every kind through a :class:`TrainHooks` object: it asks
the hooks for the datasets, the model, the training step (forward + loss), the per-shard
validation and its merge, the checkpoint metadata and the curve. The hooks of a kind are found
through the registry of model kinds (:func:`hooks_for_model`), never by testing kind names.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Type

import torch
from torch.utils.data import Dataset

from ..meta import ModelMeta


class TrainHooks:
    """The per-kind half of a training run (one instance per run, built from its config).

    Class attributes: ``parts`` (loss part names logged beside the total), ``best_key`` (the
    history entry that picks ``best/``), ``best_name`` (its name in logs), ``data_word`` (what to
    check when the loss diverges), ``find_unused_parameters`` (for DDP: some parameters may get
    no gradient in a step).
    """

    parts: Sequence[str] = ()
    best_key = "val_score"
    best_name = "score"
    data_word = "labels"
    find_unused_parameters = False

    def __init__(self, cfg: Any) -> None:
        self.cfg = cfg

    # ------------------------------------------------------------------------ building
    def open_datasets(self) -> Tuple[Any, Any, List[str]]:
        """``(train set, val set, classes)`` of the run."""
        raise NotImplementedError

    def build_model(self, classes: List[str]) -> torch.nn.Module:
        """A fresh model for ``classes`` (on the CPU, before init_from/resume weights)."""
        raise NotImplementedError

    def train_dataset(self, train_ds: Any, model: torch.nn.Module) -> Tuple[Dataset, Any]:
        """``(augmented training dataset with set_epoch, collate_fn or None)``."""
        raise NotImplementedError

    def train_step(self, model: torch.nn.Module, classes: List[str], use_amp: bool) -> torch.nn.Module:
        """A module holding ``model`` whose ``forward(x, targets)`` returns ``(loss, parts)``
        (``parts``: a dict of 0-d tensors with at least :attr:`parts`). It is what DDP wraps, so
        every forward pass of the model happens inside it."""
        raise NotImplementedError

    def make_ema(self, model: torch.nn.Module) -> Optional[Any]:
        """An EMA of ``model`` that is validated and saved instead of it, or None."""
        return None

    def lr_at(self, it: int, total: int) -> float:
        """The learning rate of iteration ``it`` of ``total``."""
        raise NotImplementedError

    # ---------------------------------------------------------------------- validation
    def val_fields(self) -> Dict[str, Any]:
        """The validation entries of a history record before (or without) validation."""
        return {self.best_key: None}

    def prepare_validation(self, val_ds: Any) -> None:
        """Called once on rank 0 before the first epoch (e.g. to read the ground truth once)."""

    def validate_shard(self, model: torch.nn.Module, val_ds: Any, device: torch.device, workers: int,
                       indices: Sequence[int]) -> Any:
        """Partial validation state of the samples ``indices`` (picklable, merged on rank 0)."""
        raise NotImplementedError

    def finish_validation(self, partials: Sequence[Any], val_ds: Any) -> Dict[str, Any]:
        """History entries from the ranks' partial states."""
        raise NotImplementedError

    # ------------------------------------------------------------------------- saving
    def meta(self, model: torch.nn.Module, train_ds: Any, rec: Dict[str, Any]) -> ModelMeta:
        """The ModelMeta stored in the checkpoints after the epoch of ``rec``."""
        raise NotImplementedError

    def epoch_message(self, rec: Dict[str, Any], improved: bool) -> str:
        """The log line of a finished epoch."""
        return f"epoch {rec['epoch']}/{self.cfg.epochs}: loss {rec['train_loss']:.4f}"

    def plot(self, history: Sequence[dict], path: Path) -> Any:
        """Draw the training curve of ``history`` to ``path`` (atomically)."""
        raise NotImplementedError


def hooks_for_model(model: torch.nn.Module, task: Optional[str] = None) -> Type[TrainHooks]:
    """The :class:`TrainHooks` class of ``model``'s kind (the ``train_hooks`` entry of its
    :class:`~edgeseg.runtime.kinds.ModelKind`).

    With ``task``, a module the registry places in another task (a bare module built outside
    :func:`~edgeseg.models.create_model`) gets that task's default kind (the one without a head mark).
    """
    from .. import runtime  # noqa: F401  (registers the kinds)
    from ..runtime.kinds import get_kind, kind_of_model, list_kinds

    kind = kind_of_model(model)
    if task is not None and kind.task != task:
        kind = next(k for k in map(get_kind, list_kinds()) if k.task == task and k.head is None)
    return kind.load("train_hooks")
