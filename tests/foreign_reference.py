"""Slow, obviously-correct numpy references of other tools' post-processing.

Written from the tools' documented behaviour (Ultralytics predict docs and the Results/Masks
description; segmentation_models_pytorch / torchvision / mmseg / PaddleSeg inference recipes), and
checked against what those tools themselves output (tests/fixtures/foreign/*.expected.npz, made by
tools/make_foreign_fixtures.py). Only numpy and OpenCV: no torch, no Ultralytics.

Ultralytics YOLO-seg, as its predictor documents and does:
- letterbox the BGR frame to the model's fixed input: scale r = min(H/h, W/w), resize (bilinear)
  to (round(w r), round(h r)), centre with constant 114 padding (the odd pixel of an odd padding on
  the bottom/right), BGR -> RGB, 0..1, CHW;
- YOLOv8/YOLO11 head: rows (4 + nc + 32) x anchors; cx, cy, w, h in input pixels; class scores
  already sigmoided; a candidate when its best class score > conf; class-aware NMS (boxes offset by
  class x 7680) at IoU > iou, greedy by score; at most max_det;
- YOLOv5 head: anchors x (5 + nc + 32) with objectness; score = objectness x class score;
- end-to-end heads (YOLO26 default, nms=True exports): rows (x1, y1, x2, y2, score, class, 32
  coefficients), already suppressed; only the conf threshold and max_det apply;
- boxes back to the frame: minus the padding, divided by each axis' gain (resized / frame
  size), clipped to the frame;
- retina masks: the logits coefficients x prototypes, upsampled (bilinear) by the smallest factor
  in 1, 2, 4 that puts the letterbox padding on whole pixels, the padding cut off, resized
  bilinearly (half-pixel centres) to the frame size; logit > 0 (= sigmoid > 0.5); zero outside the
  box (pixel x kept when x1 <= x < x2, likewise y); a detection whose mask ends up empty is dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

MAX_WH = 7680.0  # class offset for class-aware NMS (larger than any image side)


@dataclass
class Letterbox:
    """How a frame was placed in the model input: scale and integer padding (left, top)."""

    scale: float
    left: int
    top: int
    new_w: int
    new_h: int
    in_h: int
    in_w: int
    frame_h: int
    frame_w: int


def letterbox(frame_bgr: np.ndarray, size_hw: tuple[int, int], pad_value: int = 114):
    """Ultralytics-style letterbox. Returns (1, 3, H, W) float32 RGB 0..1 and its Letterbox."""
    h, w = frame_bgr.shape[:2]
    H, W = size_hw
    r = min(H / h, W / w)
    nw, nh = int(round(w * r)), int(round(h * r))
    dw, dh = (W - nw) / 2.0, (H - nh) / 2.0
    img = frame_bgr if (nw, nh) == (w, h) else cv2.resize(frame_bgr, (nw, nh), interpolation=cv2.INTER_LINEAR)
    top, left = int(round(dh - 0.1)), int(round(dw - 0.1))  # the odd pixel of an odd pad goes bottom/right
    out = np.full((H, W, 3), pad_value, np.uint8)
    out[top:top + nh, left:left + nw] = img
    x = out[:, :, ::-1].transpose(2, 0, 1)[None].astype(np.float32) / 255.0
    return np.ascontiguousarray(x), Letterbox(r, left, top, nw, nh, H, W, h, w)


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of xyxy boxes (float64)."""
    a = a.astype(np.float64)[:, None]
    b = b.astype(np.float64)[None]
    iw = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    ih = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = iw * ih
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    return inter / np.maximum(area_a + area_b - inter, 1e-12)


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> np.ndarray:
    """Greedy NMS: highest score first, drop every later box with IoU > iou. Returns indices."""
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    suppressed = np.zeros(len(boxes), bool)
    ious = iou_matrix(boxes, boxes)
    for i in order:
        if suppressed[i]:
            continue
        keep.append(int(i))
        suppressed |= ious[i] > iou
    return np.array(keep, np.int64)


@dataclass
class Detections:
    boxes: np.ndarray  # (n, 4) xyxy frame pixels
    scores: np.ndarray  # (n,)
    classes: np.ndarray  # (n,) int
    coeffs: np.ndarray  # (n, 32)
    boxes_input: np.ndarray  # (n, 4) xyxy model-input pixels (before undoing the letterbox)
    masks: np.ndarray | None = None  # (n, frame_h, frame_w) bool


