"""edgeseg's own convention: the ModelMeta that ``edgeseg export`` stores inside every artefact.

It is tried first; the user's facts may rename classes or change normalisation, and must agree
with the graph (class count, static input size)."""
from __future__ import annotations

from typing import Any

from ...errors import ModelError
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
        check_against_graph(stored, graph)
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


def check_against_graph(meta: ModelMeta, graph: GraphView) -> None:
    """Refuse stored metadata that contradicts the graph it describes (a wrong class count or
    input size would otherwise give plausible, wrong masks)."""
    where = str(graph.path)
    names = {s.name: s for s in graph.outputs}
    missing = [n for n in meta.output_names if n not in names]
    if missing or meta.input_name not in {s.name for s in graph.inputs}:
        raise ModelError(f"{where}: the metadata names input {meta.input_name!r} and outputs {list(meta.output_names)} "
                         f"but the graph has inputs {[s.name for s in graph.inputs]} and outputs {list(names)}; "
                         "re-export the model with edgeseg")
    img = image_input(graph, {"layout": meta.layout})
    for got, want, axis in zip(meta.input_size, img.static_hw, ("height", "width")):
        if want is not None and got != want:
            raise ModelError(f"{where}: the metadata says input {axis} {got} but the graph's input is fixed at {want}; "
                             "re-export the model, or pass input_size matching the graph")
    if meta.extra.get("convention", "edgeseg") != "edgeseg" or meta.extra.get("head") is not None:
        return  # foreign conventions check their own outputs when decoding
    first = names[meta.output_names[0]]
    if meta.task == "semantic" and len(first.shape) == 4 and first.dtype.kind == "f":
        axis = 3 if meta.extra.get("output_layout") == "NHWC" else 1
        c = first.static_dim(axis)
        if c is not None and c != meta.num_classes:
            raise ModelError(f"{where}: the metadata names {meta.num_classes} classes but the graph outputs {c} "
                             "channels; re-export the model, or fix the class list")
    if meta.task == "instance" and len(meta.output_names) >= 2:
        scores = names[meta.output_names[1]]
        c = scores.static_dim(-1)
        if c is not None and c != meta.num_classes:
            raise ModelError(f"{where}: the metadata names {meta.num_classes} classes but the graph scores {c}; "
                             "re-export the model, or fix the class list")
