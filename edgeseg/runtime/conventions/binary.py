"""One-channel outputs (N, 1, h, w) or (N, h, w, 1): a foreground score per pixel, as logits or
as probabilities (decided from the graph: a final Sigmoid means probabilities; or given by the
user). Foreground where the bilinearly upsampled probability exceeds the threshold (0.5), computed
by the fused C++ upsample + argmax against a constant background channel (the threshold, as a
logit for logit outputs): no full-resolution float buffer."""
from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np

from ... import defaults
from ...errors import ModelError
from ...meta import ModelMeta
from ..backends import TensorSpec
from ._semantic import SemanticConvention, channels_axis, spatial_ok, to_nchw
from .base import GraphView, ImageInput

#: Classes of a one-channel model unless the user names them.
CLASSES = ["background", "foreground"]
#: Default probability threshold.
THRESHOLD = defaults.BINARY_THRESHOLD
HOW_OUTPUT = "binary_output='logits' or 'probabilities' (CLI: --binary-output logits|probabilities)"


class BinaryConvention(SemanticConvention):
    name = "binary"
    summary = ("one-channel foreground scores, logits or probabilities (smp classes=1, saliency, text or "
               "road detectors); threshold 0.5 probability")
    example = "edgeseg.load('unet_binary.onnx', mean=(123.675, 116.28, 103.53), std=(58.395, 57.12, 57.375))"

    def detect_output(self, graph: GraphView, facts: dict[str, Any], out: TensorSpec,
                      img: ImageInput) -> ModelMeta | None:
        if out.dtype.kind != "f" or len(out.shape) not in (3, 4):
            return None
        axis = channels_axis(out, img, facts) if len(out.shape) == 4 else None
        if axis is not None and out.static_dim(axis) != 1:
            return None
        if not spatial_ok(out, (1, 2) if len(out.shape) == 3 or axis == 3 else (2, 3), img):
            return None
        kind = facts.get("binary_output")
        if kind is None:
            op = graph.final_ops.get(out.name)
            if op in ("Sigmoid", "HardSigmoid"):
                kind = "probabilities"
            elif op is not None:
                kind = "logits"
            else:
                raise ModelError(f"{graph.path}: output {out.name!r} {out.shape} has one channel, and whether it "
                                 f"holds logits or probabilities cannot be read from the graph; pass {HOW_OUTPUT}")
        if kind not in ("logits", "probabilities"):
            raise ModelError(f"binary_output must be 'logits' or 'probabilities', got {kind!r}")
        threshold = float(facts.get("binary_threshold", THRESHOLD))
        if not 0.0 < threshold < 1.0:
            raise ModelError(f"binary_threshold must be a probability strictly between 0 and 1, got {threshold}")
        n = facts.get("num_classes")
        names = facts.get("classes")
        if (names is not None and len(names) != 2) or (n is not None and int(n) != 2):
            raise ModelError("a one-channel model has 2 classes (background, foreground); give 2 class names")
        return self.make_meta(graph, facts, out, img, f"one-channel {kind}", default_classes=list(CLASSES),
                              nhwc=axis == 3, binary_output=kind, binary_threshold=threshold)

    def adapt(self, outputs: Mapping[str, np.ndarray], meta: ModelMeta, roles: tuple[str, ...]) -> dict[str, np.ndarray]:
        a = outputs[meta.output_names[0]]
        a = a[:, None] if a.ndim == 3 else to_nchw(a, meta)
        t = float(meta.extra.get("binary_threshold", THRESHOLD))
        level = t if meta.extra.get("binary_output") == "probabilities" else math.log(t / (1.0 - t))
        two = np.empty((a.shape[0], 2) + a.shape[2:], np.float32)
        two[:, 0] = level  # background wins ties: foreground needs a strictly greater score
        two[:, 1] = a[:, 0]
        return {roles[0]: two}
