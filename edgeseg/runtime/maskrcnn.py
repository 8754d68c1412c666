"""MaskRCNNPredictor: runs a two-stage instance model that ends in post-NMS detections (the output
convention is described in :mod:`edgeseg.runtime.conventions.maskrcnn`).

The predictor letterboxes the frame, runs the graph, drops detections below the score threshold,
re-applies class-aware NMS when the caller asks for a stricter IoU than the graph used, maps the
boxes through the letterbox back to the frame and pastes each RoI mask into its box at frame
resolution with the C++ ``ops.paste_masks`` (box-local, detectron2 semantics), returning the same
:class:`InstanceResult` as the single-stage path.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from .. import ops
from ..errors import ModelError
from ..geometry import clip_boxes
from ..meta import ModelMeta
from .backends import Backend
from .base import Predictor
from .conventions.maskrcnn import HEAD, OUTPUTS, output_roles
from .instance import InstanceThresholds
from .kinds import ModelKind, register_kind
from .results import InstanceResult


def _take(a: np.ndarray, ndim: int) -> np.ndarray:
    return a[0] if a.ndim == ndim + 1 and a.shape[0] == 1 else a


def postprocess_maskrcnn(output: Mapping[str, np.ndarray], info: "ops.LetterboxInfo",
                         thresholds: InstanceThresholds | None = None, num_classes: int | None = None,
                         graph_iou: float | None = None) -> dict[str, Any]:
    """One image's detections (roles of :data:`OUTPUTS`) -> detections at frame resolution.

    Keeps ``score > thresholds.score``; re-runs class-aware NMS when ``thresholds.iou`` is below
    ``graph_iou`` (the IoU the graph already applied; None: unknown, always re-run - a no-op for
    a stricter graph); at most ``thresholds.max_detections`` by descending score. Masks are pasted
    into the frame boxes with ``ops.paste_masks`` at ``thresholds.mask``. Returns
    ``{"boxes" (N, 4) f32 frame pixels, "scores" (N,), "class_ids" (N,) int32, "masks": MaskSet}``.
    """
    t = thresholds or InstanceThresholds()
    try:
        boxes, labels, masks = (np.asarray(output[k]) for k in ("boxes", "labels", "masks"))
    except KeyError as e:
        raise ModelError(f"Mask R-CNN output {e} missing; got {sorted(output)}") from None
    boxes, labels = _take(boxes, 2), _take(labels, 1)
    if masks.ndim == 5 or (masks.ndim == 4 and masks.shape[1] != 1 and masks.shape[0] == 1):
        masks = masks[0]
    if masks.ndim == 4:
        masks = masks[:, 0] if masks.shape[1] == 1 else masks
    scores = _take(np.asarray(output["scores"]), 1) if "scores" in output else None
    if scores is None and boxes.ndim == 2 and boxes.shape[1] == 5:
        boxes, scores = boxes[:, :4], boxes[:, 4]
    k = len(boxes)
    if (boxes.ndim != 2 or boxes.shape[1] != 4 or scores is None or scores.shape != (k,) or labels.shape != (k,)
            or masks.ndim != 3 or len(masks) != k):
        raise ModelError("Mask R-CNN outputs have inconsistent shapes: boxes "
                         f"{np.shape(output['boxes'])}, labels {np.shape(output['labels'])}, scores "
                         f"{None if scores is None else scores.shape}, masks {np.shape(output['masks'])}; expected "
                         "(K, 4), (K,), (K,), (K, Mh, Mw) or (K, 1, Mh, Mw)")
    if labels.dtype.kind not in "iu":
        labels = labels.astype(np.int64)
    if num_classes is not None and k and (labels.min() < 0 or labels.max() >= num_classes):
        raise ModelError(f"the model returned class index {int(labels.max())} (or {int(labels.min())}) but "
                         f"{num_classes} classes are known; pass the full class list the model indexes into "
                         "(for a model whose labels count the background as 0, include it first, e.g. "
                         "classes=['__background__', ...])")
    boxes = np.ascontiguousarray(boxes, np.float32)
    scores = np.ascontiguousarray(scores, np.float32)
    iou = t.iou if graph_iou is None or t.iou < graph_iou else 1.0  # 1.0: NMS suppresses nothing
    keep = ops.nms(boxes, scores, np.ascontiguousarray(labels, np.int64), iou_threshold=iou,
                   score_threshold=t.score, max_candidates=max(k, 1), max_detections=t.max_detections,
                   class_agnostic=t.class_agnostic)
    H, W = info.src_hw
    fb = info.to_frame(boxes[keep], clip=False)  # unclipped: each mask was predicted over its whole box
    m = masks[keep]
    m = np.ascontiguousarray(m if m.dtype in (np.float32, np.float16) else m.astype(np.float32))
    pasted = ops.paste_masks(m, fb, (H, W), threshold=t.mask)
    clip_boxes(fb, (H, W))
    return {"boxes": fb, "scores": scores[keep], "class_ids": labels[keep].astype(np.int32), "masks": pasted}


class MaskRCNNPredictor(Predictor):
    """Runs a Mask R-CNN style model (post-NMS boxes, labels, scores and RoI masks) on BGR uint8
    frames; returns :class:`~edgeseg.runtime.results.InstanceResult`. Build it with
    :func:`edgeseg.load`. ``thresholds`` (score, iou, mask, max_detections) can be changed at any
    time; the graph's own score threshold and NMS come first (``meta.extra["graph_*"]``). The
    graph takes one image, so ``predict_batch`` runs frame by frame."""

    task = "instance"
    roles = OUTPUTS

    def __init__(self, backend: Backend, meta: ModelMeta, **thresholds: Any) -> None:
        super().__init__(backend, meta)
        if output_roles(backend.output_specs, meta.output_names) is None:
            raise ModelError(f"{backend.path}: outputs {[s.name for s in backend.output_specs]} do not follow the "
                             "Mask R-CNN convention: boxes (K, 4), labels (K,), scores (K,), masks (K, Mh, Mw)")
        self.thresholds = InstanceThresholds.for_model(meta, **thresholds)
        self._graph_iou = meta.extra.get("graph_nms_iou")
        self._batch_dynamic = False  # the detections have no batch axis

    def infer(self, tensor: np.ndarray) -> list[dict[str, np.ndarray]]:
        """Stage 2: run the backend on one image -> ``[{role: array}]``."""
        if tensor.shape[0] != 1:
            raise ModelError(f"a Mask R-CNN graph takes one image at a time, got a batch of {tensor.shape[0]}")
        return [self.run(tensor)]

    def post(self, output: Mapping[str, np.ndarray], info: "ops.LetterboxInfo") -> dict[str, Any]:
        """Stage 3: one image's detections -> frame boxes, scores, class ids, pasted masks."""
        return postprocess_maskrcnn(output, info, self.thresholds, self.meta.num_classes, self._graph_iou)

    def make_result(self, payload: dict[str, Any], frame: np.ndarray, timings: dict[str, float]) -> InstanceResult:
        return InstanceResult(frame=frame, meta=self.meta, timings=timings, **payload)


register_kind(ModelKind(
    name="maskrcnn", task="instance", head=HEAD, predictor=MaskRCNNPredictor,
    describe_outputs=lambda m: "28x28 RoI masks",
    parity="edgeseg.export.parity:check_maskrcnn_parity",
    train_hooks="edgeseg.train.hooks_maskrcnn:MaskRCNNHooks",
))
