"""Output conventions: one module per way a model file can lay out its outputs, each recognising
files of its kind from what they say (I/O names, shapes, dtypes, final ops, metadata) and mapping
their raw outputs to the roles of a model kind. :func:`recognise` tries them in order, edgeseg's
own metadata first; a file that matches none is refused with what was seen, never guessed.
"""
from __future__ import annotations

from typing import Any

from ...errors import ModelError
from ...meta import ModelMeta
from ..backends import Backend
from .base import Convention, GraphView
from .binary import BinaryConvention
from .edgeseg import EdgesegConvention
from .labels import LabelsConvention
from .maskrcnn import MaskRCNNConvention
from .semantic_logits import SemanticLogitsConvention
from .ultralytics import UltralyticsConvention

#: The conventions, in the order :func:`recognise` tries them.
CONVENTIONS: list[Convention] = [EdgesegConvention(), UltralyticsConvention(), MaskRCNNConvention(),
                                 LabelsConvention(), BinaryConvention(), SemanticLogitsConvention()]


def register_convention(convention: Convention, before: str | None = None) -> None:
    """Add a convention (tried before the one named ``before``, else last)."""
    names = [c.name for c in CONVENTIONS]
    CONVENTIONS.insert(names.index(before) if before in names else len(CONVENTIONS), convention)


def get_convention(name: str) -> Convention:
    for c in CONVENTIONS:
        if c.name == name:
            return c
    raise ModelError(f"the model's metadata names output convention {name!r}, which this edgeseg does not know "
                     f"(known: {', '.join(c.name for c in CONVENTIONS)}); upgrade edgeseg")


def convention_of(meta: ModelMeta) -> Convention:
    """The convention a ModelMeta was recognised with (edgeseg's own when it names none)."""
    return get_convention(str(meta.extra.get("convention", "edgeseg")))


def recognise(backend: Backend, facts: dict[str, Any]) -> ModelMeta:
    """The ModelMeta of the model ``backend`` holds: from the first convention that recognises it."""
    graph = GraphView.of(backend)
    if not graph.inputs or not graph.outputs:  # every convention reads an image input and an output
        raise ModelError(f"{backend.path} has {len(graph.inputs)} inputs and {len(graph.outputs)} outputs; a "
                         "segmentation model needs an image input and at least one output. Seen: "
                         f"{graph.describe()}")
    for c in CONVENTIONS:
        meta = c.detect(graph, facts)
        if meta is not None:
            return meta
    known = "\n".join(f"  - {c.name}: {c.summary}" for c in CONVENTIONS)
    raise ModelError(f"{backend.path} matches no output convention edgeseg knows. Seen: {graph.describe()}.\n"
                     f"Known conventions:\n{known}")


__all__ = ["Convention", "GraphView", "CONVENTIONS", "recognise", "get_convention", "convention_of",
           "register_convention"]
