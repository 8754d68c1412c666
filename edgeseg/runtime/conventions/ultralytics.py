"""Ultralytics YOLO segmentation exports: YOLOv8 / YOLO11 / YOLO26-seg, YOLOv5-seg and end-to-end
(``nms=True``, or YOLO26-seg's one-to-one head) ONNX files, decoded as Ultralytics' predictor does.

Outputs (``M`` prototype channels, usually 32; ``nc`` classes; ``A`` anchors)::

    v8 / 11:   output0 (B, 4 + nc + M, A)  cx, cy, w, h (input pixels), class scores (already
                                            sigmoid), mask coefficients
    v5:        output0 (B, A, 5 + nc + M)  cx, cy, w, h, objectness, class scores, coefficients
    end2end:   output0 (B, K, 6 + M)       x0, y0, x1, y1, score, class, coefficients (post-NMS)
    all:       output1 (B, M, H/4, W/4)    mask prototypes

``metadata_props`` hold Python-literal strings (``names``, ``imgsz``, ``stride``, ``args``,
``end2end``; ``task`` and ``head`` are plain text), read here with a literal-only parser. Inputs
are RGB scaled to 0..1, resized by OpenCV into uint8 and letterboxed with grey 114 (exactly the
pixels Ultralytics feeds); thresholds default to Ultralytics' (confidence 0.25, IoU 0.7, 300
detections, 30000 candidates before NMS). Masks are assembled inside each box at frame resolution
by edgeseg's C++ code (what ``retina_masks=True`` computes), cropped by pixel index
(x0 <= x < x1), and detections whose mask is empty are dropped, as Ultralytics does.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ...errors import ModelError
from ...meta import ModelMeta
from .base import Convention, GraphView, image_input, input_extra, input_size_from, parse_literal, \
    parse_pair, require

#: Ultralytics' predictor defaults.
CONF, IOU, MAX_DET, MAX_NMS = 0.25, 0.7, 300, 30000
#: Strides of the detection levels (P3, P4, P5).
STRIDES = (8, 16, 32)


def _anchors(size: tuple[int, int], per_cell: int = 1) -> int:
    h, w = size
    return per_cell * sum(-(-h // s) * -(-w // s) for s in STRIDES)


def _props(graph: GraphView) -> dict[str, Any]:
    """The literal-parsed Ultralytics metadata (empty when the file has none)."""
    where, out = str(graph.path), {}
    for key in ("task", "head", "author"):  # written as plain text (str() of a str)
        if key in graph.props:
            out[key] = str(graph.props[key]).strip()
    for key in ("names", "imgsz", "stride", "args", "end2end", "batch", "channels"):  # str() of Python values
        if key in graph.props:
            out[key] = parse_literal(graph.props[key], key, where)
    if "channels" in out and out["channels"] != 3:
        raise ModelError(f"{where}: an Ultralytics model for {out['channels']}-channel input; edgeseg feeds 3-channel "
                         "colour images")
    names = out.get("names")
    if names is not None:
        if isinstance(names, dict) and all(isinstance(k, int) for k in names):
            if sorted(names) != list(range(len(names))):
                raise ModelError(f"{where}: metadata 'names' must be numbered 0..{len(names) - 1}, got keys "
                                 f"{sorted(names)[:10]}")
            out["names"] = [str(names[i]) for i in range(len(names))]
        elif isinstance(names, (list, tuple)):
            out["names"] = [str(n) for n in names]
        else:
            raise ModelError(f"{where}: metadata 'names' must be a dict {{index: name}} or a list, got "
                             f"{type(names).__name__}")
    if "imgsz" in out:
        out["imgsz"] = parse_pair(out["imgsz"], "metadata 'imgsz'")
    if "args" in out and not isinstance(out["args"], dict):
        raise ModelError(f"{where}: metadata 'args' must be a dict, got {type(out['args']).__name__}")
    return out


class UltralyticsConvention(Convention):
    name = "ultralytics"
    kind = "yoloseg"
    summary = ("Ultralytics YOLOv8 / YOLO11 / YOLOv5 / YOLO26 segmentation ONNX (output0 + output1 prototypes); "
               "classes, input size and normalisation read from the file")
    example = "edgeseg.load('yolo11n-seg.onnx')"

    def detect(self, graph: GraphView, facts: dict[str, Any]) -> ModelMeta | None:
        if graph.props.get("author", "").startswith("Ultralytics") and graph.props.get("task", "segment") != "segment":
            raise ModelError(f"{graph.path} is an Ultralytics {graph.props['task']!r} model; edgeseg runs segmentation "
                             "models (export a '-seg' model, task 'segment')")
        dets = [o for o in graph.outputs if len(o.shape) == 3 and o.dtype.kind == "f"]
        protos = [o for o in graph.outputs if len(o.shape) == 4 and o.dtype.kind == "f"]
        if len(graph.outputs) != 2 or len(dets) != 1 or len(protos) != 1 or protos[0].static_dim(1) is None:
            return None
        det, proto = dets[0], protos[0]
        m = int(proto.static_dim(1))
        where = str(graph.path)
        props = _props(graph)
        task = props.get("task")
        if task is not None and task != "segment":
            raise ModelError(f"{where} is an Ultralytics {task!r} model; edgeseg runs segmentation models "
                             "(export a '-seg' model, task 'segment')")
        img = image_input(graph, facts)
        size = input_size_from(facts, img, where) or props.get("imgsz")
        names = props.get("names")
        variant, nc = self._variant(det, m, size, names, props)
        if variant is None:
            return None
        official = "names" in props and ("stride" in props or "imgsz" in props)
        if names is None and nc is not None:
            names = [f"class_{i}" for i in range(nc)]
        if facts.get("classes") is not None or facts.get("num_classes") is not None:
            given = facts.get("classes") or [f"class_{i}" for i in range(int(facts["num_classes"]))]
            if names is not None and len(given) != len(names):
                raise ModelError(f"{where} detects {len(names)} classes, but {len(given)} were given")
            names = [str(c) for c in given]
        norm = (facts.get("mean", (0.0, 0.0, 0.0)), facts.get("std", (255.0, 255.0, 255.0))) if official \
            else ((facts["mean"], facts["std"]) if "mean" in facts and "std" in facts else None)
        missing = [k for k, have in (("classes", names is not None), ("input_size", size is not None),
                                     ("mean/std", norm is not None)) if not have]
        require(where, f"has YOLO-seg outputs ({variant}) but no Ultralytics metadata", missing)
        assert names is not None and size is not None and norm is not None
        extra: dict[str, Any] = {
            "convention": self.name, "variant": variant, "score_threshold": CONF, "iou_threshold": IOU,
            "max_detections": MAX_DET, "max_candidates": MAX_NMS, "mask_crop_offset": 0.5, "drop_empty_masks": True, "resize": "opencv-uint8", **input_extra(facts, img),
            "source": "Ultralytics metadata" if official else "YOLO-seg output shapes + user-supplied facts"}
        if variant == "end2end":
            extra["graph_nms"] = True
        return ModelMeta(task="instance", classes=names, input_size=size, arch=Path(where).stem, mean=norm[0],
                         std=norm[1], output_stride=4, input_name=img.spec.name, layout=img.layout,
                         output_names=[det.name, proto.name], palette=facts.get("palette") or [],
                         dynamic=img.dynamic, extra=extra)

    @staticmethod
    def _variant(det: Any, m: int, size: tuple[int, int] | None, names: list[str] | None,
                 props: dict[str, Any]) -> tuple[str | None, int | None]:
        """("v8" | "v5" | "end2end", class count) from the detection output's shape."""
        d1, d2 = det.static_dim(1), det.static_dim(2)
        nc = len(names) if names is not None else None
        args = props.get("args") or {}
        end2end = bool(props.get("end2end")) or bool(args.get("nms"))
        if d2 == 6 + m and (end2end or (size is not None and d1 not in (_anchors(size), 3 * _anchors(size)))):
            return "end2end", nc
        if d1 is not None and d1 > 4 + m and (nc is None or d1 == 4 + nc + m) \
                and (size is None or d2 is None or d2 == _anchors(size)):
            return "v8", d1 - 4 - m
        if d2 is not None and d2 > 5 + m and (nc is None or d2 == 5 + nc + m) \
                and (size is None or d1 is None or d1 == _anchors(size, 3)):
            return "v5", d2 - 5 - m
        return None, None

    def adapt(self, outputs: Mapping[str, np.ndarray], meta: ModelMeta, roles: tuple[str, ...]) -> dict[str, np.ndarray]:
        det, protos = (outputs[n] for n in meta.output_names)
        variant, m, nc = meta.extra.get("variant"), protos.shape[1], meta.num_classes
        if variant == "v8":
            if det.shape[1] != 4 + nc + m:
                raise ModelError(f"output0 has {det.shape[1]} rows; a YOLO-seg model with {nc} classes and {m} "
                                 f"prototypes has {4 + nc + m}")
            rows = det.transpose(0, 2, 1)  # (B, A, 4 + nc + m) view: scores/coeffs read through strides
            boxes, scores, coeffs = _xyxy(rows[..., :4]), rows[..., 4:4 + nc], rows[..., 4 + nc:]
        elif variant == "v5":
            if det.shape[2] != 5 + nc + m:
                raise ModelError(f"output0 has {det.shape[2]} columns; a YOLOv5-seg model with {nc} classes and "
                                 f"{m} prototypes has {5 + nc + m}")
            boxes, coeffs = _xyxy(det[..., :4]), det[..., 5 + nc:]
            scores = det[..., 5:5 + nc] * det[..., 4:5]  # objectness x class probability
        elif variant == "end2end":
            if det.shape[2] != 6 + m:
                raise ModelError(f"output0 has {det.shape[2]} columns; an end-to-end YOLO-seg model has {6 + m}")
            boxes, coeffs = det[..., :4], det[..., 6:]
            cls = np.rint(det[..., 5]).astype(np.int64)
            if cls.size and (cls.min() < 0 or cls.max() >= nc):
                raise ModelError(f"the model returned class index {int(cls.max())} (or {int(cls.min())}) but {nc} "
                                 "classes are known")
            scores = np.zeros(det.shape[:2] + (nc,), np.float32)  # one score per row, at its class
            np.put_along_axis(scores, cls[..., None], det[..., 4:5].astype(np.float32), axis=2)
        else:
            raise ModelError(f"unknown Ultralytics output variant {variant!r} in the model's metadata")
        return {"boxes": boxes, "scores": scores, "coeffs": coeffs, "protos": protos}


def _xyxy(cxcywh: np.ndarray) -> np.ndarray:
    """(..., 4) centre x, centre y, width, height -> x0, y0, x1, y1 (float32)."""
    c = cxcywh.astype(np.float32, copy=False)
    half = c[..., 2:4] * 0.5
    return np.concatenate([c[..., 0:2] - half, c[..., 0:2] + half], axis=-1)
