"""Model registry: ``register_model`` / ``create_model`` / ``list_models`` (timm style).

A registered entry is a factory ``fn(num_classes: int, **kwargs) -> nn.Module``. Every model
built through :func:`create_model` records how it was built in ``model.edgeseg_cfg``
(``{"name": ..., "num_classes": ..., "kwargs": {...}}``) so a checkpoint can rebuild it.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional

from ..errors import ModelError

_REGISTRY: Dict[str, Callable[..., Any]] = {}
_TASKS: Dict[str, str] = {}  # name -> "semantic" | "instance"


class UnknownModelError(ModelError, KeyError):
    """An unknown model name. Both a :class:`~edgeseg.errors.ModelError` and a ``KeyError``."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


def register_model(name: Optional[str] = None, task: str = "semantic") -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator registering a model factory under ``name`` (default: the function's name) for
    ``task`` ("semantic" or "instance")."""

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        key = name or fn.__name__
        if key in _REGISTRY and _REGISTRY[key] is not fn:
            raise ValueError(f"model {key!r} is already registered")
        _REGISTRY[key] = fn
        _TASKS[key] = task
        return fn

    return deco


def list_models(task: Optional[str] = None) -> List[str]:
    """Names of the registered models (of ``task`` only, if given), sorted."""
    return sorted(n for n in _REGISTRY if task is None or _TASKS[n] == task)


def model_task(name: str) -> str:
    """The task ("semantic" / "instance") of registered model ``name``."""
    if name not in _REGISTRY:
        raise UnknownModelError(f"unknown model {name!r}; valid names: {', '.join(list_models())}")
    return _TASKS[name]


def is_model(name: str) -> bool:
    """Whether ``name`` is a registered model."""
    return name in _REGISTRY


def create_model(name: str, num_classes: int, **kwargs: Any):
    """Build the model registered as ``name`` with ``num_classes`` output channels.

    Raises :class:`UnknownModelError` (a ``KeyError``) listing the valid names if ``name`` is
    not registered.
    """
    if name not in _REGISTRY:
        raise UnknownModelError(
            f"unknown model {name!r}; valid names: {', '.join(list_models())}"
        )
    num_classes = int(num_classes)
    if num_classes < 1:
        raise ModelError(f"num_classes must be >= 1, got {num_classes}")
    model = _REGISTRY[name](num_classes, **kwargs)
    model.edgeseg_cfg = {"name": name, "num_classes": num_classes, "kwargs": dict(kwargs)}
    return model
