"""The registry of model kinds: semantic, single-stage instance (YOLO-seg style), Mask R-CNN.

A :class:`ModelKind` owns everything that differs between kinds: the predictor that runs it,
the parity comparer of its export, its training hooks and a one-line description of its
outputs. Kinds are keyed by the ModelMeta (``task`` and ``extra["head"]``); nothing outside
this registry checks kind strings. Heavy parts (parity, training) are named as
``"module:attribute"`` strings and imported only when asked for, so the runtime never imports
torch. Each runtime kind module registers its entry when imported (``edgeseg.runtime`` imports
them all).
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable

from ..errors import ModelError
from ..meta import ModelMeta


@dataclass(frozen=True)
class ModelKind:
    """One kind of model.

    Attributes:
        name: registry key ("semantic", "yoloseg", "maskrcnn").
        task: "semantic" or "instance".
        head: the ``meta.extra["head"]`` value that marks this kind (None: the task's default kind).
        predictor: the :class:`~edgeseg.runtime.base.Predictor` subclass that runs it.
        describe_outputs: ModelMeta -> a short description of the outputs (export summaries).
        parity: ``"module:function"`` comparing an exported graph with its PyTorch model.
        train_hooks: ``"module:attribute"`` of the training hooks of this kind.
    """

    name: str
    task: str
    head: str | None
    predictor: type
    describe_outputs: Callable[[ModelMeta], str]
    parity: str = ""
    train_hooks: str = ""
    aliases: tuple[str, ...] = field(default_factory=tuple)

    def load(self, attr: str) -> Any:
        """Import and return the object named by the ``"module:attribute"`` field ``attr``."""
        ref = getattr(self, attr)
        if not ref:
            raise ModelError(f"model kind {self.name!r} has no {attr}")
        module, _, name = ref.partition(":")
        return getattr(importlib.import_module(module), name)


_KINDS: dict[str, ModelKind] = {}


def register_kind(kind: ModelKind) -> ModelKind:
    """Add ``kind`` to the registry (a second registration of the same name replaces it)."""
    _KINDS[kind.name] = kind
    return kind


def list_kinds() -> list[str]:
    """Names of the registered kinds."""
    return sorted(_KINDS)


def get_kind(name: str) -> ModelKind:
    """The kind registered as ``name`` (or one of its aliases); ModelError lists the valid names."""
    for kind in _KINDS.values():
        if name == kind.name or name in kind.aliases:
            return kind
    raise ModelError(f"unknown model kind {name!r}; known kinds: {', '.join(list_kinds())}")


def kind_of_meta(meta: ModelMeta) -> ModelKind:
    """The kind of a model described by ``meta``."""
    head = meta.extra.get("head")
    for kind in _KINDS.values():
        if kind.task == meta.task and kind.head == head:
            return kind
    if head is not None:  # a head this edgeseg does not know: never guess a decoder for it
        raise ModelError(f"the model's metadata names a {meta.task} head {head!r} that this edgeseg does not "
                         f"know (known kinds: {', '.join(list_kinds())}); upgrade edgeseg")
    raise ModelError(f"no model kind runs {meta.task!r} models; known kinds: {', '.join(list_kinds())}")


def kind_of_model(model: Any) -> ModelKind:
    """The kind of a PyTorch model built by :func:`edgeseg.models.create_model` (by its task and
    its ``head_type`` attribute)."""
    from ..models.registry import model_task  # torch-side registry; only called from torch code

    name = getattr(model, "edgeseg_cfg", {}).get("name")
    task = model_task(name) if name else ("instance" if hasattr(model, "head_type") else "semantic")
    head = getattr(model, "head_type", None)
    for kind in _KINDS.values():
        if kind.task == task and kind.head == head:
            return kind
    raise ModelError(f"no model kind for a {task} model with head {head!r}; known kinds: {', '.join(list_kinds())}")
