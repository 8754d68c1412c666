"""edgeseg's own convention: the ModelMeta that ``edgeseg export`` stores inside every artefact.

It is tried first; the user's facts may rename classes or change normalisation, and must agree
with the graph (class count, static input size)."""
from __future__ import annotations

from typing import Any

from ...meta import ModelMeta
from .base import Convention, GraphView, check_size, classes_from, image_input, parse_pair


class EdgesegConvention(Convention):
    name = "edgeseg"
    kind = "(from the metadata)"
    summary = "a model written by `edgeseg export`: everything is read from its stored metadata"
    example = "edgeseg.load('model.onnx')"

    def detect(self, graph: GraphView, facts: dict[str, Any]) -> ModelMeta | None:
        stored = graph.stored
        if stored is None:
            return None
        where = str(graph.path)
        names = classes_from(facts, stored.num_classes, where)
        changes: dict[str, Any] = {}
        if names is not None and "classes" in facts:
            changes["classes"] = names
        if "input_size" in facts and parse_pair(facts["input_size"]) != stored.input_size:
            size = parse_pair(facts["input_size"])
            check_size(size, image_input(graph, {"layout": stored.layout}), where)
            changes["input_size"] = size
        for k in ("mean", "std", "output_stride", "palette"):
            if k in facts:
                changes[k] = facts[k]
        return stored.replace(**changes) if changes else stored
