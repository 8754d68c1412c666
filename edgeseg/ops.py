"""Pre- and post-processing kernels: the Python face of the C++ core (``edgeseg._C``).

All loops run in C++ with the GIL released, spread over a small thread pool (size:
:func:`set_num_threads`, else env ``EDGESEG_NUM_THREADS``, else the number of cores). Arrays are
used zero-copy, so they must already have the documented dtype, shape and C-contiguous layout;
anything else raises :class:`edgeseg.errors.ArrayError` (a ``ValueError``) that names what was
expected and what was given.

Validation is done once. The binding (``csrc/bindings.cpp``) checks what the loops rely on:
dtype, shape, contiguity, sizes that must agree, counts and thresholds; its ``ValueError`` is
raised here as ArrayError. This module checks only what it must interpret before the call (types,
ranks to drop a batch axis, sizes and letterbox geometry it computes, conversions it makes) and
the arguments the binding never sees.

Conventions: images are BGR ``uint8`` ``H x W x 3``; network inputs are ``(1, 3, h, w)``
normalised RGB; labels are ``uint8`` (``int32`` when there are more than 255 classes).

This module never imports torch.
"""
from __future__ import annotations

import math
import os
from functools import lru_cache
from typing import Optional, Sequence, Tuple, Union

import numpy as np

from . import _C
from . import defaults
from ._native import call as _call
from .errors import ArrayError
from .geometry import LetterboxInfo, SizeLike, letterbox_info, parse_size
from .masks import MaskSet

__all__ = [
    "LetterboxInfo",
    "letterbox",
    "letterbox_info",
    "argmax",
    "upsample_argmax",
    "overlay",
    "nms",
    "select_detections",
    "assemble_masks",
    "paste_masks",
    "overlay_instances",
    "mask_iou",
    "linear_assignment",
    "MaskSet",
    "set_num_threads",
    "get_num_threads",
]

# ---- helpers ----------------------------------------------------------------------------------


def _require_ndarray(x, fn: str, name: str) -> np.ndarray:
    if not isinstance(x, np.ndarray):
        raise ArrayError(f"{fn}: {name} must be a numpy.ndarray, got {type(x).__name__}")
    return x


def _parse_size(size: SizeLike, fn: str) -> Tuple[int, int]:
    """An output size, capped: a kernel never allocates more than ``defaults.max_image_pixels()``
    pixels for one image (a wrong or hostile size would otherwise exhaust memory)."""
    h, w = parse_size(size, f"{fn}: size")
    limit = defaults.max_image_pixels()
    if h * w > limit:
        raise ArrayError(f"{fn}: size {(h, w)} is {h * w} pixels, more than the limit of {limit} "
                         f"(set {defaults.MAX_IMAGE_PIXELS_ENV} to raise it)")
    return h, w


def _triple(v, fn: str, name: str) -> Tuple[float, float, float]:
    if np.isscalar(v):
        t = (float(v),) * 3  # type: ignore[arg-type]
    else:
        t = tuple(float(x) for x in v)
        if len(t) != 3:
            raise ArrayError(f"{fn}: {name} must be a number or 3 values (R, G, B), got {v!r}")
    return t  # type: ignore[return-value]


@lru_cache(maxsize=64)
def _normalisation(mean, std, pad_value) -> Tuple[Tuple[float, ...], ...]:
    """Per-channel (scale, bias, normalised pad) of letterbox: out = pixel * scale + bias."""
    mean_t, std_t = _triple(mean, "letterbox", "mean"), _triple(std, "letterbox", "std")
    if any(s == 0 or not math.isfinite(s) for s in std_t):
        raise ArrayError(f"letterbox: std must be finite and non-zero, got {std!r}")
    if not all(math.isfinite(m) for m in mean_t):
        raise ArrayError(f"letterbox: mean must be finite, got {mean!r}")
    pad_t = _triple(pad_value, "letterbox", "pad_value")
    if not all(math.isfinite(p) for p in pad_t):
        raise ArrayError(f"letterbox: pad_value must be finite, got {pad_value!r}")
    scale = tuple(1.0 / s for s in std_t)
    bias = tuple(-m / s for m, s in zip(mean_t, std_t))
    pad = tuple((p - m) / s for p, m, s in zip(pad_t, mean_t, std_t))
    return scale, bias, pad


