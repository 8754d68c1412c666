"""Semantic models: letterbox -> backend -> fused upsample+argmax at frame size.

The post-processing is a module function (:func:`postprocess`) so that export parity checks run
exactly the code the runtime runs.
"""
from __future__ import annotations

import numpy as np

from .. import ops
from ..errors import ModelError
from ..meta import ModelMeta
from .backends import Backend
from .base import _FLOAT_INPUTS, Predictor
from .kinds import ModelKind, register_kind
from .results import SemanticResult


def postprocess(output: np.ndarray, info: "ops.LetterboxInfo") -> np.ndarray:
    """Labels at the frame's resolution from one image's model output.

    ``output`` is either float logits (C, h, w) / (1, C, h, w) at any stride (the fused C++
    upsample+argmax maps frame pixels through the letterbox; full-res logits just mean stride 1),
    or integer labels (h, w) / (1, h, w) / (1, 1, h, w) from a graph that ends in argmax, which
    are un-letterboxed by nearest-neighbour sampling with the same pixel mapping.
    """
    out = output
    if np.issubdtype(out.dtype, np.floating):
        if out.ndim == 4 and out.shape[0] == 1:
            out = out[0]
        if out.ndim != 3:
            raise ModelError(f"expected logits shaped (C, h, w) per image, got {output.shape}")
        if out.dtype not in _FLOAT_INPUTS:
            out = out.astype(np.float32)
        return ops.upsample_argmax(np.ascontiguousarray(out), info.src_hw, letterbox=info)
    if np.issubdtype(out.dtype, np.integer):
        while out.ndim > 2 and out.shape[0] == 1:
            out = out[0]
        if out.ndim != 2:
            raise ModelError(f"expected integer labels shaped (h, w) per image, got {output.shape}")
        return _unletterbox_nearest(out, info)
    raise ModelError(f"model output has dtype {output.dtype}; expected float logits or int labels")


def _unletterbox_nearest(labels: np.ndarray, info: "ops.LetterboxInfo") -> np.ndarray:
    """Labels at frame size by nearest-neighbour sampling through the letterbox, with the index
    rule of OpenCV's INTER_NEAREST / torch's ``nearest`` (source = floor(destination x scale)),
    which the tools that export argmax graphs (mmdeploy, PaddleSeg) use to resize label maps."""
    (H, W), (h_in, w_in), (rh, rw) = info.src_hw, info.dst_hw, info.resized_hw
    h, w = labels.shape
    ys = (np.arange(H) * rh / H + info.pad_top) * h / h_in
    xs = (np.arange(W) * rw / W + info.pad_left) * w / w_in
    yi = np.clip(ys.astype(np.int64), 0, h - 1)
    xi = np.clip(xs.astype(np.int64), 0, w - 1)
    out = labels[yi[:, None], xi[None, :]]
    return out.astype(np.uint8) if out.max(initial=0) <= 255 and out.min(initial=0) >= 0 else out.astype(np.int32)


class SemanticPredictor(Predictor):
    """Runs a semantic segmentation model on BGR uint8 frames.

    Build it with :func:`edgeseg.runtime.load`. Call it on a frame to get a
    :class:`SemanticResult` with per-stage timings in milliseconds.
    """

    task = "semantic"

    roles = ("output",)

    def __init__(self, backend: Backend, meta: ModelMeta) -> None:
        super().__init__(backend, meta)
        self._stride_known = meta.output_stride > 0

    def infer(self, tensor: np.ndarray) -> np.ndarray:
        """Stage 2: run the backend -> the model's output as logits (N, C, h, w) or labels."""
        out = self.run(tensor)["output"]
        self._learn_stride(out)
        return out

    def post(self, output: np.ndarray, info: "ops.LetterboxInfo") -> np.ndarray:
        """Stage 3: one image's output (index the batch first) -> labels at frame size."""
        return postprocess(output, info)

    def make_result(self, payload: np.ndarray, frame: np.ndarray, timings: dict[str, float]) -> SemanticResult:
        return SemanticResult(payload, frame, self.meta, timings)

    def _learn_stride(self, out: np.ndarray) -> None:
        # Metadata-less models with dynamic shapes: record the stride once it is observed.
        if not self._stride_known and out.ndim == 4 and out.shape[2] > 0:
            self.meta.output_stride = max(1, round(self.input_size[0] / out.shape[2]))
            self._stride_known = True



register_kind(ModelKind(
    name="semantic", task="semantic", head=None, predictor=SemanticPredictor,
    describe_outputs=lambda m: f"logits at 1/{m.output_stride}",
    parity="edgeseg.export.parity:check_semantic_parity",
    train_hooks="edgeseg.train.trainer:SemanticHooks",
))
