"""Graphs that end in argmax: integer labels (N, 1, H, W) as mmdeploy writes them (int64), or
(N, H, W) as PaddleSeg does (int32); un-letterboxed by nearest-neighbour sampling."""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from ...errors import ModelError
from ...meta import ModelMeta
from ..backends import TensorSpec
from ._semantic import SemanticConvention, spatial_ok
from .base import GraphView, ImageInput


class LabelsConvention(SemanticConvention):
    name = "labels"
    summary = "integer class ids from a graph ending in argmax: (N, 1, H, W) int64 (mmdeploy) or (N, H, W) int32 (PaddleSeg)"
    example = "edgeseg.load('pp_liteseg.onnx', num_classes=19, mean=(127.5,) * 3, std=(127.5,) * 3)"

    def detect_output(self, graph: GraphView, facts: dict[str, Any], out: TensorSpec,
                      img: ImageInput) -> ModelMeta | None:
        if out.dtype.kind not in "iu":
            return None
        if not (len(out.shape) == 3 or (len(out.shape) == 4 and 1 in (out.static_dim(1), out.static_dim(3)))):
            raise ModelError(f"{graph.path}: output {out.name!r} holds integers shaped {out.shape}; edgeseg reads "
                             "class ids shaped (N, H, W) or (N, 1, H, W)")
        if not spatial_ok(out, (1, 2) if len(out.shape) == 3 or out.static_dim(3) == 1 else (2, 3), img):
            return None
        return self.make_meta(graph, facts, out, img,
                              "a graph ending in argmax: integer labels, class count not in the graph")

    def adapt(self, outputs: Mapping[str, np.ndarray], meta: ModelMeta, roles: tuple[str, ...]) -> dict[str, np.ndarray]:
        a = outputs[meta.output_names[0]]
        if a.ndim == 4 and a.shape[1] != 1 and a.shape[3] == 1:
            a = a[..., 0]  # (N, H, W, 1)
        return {roles[0]: a}