# ---- kernels ----------------------------------------------------------------------------------


def letterbox(
    image: np.ndarray,
    size: SizeLike,
    mean: Sequence[float] = defaults.MEAN_RGB,
    std: Sequence[float] = defaults.STD_RGB,
    dtype=np.float32,
    pad_value: Union[float, Sequence[float]] = defaults.PAD_VALUE,
    out: Optional[np.ndarray] = None,
) -> Tuple[np.ndarray, LetterboxInfo]:
    """Resize a BGR frame into a network input, keeping its aspect ratio, in one pass.

    Args:
        image: BGR ``uint8`` array ``H x W x 3``, C-contiguous.
        size: network input size, ``int`` (square) or ``(h, w)``.
        mean, std: RGB statistics on the 0..255 scale; the output is ``(rgb - mean) / std``.
        dtype: ``np.float32`` or ``np.float16`` output.
        pad_value: padding colour in pixel units (before normalisation), a number or RGB triple.
        out: optional preallocated C-contiguous ``(1, 3, h, w)`` array of ``dtype`` to fill
            (e.g. a pinned/ORT-bound input buffer); returned as the tensor.

    Returns:
        ``(tensor, info)``: ``tensor`` is ``(1, 3, h, w)`` normalised RGB; ``info`` a
        :class:`LetterboxInfo` to map results back (see :func:`upsample_argmax`).

    Resizing is bilinear with half-pixel centres like ``cv2.resize(..., INTER_LINEAR)`` (no
    antialiasing when shrinking), computed in float (no intermediate uint8 rounding).
    """
    image = _require_ndarray(image, "letterbox", "image")
    dt = np.dtype(dtype)
    if dt not in (np.dtype(np.float32), np.dtype(np.float16)):
        raise ArrayError(f"letterbox: dtype must be float32 or float16, got {dt}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise ArrayError(
            f"letterbox: image must have shape (H, W, 3) (BGR), got shape {tuple(image.shape)}")
    info = letterbox_info(image.shape[:2], _parse_size(size, "letterbox"))
    h, w = info.dst_hw
    try:  # the same statistics every frame: cached when hashable (tuples, numbers)
        scale, bias, pad = _normalisation(mean, std, pad_value)
    except TypeError:
        scale, bias, pad = _normalisation.__wrapped__(mean, std, pad_value)
    if out is None:
        out = np.empty((1, 3, h, w), dtype=dt)
    else:
        out = _require_ndarray(out, "letterbox", "out")
        if out.dtype != dt:
            raise ArrayError(f"letterbox: out must have dtype {dt} (the dtype argument), "
                             f"got {out.dtype}; pass dtype=out.dtype")
        if out.shape != (1, 3, h, w):
            raise ArrayError(f"letterbox: out must have shape {(1, 3, h, w)}, "
                             f"got {tuple(out.shape)}")
    rh, rw = info.resized_hw
    _call(_C.letterbox, image, out, rh, rw, info.pad_top, info.pad_left, scale, bias, pad)
    return out, info


def argmax(logits: np.ndarray) -> np.ndarray:
    """Class index of the largest logit per pixel.

    Args:
        logits: ``(C, H, W)`` or ``(N, C, H, W)``, float32 or float16, C-contiguous.

    Returns:
        ``(H, W)`` or ``(N, H, W)`` labels, ``uint8`` if ``C <= 255`` else ``int32``. The first
        index wins on ties and a NaN wins over numbers, exactly like ``np.argmax(axis=-3)``.
    """
    logits = _require_ndarray(logits, "argmax", "logits")
    return _call(_C.argmax, logits)


def _squeeze_batch(logits: np.ndarray, fn: str) -> np.ndarray:
    if logits.ndim == 4:
        if logits.shape[0] != 1:
            raise ArrayError(f"{fn}: logits must have shape (C, h, w) or (1, C, h, w), "
                             f"got shape {tuple(logits.shape)}; call it once per image")
        return logits[0]
    if logits.ndim != 3:
        raise ArrayError(f"{fn}: logits must have shape (C, h, w) or (1, C, h, w), "
                         f"got shape {tuple(logits.shape)}")
    return logits


