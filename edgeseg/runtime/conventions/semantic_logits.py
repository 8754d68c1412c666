"""Semantic logits (N, C, h, w) at any stride (full resolution as torchvision / smp, 1/4 as
SegFormer, 1/8 as edgeseg's own) or channels-last (N, h, w, C): labels by the fused C++
upsample + argmax, the class count read from the graph."""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from ...meta import ModelMeta
from ..backends import TensorSpec
from ._semantic import SemanticConvention, channels_axis, spatial_ok, to_nchw
from .base import GraphView, ImageInput


class SemanticLogitsConvention(SemanticConvention):
    name = "semantic-logits"
    summary = "float logits (N, C, h, w) or (N, h, w, C), C >= 2, at any stride (torchvision, smp, SegFormer, mmseg)"
    example = "edgeseg.load('deeplab.onnx', mean=(123.675, 116.28, 103.53), std=(58.395, 57.12, 57.375))"

    def detect_output(self, graph: GraphView, facts: dict[str, Any], out: TensorSpec,
                      img: ImageInput) -> ModelMeta | None:
        if len(out.shape) != 4 or out.dtype.kind != "f":
            return None
        axis = channels_axis(out, img, facts)
        if not spatial_ok(out, (1, 2) if axis == 3 else (2, 3), img):
            return None
        c = out.static_dim(axis)
        if c == 1:
            return None  # one channel: see the binary convention
        return self.make_meta(graph, facts, out, img, "float logits", n_graph=c, nhwc=axis == 3)

    def adapt(self, outputs: Mapping[str, np.ndarray], meta: ModelMeta, roles: tuple[str, ...]) -> dict[str, np.ndarray]:
        return {roles[0]: to_nchw(outputs[meta.output_names[0]], meta)}