def _cxcywh_to_xyxy(b: np.ndarray) -> np.ndarray:
    cx, cy, w, h = b[:, 0], b[:, 1], b[:, 2], b[:, 3]
    return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1)


def _select(boxes, scores, classes, coeffs, conf, iou, max_det, agnostic=False, max_nms=30000):
    keep = scores > conf
    boxes, scores, classes, coeffs = boxes[keep], scores[keep], classes[keep], coeffs[keep]
    if len(scores) > max_nms:
        top = np.argsort(-scores, kind="stable")[:max_nms]
        boxes, scores, classes, coeffs = boxes[top], scores[top], classes[top], coeffs[top]
    offset = 0.0 if agnostic else classes[:, None].astype(np.float64) * MAX_WH
    k = nms(boxes.astype(np.float64) + offset, scores, iou)[:max_det]
    return boxes[k], scores[k], classes[k], coeffs[k]


def decode_yolov8(output0: np.ndarray, nc: int, conf=0.25, iou=0.7, max_det=300):
    """YOLOv8/YOLO11-seg output0 (1, 4 + nc + nm, A) -> boxes (input px), scores, classes, coeffs."""
    p = output0[0].T.astype(np.float32)  # (A, 4 + nc + nm)
    cls_scores = p[:, 4:4 + nc]
    classes = cls_scores.argmax(1)
    scores = cls_scores.max(1)
    return _select(_cxcywh_to_xyxy(p[:, :4]), scores, classes, p[:, 4 + nc:], conf, iou, max_det)


def decode_yolov5(output0: np.ndarray, nc: int, conf=0.25, iou=0.45, max_det=300):
    """YOLOv5-seg output0 (1, A, 5 + nc + nm): objectness x class score, objectness > conf first."""
    p = output0[0].astype(np.float32)
    p = p[p[:, 4] > conf]
    cls_scores = p[:, 5:5 + nc] * p[:, 4:5]
    classes = cls_scores.argmax(1)
    scores = cls_scores.max(1)
    return _select(_cxcywh_to_xyxy(p[:, :4]), scores, classes, p[:, 5 + nc:], conf, iou, max_det)


def decode_end2end(output0: np.ndarray, conf=0.25, max_det=300):
    """End-to-end output0 (1, N, 6 + nm): x1, y1, x2, y2, score, class, coeffs; already suppressed."""
    p = output0[0].astype(np.float32)
    p = p[p[:, 4] > conf][:max_det]
    return p[:, :4], p[:, 4], p[:, 5].astype(np.int64), p[:, 6:]


def boxes_to_frame(boxes: np.ndarray, lb: Letterbox) -> np.ndarray:
    """Undo the letterbox: minus the padding, divided by each axis' own gain (resized size / frame
    size, which differs from the scale by the rounding of the resized size), clipped to the frame."""
    b = boxes.astype(np.float32).copy()
    b[:, [0, 2]] = (b[:, [0, 2]] - lb.left) / (lb.new_w / lb.frame_w)
    b[:, [1, 3]] = (b[:, [1, 3]] - lb.top) / (lb.new_h / lb.frame_h)
    b[:, [0, 2]] = b[:, [0, 2]].clip(0, lb.frame_w)
    b[:, [1, 3]] = b[:, [1, 3]].clip(0, lb.frame_h)
    return b


def _content_region(h: int, w: int, frame_h: int, frame_w: int) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) of the frame's letterboxed area in an h x w grid (whole pixels)."""
    gain = min(h / frame_h, w / frame_w)
    nh, nw = max(int(round(frame_h * gain)), 1), max(int(round(frame_w * gain)), 1)
    top, left = int(round((h - nh) / 2 - 0.1)), int(round((w - nw) / 2 - 0.1))
    return top, top + nh, left, left + nw