def upsample_argmax(
    logits: np.ndarray,
    out_hw: Optional[Sequence[int]] = None,
    letterbox: Optional[LetterboxInfo] = None,
) -> np.ndarray:
    """Bilinear upsample + argmax fused: labels at ``out_hw`` from low-resolution logits.

    Full-resolution logits are never materialised (memory stays ~``2 x C x tile`` floats per
    thread), so this is the cheap way to get frame-size labels.

    Args:
        logits: ``(C, h, w)`` or ``(1, C, h, w)`` float32/float16, C-contiguous.
        out_hw: output ``(H, W)``. Optional when ``letterbox`` is given (then it must equal
            ``letterbox.src_hw``).
        letterbox: the :class:`LetterboxInfo` of the frame whose network output these logits
            are. Output pixel ``(y, x)`` then samples the logits at the frame pixel centre mapped
            into the network input, ``(y + 0.5) * rh / H + pad_top`` (same for x), scaled to
            logits coordinates (``* h / h_in - 0.5``), clamped at the borders: labels come back
            at frame size with the padding dropped.

    Without ``letterbox`` this equals ``argmax(interpolate(logits, out_hw, mode="bilinear",
    align_corners=False))`` up to float rounding at near-ties. Labels are ``uint8`` if
    ``C <= 255`` else ``int32``; the first index wins on ties.
    """
    logits = _squeeze_batch(_require_ndarray(logits, "upsample_argmax", "logits"),
                            "upsample_argmax")
    _, h, w = logits.shape
    if letterbox is not None:
        if not isinstance(letterbox, LetterboxInfo):
            raise ArrayError("upsample_argmax: letterbox must be the LetterboxInfo returned by "
                             f"ops.letterbox, got {type(letterbox).__name__}")
        H, W = letterbox.src_hw
        if out_hw is not None and tuple(int(v) for v in out_hw) != (H, W):
            raise ArrayError(f"upsample_argmax: with letterbox, out_hw must be the frame size "
                             f"{(H, W)} (letterbox.src_hw), got {tuple(out_hw)}")
        h_in, w_in = letterbox.dst_hw
        rh, rw = letterbox.resized_hw
        ky, kx = h / h_in, w / w_in
        ay, ax = rh / H * ky, rw / W * kx
        by = (0.5 * rh / H + letterbox.pad_top) * ky - 0.5
        bx = (0.5 * rw / W + letterbox.pad_left) * kx - 0.5
    else:
        if out_hw is None:
            raise ArrayError("upsample_argmax: give out_hw=(H, W) or letterbox=info")
        H, W = _parse_size(out_hw, "upsample_argmax")
        ay, ax = h / H, w / W
        by, bx = 0.5 * ay - 0.5, 0.5 * ax - 0.5
    return _call(_C.upsample_argmax, logits, int(H), int(W), ay, by, ax, bx)


