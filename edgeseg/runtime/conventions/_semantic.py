"""Shared by the semantic conventions (logits, one-channel, labels): their base class, the output's
layout, and the ModelMeta of a model without edgeseg metadata built from the graph plus the user's
facts."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ...meta import ModelMeta
from ..backends import TensorSpec
from .base import Convention, GraphView, ImageInput, classes_from, image_input, input_extra, input_size_from, \
    normalisation, require


def channels_axis(out: TensorSpec, img: ImageInput, facts: dict[str, Any]) -> int:
    """1 for (N, C, h, w) outputs, 3 for channels-last (N, h, w, C): channels-last when the
    input is, unless the shape says otherwise (or ``output_layout`` is given)."""
    given = facts.get("output_layout")
    if given is not None:
        return 3 if str(given).upper() == "NHWC" else 1
    if img.layout != "NHWC":
        return 1
    c1, c3 = out.static_dim(1), out.static_dim(3)
    return 1 if (c1 is not None and c3 is not None and c1 < c3) else 3


def semantic_meta(graph: GraphView, facts: dict[str, Any], out: TensorSpec, img: ImageInput, n_graph: int | None,
                  default_classes: list[str] | None, what: str, extra: dict[str, Any]) -> ModelMeta:
    """The ModelMeta of a semantic model whose decoding is described by ``extra``."""
    where = str(graph.path)
    names = classes_from(facts, n_graph, where)
    if names is None and default_classes is not None:
        names = default_classes
    if names is None and n_graph is not None:
        names = [f"class_{i}" for i in range(n_graph)]
    size = input_size_from(facts, img, where)
    norm = normalisation(facts, img)
    missing = [k for k, have in (("classes", names is not None), ("input_size", size is not None),
                                 ("mean/std", norm is not None)) if not have]
    require(where, f"carries no edgeseg metadata ({what})", missing)
    assert names is not None and size is not None and norm is not None
    stride = facts.get("output_stride")
    axes = (1, 2) if extra.get("output_layout") == "NHWC" else (2, 3)
    if len(out.shape) == 3:
        axes = (1, 2)
    oh = out.static_dim(axes[0])
    if stride is None and oh and img.static_hw[0]:
        stride = max(1, round(img.static_hw[0] / oh))
    return ModelMeta(
        task="semantic", classes=names, input_size=size, arch=Path(where).stem, mean=norm[0], std=norm[1],
        output_stride=int(stride) if stride is not None else 0,  # 0: learnt on the first frame
        input_name=img.spec.name, layout=img.layout, output_names=[out.name],
        palette=facts.get("palette") or [], dynamic=img.dynamic,
        extra={**extra, **input_extra(facts, img), "source": "user-supplied facts (no edgeseg metadata in the model)"})


class SemanticConvention(Convention):
    """A semantic model's convention read from its first output and its image input: subclasses
    implement :meth:`detect_output` and build the ModelMeta with :meth:`make_meta`."""

    kind = "semantic"

    def detect(self, graph: GraphView, facts: dict[str, Any]) -> ModelMeta | None:
        return self.detect_output(graph, facts, graph.outputs[0], image_input(graph, facts))

    def detect_output(self, graph: GraphView, facts: dict[str, Any], out: TensorSpec,
                      img: ImageInput) -> ModelMeta | None:  # pragma: no cover
        """:meth:`detect`, given the output ``out`` and the image input ``img``."""
        raise NotImplementedError

    def make_meta(self, graph: GraphView, facts: dict[str, Any], out: TensorSpec, img: ImageInput, what: str,
                  n_graph: int | None = None, default_classes: list[str] | None = None, nhwc: bool = False,
                  **extra: Any) -> ModelMeta:
        """The ModelMeta (see :func:`semantic_meta`); ``meta.extra`` records this convention, the
        decoding facts in ``extra`` and, with ``nhwc``, a channels-last output."""
        extra = {"convention": self.name, **extra}
        if nhwc:
            extra["output_layout"] = "NHWC"
        return semantic_meta(graph, facts, out, img, n_graph, default_classes, what, extra)


def to_nchw(a: np.ndarray, meta: ModelMeta) -> np.ndarray:
    """A batch of outputs as (N, C, h, w)."""
    if meta.extra.get("output_layout") == "NHWC" and a.ndim == 4:
        return np.ascontiguousarray(a.transpose(0, 3, 1, 2))
    return a


def spatial_ok(out: TensorSpec, hw_axes: tuple[int, int], img: ImageInput) -> bool:
    """Whether the output's (h, w) can be a label map of the input: the same whole-number stride
    on both axes (where static). Anything else (a detection table, a feature vector) is no map."""
    (ih, iw), oh, ow = img.static_hw, out.static_dim(hw_axes[0]), out.static_dim(hw_axes[1])
    if None in (ih, iw, oh, ow):
        return True
    sh, sw = ih / oh, iw / ow
    return sh == sw and (sh.is_integer() or (1 / sh).is_integer())
