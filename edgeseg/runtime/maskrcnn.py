"""MaskRCNNPredictor: runs a two-stage instance model that ends in post-NMS detections.

The output convention (what ``edgeseg export`` writes for ``maskrcnn``, and what detectron2 /
mmdeploy-style Mask R-CNN exports produce), for one input image, ``K`` detections::

    boxes  (K, 4) float   x0, y0, x1, y1 in network-input pixels
    labels (K,)   int     class index into the model's class list
    scores (K,)   float   detection score
    masks  (K, Mh, Mw) or (K, 1, Mh, Mw) float   mask probabilities over each box (e.g. 28 x 28)

An optional leading batch axis of 1 is accepted, and a ``dets`` output (K, 5) = box + score
(mmdeploy) may stand in for ``boxes`` + ``scores``. The predictor letterboxes the frame, runs the
graph, drops detections below the score threshold, re-applies class-aware NMS when the caller asks
for a stricter IoU than the graph used, maps the boxes through the letterbox back to the frame and
pastes each RoI mask into its box at frame resolution with the C++ ``ops.paste_masks``
(box-local, detectron2 semantics), returning the same :class:`InstanceResult` as the single-stage
path. A graph following the convention without edgeseg metadata runs when the user supplies the
class names, the input size (unless static in the graph) and mean/std
(:func:`maskrcnn_meta_from_graph`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from .. import ops
from ..errors import ModelError
from ..meta import ModelMeta
from .backends import Backend, TensorSpec
from .instance import InstanceThresholds
from .predictor import Predictor
from .results import InstanceResult

#: The output roles of the convention, in the order edgeseg's export writes them.
OUTPUTS = ("boxes", "labels", "scores", "masks")
#: ``meta.extra["head"]`` of models that follow this convention.
HEAD = "maskrcnn"
#: Substrings that identify an output's role by its name (checked in this order).
_NAME_HINTS = (("masks", ("mask",)), ("labels", ("label", "class")), ("scores", ("score", "conf", "prob")),
               ("boxes", ("box", "det", "bbox")))


def is_maskrcnn_meta(meta: ModelMeta) -> bool:
    """Whether ``meta`` describes a model with the Mask R-CNN output convention."""
    return meta.task == "instance" and meta.extra.get("head") == HEAD


def _rank(spec: TensorSpec) -> int:
    """Rank without a leading static batch axis of 1."""
    n = len(spec.shape)
    return n - 1 if n >= 2 and spec.static_dim(0) == 1 else n


def output_roles(specs: Sequence[TensorSpec], names: Sequence[str] | None = None) -> dict[str, str] | None:
    """Map the convention's roles to output names: ``{"boxes", "labels", "scores", "masks"} ->
    name`` (``scores`` may be missing when ``boxes`` has 5 columns). ``names`` (the metadata's
    output names, in role order) win; otherwise roles come from the output names (``*box*``,
    ``*label*``...) and then from ranks and dtypes. None when the outputs do not follow the
    convention."""
    by_name = {s.name: s for s in specs}
    if names is not None and len(names) == len(OUTPUTS) and all(n in by_name for n in names):
        return dict(zip(OUTPUTS, names))
    roles: dict[str, str] = {}
    for s in specs:  # by name
        low = s.name.lower()
        for role, hints in _NAME_HINTS:
            if role not in roles and any(h in low for h in hints):
                roles[role] = s.name
                break
    if not _complete(roles, by_name):
        roles = {}
        for s in specs:  # by rank / dtype (a leading batch axis of 1 allowed)
            r, kind = _rank(s), s.dtype.kind
            if kind == "f" and r in (3, 4) and "masks" not in roles:
                roles["masks"] = s.name
            elif kind == "f" and r == 2 and "boxes" not in roles:
                roles["boxes"] = s.name
            elif kind in "iu" and r == 1 and "labels" not in roles:
                roles["labels"] = s.name
            elif kind == "f" and r == 1 and "scores" not in roles:
                roles["scores"] = s.name
    return roles if _complete(roles, by_name) else None


def _complete(roles: dict[str, str], by_name: Mapping[str, TensorSpec]) -> bool:
    if not {"boxes", "labels", "masks"} <= set(roles):
        return False
    if "scores" in roles:
        return True
    return by_name[roles["boxes"]].static_dim(-1) == 5  # dets: box + score


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
    (H, W), (rh, rw) = info.src_hw, info.resized_hw
    fb = np.empty((len(keep), 4), np.float32)  # unclipped: each mask was predicted over its whole box
    fb[:, 0::2] = (boxes[keep, 0::2] - info.pad_left) * (W / rw)
    fb[:, 1::2] = (boxes[keep, 1::2] - info.pad_top) * (H / rh)
    m = masks[keep]
    m = np.ascontiguousarray(m if m.dtype in (np.float32, np.float16) else m.astype(np.float32))
    pasted = ops.paste_masks(m, fb, (H, W), threshold=t.mask)
    np.clip(fb[:, 0::2], 0, W, out=fb[:, 0::2])
    np.clip(fb[:, 1::2], 0, H, out=fb[:, 1::2])
    return {"boxes": fb, "scores": scores[keep], "class_ids": labels[keep].astype(np.int32), "masks": pasted}


class MaskRCNNPredictor(Predictor):
    """Runs a Mask R-CNN style model (post-NMS boxes, labels, scores and RoI masks) on BGR uint8
    frames; returns :class:`~edgeseg.runtime.results.InstanceResult`. Build it with
    :func:`edgeseg.load`. ``thresholds`` (score, iou, mask, max_detections) can be changed at any
    time; the graph's own score threshold and NMS come first (``meta.extra["graph_*"]``). The
    graph takes one image, so ``predict_batch`` runs frame by frame."""

    task = "instance"

    def __init__(self, backend: Backend, meta: ModelMeta, **thresholds: Any) -> None:
        super().__init__(backend, meta)
        roles = output_roles(backend.output_specs, meta.output_names)
        if roles is None:
            raise ModelError(f"{backend.path}: outputs {[s.name for s in backend.output_specs]} do not follow the "
                             "Mask R-CNN convention: boxes (K, 4), labels (K,), scores (K,), masks (K, Mh, Mw)")
        self._names = roles
        self.thresholds = InstanceThresholds.for_model(meta, **thresholds)
        self._graph_iou = meta.extra.get("graph_nms_iou")
        self._batch_dynamic = False  # the detections have no batch axis

    def infer(self, tensor: np.ndarray) -> list[dict[str, np.ndarray]]:
        """Stage 2: run the backend on one image -> ``[{role: array}]``."""
        if tensor.shape[0] != 1:
            raise ModelError(f"a Mask R-CNN graph takes one image at a time, got a batch of {tensor.shape[0]}")
        out = self.backend.infer({self._in.name: tensor})
        return [{k: out[n] for k, n in self._names.items()}]

    def post(self, output: Mapping[str, np.ndarray], info: "ops.LetterboxInfo") -> dict[str, Any]:
        """Stage 3: one image's detections -> frame boxes, scores, class ids, pasted masks."""
        return postprocess_maskrcnn(output, info, self.thresholds, self.meta.num_classes, self._graph_iou)

    def make_result(self, payload: dict[str, Any], frame: np.ndarray, timings: dict[str, float]) -> InstanceResult:
        return InstanceResult(frame=frame, meta=self.meta, timings=timings, **payload)