def overlay(
    image: np.ndarray,
    labels: np.ndarray,
    palette: np.ndarray,
    alpha: float = defaults.OVERLAY_ALPHA,
    out: Optional[np.ndarray] = None,
    skip: Optional[Sequence[int]] = None,
) -> np.ndarray:
    """Colour each labelled pixel with its palette colour, blended onto the image.

    Args:
        image: BGR ``uint8`` ``H x W x 3``, C-contiguous.
        labels: ``H x W`` class indices (``uint8`` or ``int32`` zero-copy; other integer dtypes
            are converted). Labels ``>= K`` (e.g. 255 = ignore) or negative leave the pixel as is.
        palette: ``(K, 3)`` colours in BGR order (``uint8``, or anything castable to it losslessly,
            e.g. a list of tuples).
        alpha: weight of the class colour, in ``[0, 1]``.
        out: optional ``uint8`` ``H x W x 3`` destination; may be ``image`` itself (in place).
        skip: class indices in ``[0, K)`` whose pixels stay untinted (e.g. ``(0,)`` for the
            background).

    Returns:
        The blended BGR image (``out`` if given): ``image * (1 - alpha) + colour * alpha``,
        rounded (16-bit fixed point, within 1 of the float result).
    """
    image = _require_ndarray(image, "overlay", "image")
    labels = _require_ndarray(labels, "overlay", "labels")
    if labels.dtype.kind in "iu" and labels.dtype not in (np.dtype(np.uint8), np.dtype(np.int32)):
        labels = np.ascontiguousarray(
            np.clip(labels, -1, np.iinfo(np.int32).max).astype(np.int32))
    if not isinstance(palette, np.ndarray):
        palette = np.asarray(palette)
        if palette.dtype.kind in "iu" and palette.size and (palette.min() < 0 or palette.max() > 255):
            raise ArrayError("overlay: palette values must be in 0..255")
        if palette.dtype.kind in "iu":
            palette = palette.astype(np.uint8)
    palette = np.ascontiguousarray(palette) if palette.ndim == 2 else palette
    if out is None:
        out = np.empty_like(image) if image.ndim == 3 else np.empty((0, 0, 3), np.uint8)
    else:
        out = _require_ndarray(out, "overlay", "out")
        if out is not image and np.may_share_memory(out, image) and (
                out.__array_interface__["data"][0] != image.__array_interface__["data"][0]):
            raise ArrayError("overlay: out overlaps image without being the same array; "
                             "pass out=image for in-place or a separate array")
    alpha = float(alpha)
    if not 0.0 <= alpha <= 1.0:
        raise ArrayError(f"overlay: alpha must be in [0, 1], got {alpha}")
    flags = None
    if skip is not None and palette.ndim == 2:
        idx = np.asarray(list(skip), np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= palette.shape[0]):
            raise ArrayError(f"overlay: skip must hold class indices in [0, {palette.shape[0]}), "
                             f"got {list(skip)!r:.80}")
        flags = np.zeros(palette.shape[0], np.uint8)
        flags[idx] = 1
    _call(_C.overlay, image, labels, palette, alpha, out, flags)
    return out


# ---- instance post-processing -------------------------------------------------------------------
#
# Detection decode + NMS, and box-local masks (prototype assembly, RoI-mask paste) returned as a
# MaskSet (edgeseg/masks.py): masks are computed only inside their boxes, at frame resolution,
# never as N x H x W float buffers.


def _ranked(x, fn: str, name: str, ndim: Sequence[int], expected: str) -> np.ndarray:
    """``x`` as an ndarray of one of the ranks ``ndim`` (needed here to drop batch axes; dtype,
    shape and layout are the binding's to check)."""
    x = _require_ndarray(x, fn, name)
    if x.ndim not in ndim:
        raise ArrayError(f"{fn}: {name} must have shape {expected}, got shape {tuple(x.shape)}")
    return x


def _boxes_f32(boxes, fn: str) -> np.ndarray:
    """(K, 4) float32 boxes; float16 is widened (exactly), other dtypes are refused."""
    boxes = _require_ndarray(boxes, fn, "boxes")
    if boxes.dtype == np.float16:
        boxes = boxes.astype(np.float32)
    elif boxes.dtype != np.float32:
        raise ArrayError(f"{fn}: boxes must be float32 (or float16), got {boxes.dtype}; "
                         "pass boxes.astype(np.float32)")
    if boxes.ndim == 2 and boxes.shape[0] == 0 and boxes.shape[1] != 4:
        boxes = boxes.reshape(0, 4)
    return np.ascontiguousarray(boxes)


def _drop_batch(x: np.ndarray, ndim: int) -> np.ndarray:
    """Drop a leading batch axis of size 1 (an ONNX output of one image)."""
    return x[0] if x.ndim == ndim + 1 and x.shape[0] == 1 else x


def _nms_args(iou_threshold, score_threshold, max_candidates, max_detections):
    """As the binding takes them (it refuses NaN thresholds and negative counts)."""
    return float(iou_threshold), float(score_threshold), int(max_candidates), int(max_detections)


