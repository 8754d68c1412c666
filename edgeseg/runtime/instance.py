"""InstancePredictor: frame in, InstanceResult out.

letterbox -> backend (raw head outputs: boxes, scores, coeffs, protos) -> C++ decode + NMS ->
box-local mask assembly at frame resolution (never N x H x W floats). The post-processing is a
module function (:func:`postprocess_instances`) so that export parity runs the runtime's code.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Mapping

import numpy as np

from .. import defaults, ops
from ..errors import ModelError
from ..meta import ModelMeta
from .backends import Backend
from .base import Predictor
from .kinds import ModelKind, register_kind
from .results import InstanceResult

#: The four raw head outputs of an instance model, in the order the model returns them.
OUTPUTS = ("boxes", "scores", "coeffs", "protos")


@dataclass
class InstanceThresholds:
    """Post-processing knobs (defaults: the model's metadata, then edgeseg.defaults)."""

    score: float = defaults.SCORE_THRESHOLD
    iou: float = defaults.IOU_THRESHOLD
    mask: float = defaults.MASK_THRESHOLD
    max_candidates: int = defaults.MAX_CANDIDATES
    max_detections: int = defaults.MAX_DETECTIONS
    class_agnostic: bool = False

    @classmethod
    def for_model(cls, meta: ModelMeta, **overrides: Any) -> "InstanceThresholds":
        stored = {"score": meta.extra.get("score_threshold"), "iou": meta.extra.get("iou_threshold"),
                  "max_detections": meta.extra.get("max_detections"),
                  "max_candidates": meta.extra.get("max_candidates")}
        given = {k: v for k, v in {**stored, **overrides}.items() if v is not None}
        t = cls(**given)
        t.validate()
        return t

    def validate(self) -> None:
        for name in ("score", "iou", "mask"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= float(v) <= 1.0:
                raise ModelError(f"{name} threshold must be in [0, 1] (a number), got {v!r:.40}")
        for name in ("max_candidates", "max_detections"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v > 1_000_000:
                raise ModelError(f"{name} must be an integer in [1, 1000000], got {v!r:.40}")
        if self.max_candidates < 1 or self.max_detections < 1:
            raise ModelError(f"max_candidates and max_detections must be >= 1, got "
                             f"{self.max_candidates} and {self.max_detections}")


class InstanceOutputs:
    """A batch of raw head outputs; ``outputs[i]`` is image i's ``{name: array}`` (batch axis dropped)."""

    def __init__(self, arrays: Mapping[str, np.ndarray]) -> None:
        self.arrays = dict(arrays)

    def __len__(self) -> int:
        return int(next(iter(self.arrays.values())).shape[0])

    def __getitem__(self, i: int) -> dict[str, np.ndarray]:
        return {k: v[i] for k, v in self.arrays.items()}


def _f32(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a if a.dtype in (np.float32, np.float16) else a.astype(np.float32))


def _f32_view(a: np.ndarray) -> np.ndarray:
    """float32/float16 as is (strided views are read in place by the C++ decode), else float32."""
    return a if a.dtype in (np.float32, np.float16) else a.astype(np.float32)


def postprocess_instances(output: Mapping[str, np.ndarray], info: "ops.LetterboxInfo",
                          thresholds: InstanceThresholds | None = None, crop_offset: float = 0.0) -> dict[str, Any]:
    """One image's raw head outputs -> detections at frame resolution.

    ``output`` maps "boxes" (A, 4) xyxy input pixels, "scores" (A, C) class probabilities,
    "coeffs" (A, K) and "protos" (K, h, w). Returns ``{"boxes" (N, 4) f32 frame pixels,
    "scores" (N,), "class_ids" (N,) int32, "masks": MaskSet}``, ordered by descending score.
    """
    t = thresholds or InstanceThresholds()
    try:
        boxes, scores, coeffs, protos = (output[k] for k in OUTPUTS)
    except KeyError as e:
        raise ModelError(f"instance model output {e} missing; got {sorted(output)}") from None
    if boxes.ndim != 2 or boxes.shape[1] != 4 or scores.ndim != 2 or coeffs.ndim != 2 or protos.ndim != 3 \
            or not len(boxes) == len(scores) == len(coeffs) or coeffs.shape[1] != protos.shape[0]:
        raise ModelError("instance model outputs have inconsistent shapes: boxes "
                         f"{boxes.shape}, scores {scores.shape}, coeffs {coeffs.shape}, protos {protos.shape}; "
                         "expected (A, 4), (A, C), (A, K), (K, h, w)")
    idx, cls, sc = ops.select_detections(
        _f32_view(boxes), _f32_view(scores), iou_threshold=t.iou, score_threshold=t.score,
        max_candidates=t.max_candidates, max_detections=t.max_detections, class_agnostic=t.class_agnostic)
    fboxes = info.to_frame(np.asarray(boxes[idx], np.float32))
    # A mask covers the frame pixels whose centre lies in its box; ``crop_offset`` 0.5 makes that
    # "whose index lies in the box" (x0 <= x < x1), the crop rule of Ultralytics' masks.
    crop = fboxes + np.float32(crop_offset) if crop_offset else fboxes
    masks = ops.assemble_masks(np.ascontiguousarray(coeffs[idx], np.float32), _f32(protos), crop,
                               info.src_hw, letterbox=info, threshold=t.mask)
    return {"boxes": fboxes, "scores": np.asarray(sc, np.float32), "class_ids": np.asarray(cls, np.int32),
            "masks": masks}


class InstancePredictor(Predictor):
    """Runs an instance segmentation model (YOLO-seg style raw heads) on BGR uint8 frames.

    Build it with :func:`edgeseg.load`. Calling it on a frame returns an
    :class:`~edgeseg.runtime.results.InstanceResult` (boxes in frame pixels, scores, class ids,
    box-local masks, per-stage timings). ``thresholds`` (score, iou, mask, max_detections, ...)
    can be changed at any time.
    """

    task = "instance"
    roles = OUTPUTS

    def __init__(self, backend: Backend, meta: ModelMeta, **thresholds: Any) -> None:
        super().__init__(backend, meta)
        self.thresholds = InstanceThresholds.for_model(meta, **thresholds)
        self._graph_nms = bool(meta.extra.get("graph_nms"))  # rows already suppressed in the graph
        self._crop_offset = float(meta.extra.get("mask_crop_offset", 0.0))
        self._drop_empty = bool(meta.extra.get("drop_empty_masks"))  # detections whose mask is empty

    def infer(self, tensor: np.ndarray) -> InstanceOutputs:
        """Stage 2: run the backend -> raw head outputs (index ``[i]`` for image i)."""
        return InstanceOutputs(self.run(tensor))

    def post(self, output: Mapping[str, np.ndarray], info: "ops.LetterboxInfo") -> dict[str, Any]:
        """Stage 3: one image's raw outputs -> detections (boxes, scores, class_ids, masks)."""
        t = self.thresholds
        if self._graph_nms and t.iou < 1.0:
            t = replace(t, iou=1.0)  # NMS already ran in the graph: an IoU of 1 suppresses nothing
        out = postprocess_instances(output, info, t, self._crop_offset)
        if self._drop_empty and len(out["scores"]):
            keep = np.flatnonzero(out["masks"].areas() > 0)
            if len(keep) < len(out["scores"]):
                out = {"boxes": out["boxes"][keep], "scores": out["scores"][keep],
                       "class_ids": out["class_ids"][keep], "masks": out["masks"].select(keep)}
        return out

    def make_result(self, payload: dict[str, Any], frame: np.ndarray, timings: dict[str, float]) -> InstanceResult:
        return InstanceResult(frame=frame, meta=self.meta, timings=timings, **payload)


register_kind(ModelKind(
    name="yoloseg", task="instance", head=None, predictor=InstancePredictor,
    describe_outputs=lambda m: f"prototypes at 1/{m.output_stride}",
    parity="edgeseg.export.parity:check_instance_parity",
    train_hooks="edgeseg.train.hooks_yoloseg:YoloSegHooks",
))
