"""Mask R-CNN style outputs: post-NMS detections with RoI masks (what ``edgeseg export`` writes for
``maskrcnn``, and what detectron2 / mmdeploy-style Mask R-CNN exports produce), for one image::

    boxes  (K, 4) float   x0, y0, x1, y1 in network-input pixels
    labels (K,)   int     class index into the model's class list
    scores (K,)   float   detection score
    masks  (K, Mh, Mw) or (K, 1, Mh, Mw) float   mask probabilities over each box (e.g. 28 x 28)

An optional leading batch axis of 1 is accepted, and a ``dets`` output (K, 5) = box + score
(mmdeploy) may stand in for ``boxes`` + ``scores``. Without edgeseg metadata the user supplies the
class names, the input size (unless static) and mean/std.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ...meta import ModelMeta
from ..backends import TensorSpec
from .base import HOW, Convention, GraphView, classes_from, image_input, input_extra, input_size_from, \
    normalisation, require

#: The output roles of the convention, in the order edgeseg's export writes them.
OUTPUTS = ("boxes", "labels", "scores", "masks")
#: ``meta.extra["head"]`` of models that follow this convention.
HEAD = "maskrcnn"
#: Substrings that identify an output's role by its name (checked in this order).
_NAME_HINTS = (("masks", ("mask",)), ("labels", ("label", "class")), ("scores", ("score", "conf", "prob")),
               ("boxes", ("box", "det", "bbox")))


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
    if names is not None and all(n in by_name for n in names):
        if len(names) == len(OUTPUTS):
            return dict(zip(OUTPUTS, names))
        if len(names) == 3 and by_name[names[0]].static_dim(-1) == 5:
            return dict(zip(("boxes", "labels", "masks"), names))
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


class MaskRCNNConvention(Convention):
    name = "maskrcnn"
    kind = "maskrcnn"
    summary = "post-NMS boxes, labels, scores and RoI masks (detectron2 / mmdeploy / torchvision-style Mask R-CNN)"
    example = ("edgeseg.load('mask_rcnn.onnx', classes=['__background__', 'person', ...], "
               "mean=(123.675, 116.28, 103.53), std=(58.395, 57.12, 57.375))")

    def detect(self, graph: GraphView, facts: dict[str, Any]) -> ModelMeta | None:
        roles = output_roles(graph.outputs)
        if not graph.inputs or roles is None:
            return None
        where = str(graph.path)
        img = image_input(graph, facts)
        names = classes_from(facts, None, where)
        size = input_size_from(facts, img, where)
        norm = normalisation(facts, img)
        how = dict(HOW, classes=HOW["classes"] + "; the labels index into this list (put a background class "
                                                 "first if the model counts it as 0)")
        missing = [k for k, have in (("classes", names is not None), ("input_size", size is not None),
                                     ("mean/std", norm is not None)) if not have]
        require(where, f"looks like a Mask R-CNN (outputs {sorted(roles.values())}) but carries no edgeseg metadata",
                missing, how)
        assert names is not None and size is not None and norm is not None
        return ModelMeta(task="instance", classes=names, input_size=size, arch=Path(where).stem, mean=norm[0],
                         std=norm[1], output_stride=0, input_name=img.spec.name, layout=img.layout,
                         output_names=[roles[r] for r in OUTPUTS if r in roles],
                         palette=facts.get("palette") or [], dynamic=img.dynamic,
                         extra={"head": HEAD, "convention": self.name, **input_extra(facts, img),
                                "source": "user-supplied facts (no edgeseg metadata in the model)"})

    def adapt(self, outputs: Mapping[str, np.ndarray], meta: ModelMeta, roles: tuple[str, ...]) -> dict[str, np.ndarray]:
        names = list(meta.output_names)
        order = OUTPUTS if len(names) == 4 else ("boxes", "labels", "masks")
        return {r: outputs[n] for r, n in zip(order, names)}