def nms(
    boxes: np.ndarray,
    scores: np.ndarray,
    class_ids: Optional[np.ndarray] = None,
    iou_threshold: float = defaults.IOU_THRESHOLD,
    score_threshold: float = 0.0,
    max_candidates: int = defaults.MAX_CANDIDATES,
    max_detections: int = defaults.MAX_DETECTIONS,
    class_agnostic: bool = False,
) -> np.ndarray:
    """Greedy non-maximum suppression.

    Args:
        boxes: ``(N, 4)`` float32/float16 ``x0, y0, x1, y1`` (any non-negative strides are read
            in place, e.g. a transposed view).
        scores: ``(N,)`` float32 (float16 is widened).
        class_ids: ``(N,)`` integers; boxes of different classes never suppress each other.
            ``None``: one class.
        iou_threshold: a box is dropped when its IoU with a kept box is ``> iou_threshold``.
        score_threshold: only boxes with ``score > score_threshold`` take part (NaN never does).
        max_candidates: keep only this many best-scoring boxes before NMS (top-k).
        max_detections: stop after this many kept boxes.
        class_agnostic: ignore ``class_ids``.

    Returns:
        ``int64`` indices into the input of the kept boxes, by descending score (equal scores:
        lower index first). IoU is computed in double precision; see ``csrc/core/nms.h``.
    """
    fn = "nms"
    boxes = _ranked(boxes, fn, "boxes", (2,), "(N, 4)")
    scores = _require_ndarray(scores, fn, "scores")
    if scores.dtype == np.float16:
        scores = scores.astype(np.float32)
    scores = np.ascontiguousarray(scores) if scores.ndim == 1 else scores
    if class_ids is not None:
        class_ids = _require_ndarray(class_ids, fn, "class_ids")
        if class_ids.dtype.kind not in "iu":
            raise ArrayError(f"nms: class_ids must be integers, got {class_ids.dtype}")
        class_ids = np.ascontiguousarray(class_ids, dtype=np.int64)
    args = _nms_args(iou_threshold, score_threshold, max_candidates, max_detections)
    return _call(_C.nms, boxes, scores, class_ids, *args, bool(class_agnostic))


