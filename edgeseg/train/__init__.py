"""Training (PyTorch): losses, numpy metrics, and the trainer.

Importing ``edgeseg.train`` does not import torch; ``train``, ``TrainConfig``, ``evaluate``,
``build_loss`` and the instance trainer (``train_instance``, ``InstanceTrainConfig``,
``evaluate_instances``) are loaded on first use.
"""
from __future__ import annotations

from typing import Any

from ..eval.confusion import ConfusionMatrix

_LAZY = {"train": "trainer", "TrainConfig": "trainer", "evaluate": "trainer", "build_loss": "losses",
         "plot_history": "plotting", "train_instance": "instance_trainer",
         "InstanceTrainConfig": "instance_trainer", "evaluate_instances": "instance_trainer"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["ConfusionMatrix", "train", "TrainConfig", "evaluate", "build_loss", "plot_history",
           "train_instance", "InstanceTrainConfig", "evaluate_instances"]