def maskrcnn_meta_from_graph(backend: Backend, facts: Mapping[str, Any]) -> ModelMeta | None:
    """ModelMeta for a model without edgeseg metadata whose outputs follow the Mask R-CNN
    convention (None if they do not). ``facts``: ``classes`` (or ``num_classes``), ``input_size``
    (read from the graph when static), ``mean``/``std`` - required, since none can be read from
    the graph - and optional ``palette``. Raises ModelError listing what is missing."""
    from .predictor import _HOW, _check_size

    ins, outs = backend.input_specs, backend.output_specs
    roles = output_roles(outs)
    if not ins or roles is None:
        return None
    where = str(backend.path)
    inp = ins[0]
    if len(inp.shape) != 4 or inp.static_dim(1) not in (None, 3):
        raise ModelError(f"{where}: input {inp.name!r} has shape {inp.shape}; edgeseg needs an NCHW image input "
                         "with 3 channels")
    names = facts.get("classes")
    n = facts.get("num_classes")
    if names is not None:
        names = [str(c) for c in names]
        if n is not None and int(n) != len(names):
            raise ModelError(f"num_classes={n} but {len(names)} class names were given")
    elif n is not None:
        names = [f"class_{i}" for i in range(int(n))]
    size = facts.get("input_size")
    if size is not None:
        _check_size(tuple(size), inp, where)
    elif inp.static_dim(2) and inp.static_dim(3):
        size = (inp.static_dim(2), inp.static_dim(3))
    how = dict(_HOW, classes=_HOW["classes"] + "; the labels index into this list (put a background class "
                                              "first if the model counts it as 0)")
    missing = [k for k, have in (("classes", names is not None), ("input_size", size is not None),
                                 ("mean/std", "mean" in facts and "std" in facts)) if not have]
    if missing:
        lines = "\n".join(f"  - {k}: pass {how[k]}" for k in missing)
        raise ModelError(f"{where} looks like a Mask R-CNN (outputs {sorted(roles.values())}) but carries no "
                         f"edgeseg metadata, and these facts cannot be read from it:\n{lines}")
    return ModelMeta(task="instance", classes=names, input_size=size, arch=Path(where).stem, mean=facts["mean"],
                     std=facts["std"], output_stride=0, input_name=inp.name,
                     output_names=[roles[r] for r in OUTPUTS if r in roles],
                     palette=facts.get("palette") or [], dynamic=inp.static_dim(2) is None or inp.static_dim(3) is None,
                     extra={"head": HEAD, "source": "user-supplied facts (no edgeseg metadata in the model)"})