def select_detections(
    boxes: np.ndarray,
    scores: np.ndarray,
    iou_threshold: float = defaults.IOU_THRESHOLD,
    score_threshold: float = defaults.SCORE_THRESHOLD,
    max_candidates: int = defaults.MAX_CANDIDATES,
    max_detections: int = defaults.MAX_DETECTIONS,
    class_agnostic: bool = False,
) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decode raw single-stage head outputs: best class per box, score filter, top-k, NMS.

    Args:
        boxes: ``(A, 4)`` float32/float16 ``x0, y0, x1, y1`` per anchor (or ``(1, A, 4)``).
        scores: ``(A, C)`` float32/float16 per-class probabilities (or ``(1, A, C)``).
            Both are read in place through their strides: a C-contiguous ``(A, C)`` array and the
            transposed view ``out[0, 4:].T`` of a YOLO-style ``(1, 4 + C, A)`` output both work
            without a copy.
        iou_threshold, score_threshold, max_candidates, max_detections, class_agnostic: as
            :func:`nms` (the class of a box is its best class).

    Returns:
        ``(indices, class_ids, scores)``: ``int64`` anchor indices, ``int32`` best classes and
        ``float32`` best scores of the kept boxes, by descending score. Per anchor the first
        class wins ties and NaN scores are ignored.
    """
    fn = "select_detections"
    boxes = _drop_batch(_ranked(boxes, fn, "boxes", (2, 3), "(A, 4)"), 2)
    scores = _drop_batch(_ranked(scores, fn, "scores", (2, 3), "(A, C)"), 2)
    args = _nms_args(iou_threshold, score_threshold, max_candidates, max_detections)
    return _call(_C.select_detections, boxes, scores, *args, bool(class_agnostic))


def _logit(t: float) -> float:
    """log(t / (1 - t)), the logit threshold equivalent to sigmoid(m) > t (+-inf at 0 and 1)."""
    if t <= 0.0:
        return -math.inf
    if t >= 1.0:
        return math.inf
    return math.log(t / (1.0 - t))


def assemble_masks(
    coeffs: np.ndarray,
    protos: np.ndarray,
    boxes: np.ndarray,
    image_hw: Sequence[int],
    letterbox: Optional[LetterboxInfo] = None,
    input_hw: Optional[Sequence[int]] = None,
    threshold: float = defaults.MASK_THRESHOLD,
    mode: str = "exact",
) -> MaskSet:
    """Instance masks from prototypes (YOLACT / YOLO-seg), computed only inside each box.

    Args:
        coeffs: ``(K, M)`` mask coefficients of the kept detections (float32; float16 widened).
        protos: ``(M, Hp, Wp)`` (or ``(1, M, Hp, Wp)``) float32/float16 prototypes, C-contiguous.
        boxes: ``(K, 4)`` float32 ``x0, y0, x1, y1`` in *frame* pixel-edge coordinates.
        image_hw: frame size ``(H, W)``.
        letterbox: the :class:`LetterboxInfo` that placed the frame in the network input
            (``letterbox.src_hw`` must equal ``image_hw``). ``None``: the frame is the network
            input (or was stretched to ``input_hw``).
        input_hw: network input size the prototypes span; default ``letterbox.dst_hw``, or
            ``image_hw`` without letterbox.
        threshold: probability threshold in ``[0, 1]``.
        mode: ``"exact"`` or ``"fast"``.

    Returns:
        A :class:`MaskSet` of K masks; mask k's region is the frame pixels whose centre lies in
        box k (``x0 <= x + 0.5 < x1``, same for y), clipped to the frame.

    ``"exact"``: a region pixel ``(y, x)`` is in the mask iff ``sigmoid(m) > threshold``, where
    ``m`` is the mask logit ``coeffs[k] . protos`` bilinearly interpolated (half-pixel centres,
    edge-clamped like ONNX Resize / ``align_corners=False``) at the pixel centre mapped into the
    prototypes: ``u = (x + 0.5) * rw / W + pad_left`` in the input, ``px = u * Wp / in_w - 0.5``.
    This is what upsampling every mask to the frame and cropping computes, but the logits are
    evaluated only on the prototype cells under each box and interpolated as one scalar field.
    ``"fast"``: threshold the logit of the nearest prototype cell (``floor(u * Wp / in_w)``).
    """
    fn = "assemble_masks"
    if mode not in ("exact", "fast"):
        raise ArrayError(f"{fn}: mode must be 'exact' or 'fast', got {mode!r}")
    H, W = _parse_size(image_hw, fn)
    coeffs = _ranked(coeffs, fn, "coeffs", (2,), "(K, M)")
    if coeffs.dtype == np.float16:
        coeffs = coeffs.astype(np.float32)
    protos = _drop_batch(_ranked(protos, fn, "protos", (3, 4), "(M, Hp, Wp)"), 3)
    boxes = _boxes_f32(boxes, fn)
    if letterbox is not None:
        if not isinstance(letterbox, LetterboxInfo):
            raise ArrayError(f"{fn}: letterbox must be the LetterboxInfo returned by "
                             f"ops.letterbox, got {type(letterbox).__name__}")
        if tuple(letterbox.src_hw) != (H, W):
            raise ArrayError(f"{fn}: letterbox.src_hw {tuple(letterbox.src_hw)} is not the frame "
                             f"size image_hw {(H, W)}; pass the LetterboxInfo of this frame")
        in_h, in_w = (letterbox.dst_hw if input_hw is None else _parse_size(input_hw, fn))
        rh, rw = letterbox.resized_hw
        top, left = letterbox.pad_top, letterbox.pad_left
    else:
        in_h, in_w = (H, W) if input_hw is None else _parse_size(input_hw, fn)
        rh, rw, top, left = in_h, in_w, 0, 0
    t = float(threshold)
    if not 0.0 <= t <= 1.0:
        raise ArrayError(f"{fn}: threshold must be in [0, 1], got {threshold!r}")
    data, offsets, regions = _call(
        _C.assemble_masks, coeffs, protos, boxes, H, W, (float(rh), float(top), float(in_h)),
        (float(rw), float(left), float(in_w)), _logit(t), mode == "fast")
    return MaskSet._trusted(data, offsets, regions, (H, W))


def paste_masks(
    masks: np.ndarray,
    boxes: np.ndarray,
    image_hw: Sequence[int],
    threshold: float = defaults.MASK_THRESHOLD,
) -> MaskSet:
    """Paste fixed-size RoI masks (Mask R-CNN, e.g. 28 x 28) into the frame, box-locally.

    Args:
        masks: ``(N, Mh, Mw)`` (or ``(N, 1, Mh, Mw)``) float32/float16 mask probabilities.
        boxes: ``(N, 4)`` float32 ``x0, y0, x1, y1`` frame coordinates.
        image_hw: frame size ``(H, W)``.
        threshold: a pixel is in the mask iff its sampled value is ``>= threshold``.

    Returns:
        A :class:`MaskSet`. Same result as detectron2's ``paste_masks_in_image`` on CPU: region
        ``[floor(x0) - 1, ceil(x1) + 1)`` (same for y) clipped to the frame; pixel ``(y, x)``
        samples the mask at ``ix = (x + 0.5 - x0) / (x1 - x0) * Mw - 0.5`` (same for y),
        bilinearly with zeros outside the mask (``grid_sample``, ``align_corners=False``).
        A degenerate box (``x1 <= x0``, ``y1 <= y0`` or not finite) gives an empty mask.
    """
    fn = "paste_masks"
    H, W = _parse_size(image_hw, fn)
    masks = _ranked(masks, fn, "masks", (3, 4), "(N, Mh, Mw)")
    if masks.ndim == 4:
        if masks.shape[1] != 1:
            raise ArrayError(f"{fn}: masks must have shape (N, Mh, Mw) or (N, 1, Mh, Mw), "
                             f"got shape {tuple(masks.shape)}; select each box's class first")
        masks = masks[:, 0]
    boxes = _boxes_f32(boxes, fn)
    data, offsets, regions = _call(_C.paste_masks, masks, boxes, H, W, float(threshold))
    return MaskSet._trusted(data, offsets, regions, (H, W))


def overlay_instances(
    image: np.ndarray,
    masks: MaskSet,
    colors: np.ndarray,
    alpha: float = defaults.OVERLAY_ALPHA,
    outline: bool = True,
    out: Optional[np.ndarray] = None,
) -> np.ndarray:
    """Draw instance masks on a frame: colour blended inside each mask, opaque outline.

    Args:
        image: BGR ``uint8`` ``H x W x 3`` (``H, W = masks.image_hw``), C-contiguous.
        masks: the :class:`MaskSet` to draw; later masks are drawn over earlier ones.
        colors: ``(K, 3)`` BGR ``uint8`` (or castable losslessly), one per mask.
        alpha: weight of the colour inside masks, in ``[0, 1]``.
        outline: draw mask boundary pixels (mask pixels with a 4-neighbour outside the mask or
            the frame) in the opaque colour.
        out: optional ``uint8`` ``H x W x 3`` destination; may be ``image`` (in place).

    Returns:
        The new frame (``out`` if given). Only the mask regions are touched after the copy; the
        blend is :func:`overlay`'s 16-bit fixed point.
    """
    fn = "overlay_instances"
    image = _require_ndarray(image, fn, "image")
    if not isinstance(masks, MaskSet):
        raise ArrayError(f"{fn}: masks must be a MaskSet, got {type(masks).__name__}")
    if image.ndim == 3 and tuple(image.shape[:2]) != masks.image_hw:
        raise ArrayError(f"{fn}: image is {image.shape[0]}x{image.shape[1]} but the masks are "
                         f"for a {masks.image_hw[0]}x{masks.image_hw[1]} frame")
    if not isinstance(colors, np.ndarray) or colors.dtype != np.uint8:
        c = np.asarray(colors)
        if c.dtype.kind in "iu" and c.size and (c.min() < 0 or c.max() > 255):
            raise ArrayError(f"{fn}: colors must be in 0..255")
        if c.dtype.kind in "iu" or c.size == 0:
            c = c.astype(np.uint8)
        colors = c
    if colors.ndim == 1 and colors.size == 0:
        colors = colors.reshape(0, 3)
    colors = np.ascontiguousarray(colors)
    if out is None:
        out = np.empty_like(image) if image.ndim == 3 else np.empty((0, 0, 3), np.uint8)
    else:
        out = _require_ndarray(out, fn, "out")
        if out is not image and np.may_share_memory(out, image) and (
                out.__array_interface__["data"][0] != image.__array_interface__["data"][0]):
            raise ArrayError(f"{fn}: out overlaps image without being the same array; "
                             "pass out=image for in-place or a separate array")
    alpha = float(alpha)
    if not 0.0 <= alpha <= 1.0:
        raise ArrayError(f"{fn}: alpha must be in [0, 1], got {alpha}")
    _call(_C.overlay_instances, image, masks.data, masks.offsets, masks.regions, colors, alpha,
          bool(outline), out)
    return out


# ---- tracking -----------------------------------------------------------------------------------


def mask_iou(a: MaskSet, b: MaskSet, shift: Optional[np.ndarray] = None) -> np.ndarray:
    """IoU of every pair of masks of two sets over the same frame: ``float32`` ``(len(a), len(b))``.

    Computed on the box-local bitmaps (work proportional to the overlap of each pair's regions;
    nothing dense is built). ``shift``: optional ``(len(a), 2)`` integer ``(dx, dy)`` pixels that
    move each mask of ``a`` first (e.g. a track's last mask moved to its predicted place); a moved
    mask may leave the frame, its area is kept. IoU is 0 where the union is empty.
    """
    fn = "mask_iou"
    for name, m in (("a", a), ("b", b)):
        if not isinstance(m, MaskSet):
            raise ArrayError(f"{fn}: {name} must be a MaskSet, got {type(m).__name__}")
    if a.image_hw != b.image_hw:
        raise ArrayError(f"{fn}: the sets are for different frames: {a.image_hw} and {b.image_hw}")
    if shift is not None:
        s = np.asarray(shift)
        if s.shape != (len(a), 2) or (s.size and s.dtype.kind not in "iu"):
            raise ArrayError(f"{fn}: shift must be integers of shape ({len(a)}, 2), got "
                             f"{s.dtype} of shape {s.shape}")
        lim = np.iinfo(np.int32).max // 4
        if s.size and np.abs(s).max() > lim:
            raise ArrayError(f"{fn}: shift must be within +-{lim} pixels")
        shift = np.ascontiguousarray(s, np.int32)
    return _call(_C.mask_iou, a.data, a.offsets, a.regions, shift, b.data, b.offsets, b.regions,
                 *a.image_hw)


def linear_assignment(cost: np.ndarray, limit: float) -> Tuple[np.ndarray, np.ndarray]:
    """Minimum-cost matching of rows to columns of ``cost`` (``n x m``) with a cost limit.

    Leaving a row or column unmatched costs ``limit / 2``, so a pair is matched only where that
    lowers the total; pairs with a cost above ``limit`` (or NaN) are never matched. Exact
    (shortest augmenting paths, as SciPy's ``linear_sum_assignment`` on the extended problem).

    Returns:
        ``(rows, cols)``: ``int64`` indices of the matched pairs, rows ascending.
    """
    fn = "linear_assignment"
    c = np.asarray(cost)
    if c.ndim != 2:
        raise ArrayError(f"{fn}: cost must have shape (n, m), got shape {c.shape}")
    if c.size and c.dtype.kind not in "fiub":
        raise ArrayError(f"{fn}: cost must be numeric, got {c.dtype}")
    limit = float(limit)
    if not math.isfinite(limit):
        raise ArrayError(f"{fn}: limit must be a finite number, got {limit!r}")
    c = np.ascontiguousarray(c, np.float64)
    if np.isneginf(c).any():
        raise ArrayError(f"{fn}: cost must not hold -inf")
    row_to_col = _call(_C.linear_assignment, c, limit)
    rows = np.flatnonzero(row_to_col >= 0)
    return rows.astype(np.int64), row_to_col[rows].astype(np.int64)


# ---- threads ----------------------------------------------------------------------------------


def set_num_threads(n: int) -> None:
    """Use ``n >= 1`` threads in the C++ kernels (default: env ``EDGESEG_NUM_THREADS``, else
    the number of cores). Results do not depend on the thread count."""
    n = int(n)
    if not 1 <= n <= defaults.MAX_THREADS:
        raise ValueError(f"set_num_threads: n must be in [1, {defaults.MAX_THREADS}], got {n}")
    _C.set_num_threads(n)


def get_num_threads() -> int:
    """Threads the C++ kernels use."""
    return int(_C.get_num_threads())


def _check_env_threads() -> None:
    raw = os.environ.get(defaults.NUM_THREADS_ENV)
    if raw:
        try:
            ok = int(raw) >= 1
        except ValueError:
            ok = False
        if not ok:
            import warnings

            warnings.warn(f"{defaults.NUM_THREADS_ENV}={raw!r} is not a positive integer; "
                          f"using {_C.get_num_threads()} threads", RuntimeWarning, stacklevel=2)


_check_env_threads()