def mask_upsample_factor(lb: Letterbox, mh: int, mw: int) -> int:
    """Smallest f in (1, 2, 4) at which the letterbox padding, in prototype pixels x f, falls on whole
    pixels (both total pads and their halves): Ultralytics upsamples the mask logits by f first."""
    stride = lb.in_h // mh
    pads = (lb.in_h - lb.new_h, lb.in_w - lb.new_w)
    for f in (1, 2, 4):
        d = stride // f if stride % f == 0 else 1
        if all(p % d == 0 and (p // 2) % d == 0 for p in pads):
            return f
    return stride


def retina_masks(protos: np.ndarray, coeffs: np.ndarray, boxes_frame: np.ndarray, lb: Letterbox) -> np.ndarray:
    """Masks at frame resolution, as Ultralytics' retina_masks=True gives them: the mask logits
    (coeffs @ protos) upsampled bilinearly by mask_upsample_factor, the letterbox padding cut off on
    whole pixels, resized bilinearly (half-pixel centres) to the frame, logit > 0 (sigmoid > 0.5),
    zero outside the box (pixel x kept when x1 <= x < x2, likewise y). protos (nm, mh, mw)."""
    nm, mh, mw = protos.shape
    n = len(coeffs)
    out = np.zeros((n, lb.frame_h, lb.frame_w), bool)
    if n == 0:
        return out
    logits = (coeffs.astype(np.float32) @ protos.reshape(nm, -1).astype(np.float32)).reshape(n, mh, mw)
    f = mask_upsample_factor(lb, mh, mw)
    top, bottom, left, right = _content_region(mh * f, mw * f, lb.frame_h, lb.frame_w)
    ys = np.arange(lb.frame_h, dtype=np.float32)[:, None]
    xs = np.arange(lb.frame_w, dtype=np.float32)[None, :]
    for i in range(n):
        m = logits[i]
        if f > 1:
            m = cv2.resize(m, (mw * f, mh * f), interpolation=cv2.INTER_LINEAR)
        crop = np.ascontiguousarray(m[top:bottom, left:right])
        up = cv2.resize(crop, (lb.frame_w, lb.frame_h), interpolation=cv2.INTER_LINEAR)
        x1, y1, x2, y2 = boxes_frame[i]
        inside = (xs >= x1) & (xs < x2) & (ys >= y1) & (ys < y2)
        out[i] = (up > 0) & inside
    return out


def ultralytics_predict(session, frame_bgr: np.ndarray, style: str, nc: int, conf=0.25, iou=0.7, max_det=300) -> Detections:
    """Run an Ultralytics YOLO-seg ONNX (onnxruntime session) on one frame, decoded the reference way.
    style: 'v8' (YOLOv8/YOLO11), 'v5' (objectness) or 'end2end'."""
    inp = session.get_inputs()[0]
    size = tuple(int(d) for d in inp.shape[2:4])
    x, lb = letterbox(frame_bgr, size)
    out0, protos = session.run(None, {inp.name: x})[:2]
    if style == "v8":
        boxes, scores, classes, coeffs = decode_yolov8(out0, nc, conf, iou, max_det)
    elif style == "v5":
        boxes, scores, classes, coeffs = decode_yolov5(out0, nc, conf, iou, max_det)
    else:
        boxes, scores, classes, coeffs = decode_end2end(out0, conf, max_det)
    frame_boxes = boxes_to_frame(boxes, lb)
    masks = retina_masks(protos[0], coeffs, frame_boxes, lb)
    keep = masks.any(axis=(1, 2))  # detections whose cropped mask is empty are dropped
    return Detections(frame_boxes[keep], scores[keep], classes[keep].astype(np.int64), coeffs[keep],
                      boxes[keep], masks[keep])


# --------------------------------------------------------------------------- semantic


def bilinear_resize_chw(x: np.ndarray, out_hw: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of (C, h, w) with half-pixel centres (torch align_corners=False, no
    antialias): src = (dst + 0.5) * in / out - 0.5, clamped at 0; float64, written out longhand."""
    c, h, w = x.shape
    H, W = out_hw

    def axis(n_in, n_out):
        s = (np.arange(n_out, dtype=np.float64) + 0.5) * (n_in / n_out) - 0.5
        s = np.clip(s, 0, None)
        i0 = np.minimum(np.floor(s).astype(np.int64), n_in - 1)
        i1 = np.minimum(i0 + 1, n_in - 1)
        return i0, i1, s - i0

    y0, y1, wy = axis(h, H)
    x0, x1, wx = axis(w, W)
    x = x.astype(np.float64)
    top = x[:, y0][:, :, x0] * (1 - wx) + x[:, y0][:, :, x1] * wx
    bot = x[:, y1][:, :, x0] * (1 - wx) + x[:, y1][:, :, x1] * wx
    return top * (1 - wy)[:, None] + bot * wy[:, None]


def semantic_labels(logits_chw: np.ndarray, out_hw: tuple[int, int]) -> np.ndarray:
    """Upsample logits bilinearly to the frame, argmax over classes (first maximum wins)."""
    return bilinear_resize_chw(logits_chw, out_hw).argmax(0).astype(np.uint8)


def binary_labels(x_1hw: np.ndarray, out_hw: tuple[int, int], probabilities: bool) -> np.ndarray:
    """One channel: upsampled probability > 0.5, or upsampled logit > 0 (= sigmoid > 0.5)."""
    up = bilinear_resize_chw(x_1hw, out_hw)[0]
    return (up > (0.5 if probabilities else 0.0)).astype(np.uint8)


def nearest_labels(labels_hw: np.ndarray, out_hw: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of a label map (source index floor(dst * in / out))."""
    h, w = labels_hw.shape
    H, W = out_hw
    ys = np.minimum(np.floor(np.arange(H) * (h / H)).astype(np.int64), h - 1)
    xs = np.minimum(np.floor(np.arange(W) * (w / W)).astype(np.int64), w - 1)
    return labels_hw[ys][:, xs]


def semantic_input(frame_bgr: np.ndarray, size_hw: tuple[int, int], mean=None, std=None,
                   uint8: bool = False, channels_last: bool = False) -> np.ndarray:
    """The smp / torchvision style input: resize (bilinear) to the model size, RGB, 0..1, normalised."""
    rgb = cv2.resize(frame_bgr, (size_hw[1], size_hw[0]), interpolation=cv2.INTER_LINEAR)[:, :, ::-1]
    if uint8:
        return np.ascontiguousarray(rgb.transpose(2, 0, 1)[None])
    x = rgb.astype(np.float32) / 255.0
    if mean is not None:
        x = (x - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    x = x[None] if channels_last else x.transpose(2, 0, 1)[None]
    return np.ascontiguousarray(x, np.float32)


def semantic_input_letterbox(frame_bgr: np.ndarray, size_hw: tuple[int, int], mean=None, std=None,
                             uint8: bool = False, channels_last: bool = False, pad_value: int = 114):
    """Keep-ratio variant: the frame resized to (round(h r), round(w r)), centred ((S - n) // 2) on a
    pad_value canvas. Returns the tensor and the content region (top, left, nh, nw)."""
    h, w = frame_bgr.shape[:2]
    H, W = size_hw
    r = min(H / h, W / w)
    nh, nw = int(round(h * r)), int(round(w * r))
    top, left = (H - nh) // 2, (W - nw) // 2
    canvas = np.full((H, W, 3), pad_value, np.uint8)
    canvas[top:top + nh, left:left + nw] = cv2.resize(frame_bgr, (nw, nh), interpolation=cv2.INTER_LINEAR)
    # the canvas is already at the model size, so semantic_input's resize is the identity
    return semantic_input(canvas, size_hw, mean, std, uint8, channels_last), (top, left, nh, nw)


def letterbox_logits_to_frame(x_chw: np.ndarray, region, in_hw, out_hw) -> np.ndarray:
    """mmseg-style keep-ratio decode: logits to the input size, the padding cut off, then to the frame."""
    top, left, nh, nw = region
    full = bilinear_resize_chw(x_chw, in_hw)[:, top:top + nh, left:left + nw]
    return bilinear_resize_chw(full, out_hw)


def unpack_masks(packed: np.ndarray, shape) -> np.ndarray:
    """Inverse of np.packbits(masks.reshape(n, -1), axis=1)."""
    n, h, w = (int(v) for v in shape)
    if n == 0:
        return np.zeros((0, h, w), bool)
    return np.unpackbits(packed, axis=1, count=h * w).reshape(n, h, w).astype(bool)


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    inter = np.logical_and(a, b).sum()
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(inter / union)
