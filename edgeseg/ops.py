"""Pre- and post-processing kernels: the Python face of the C++ core (``edgeseg._C``).

All loops run in C++ with the GIL released, spread over a small thread pool (size:
:func:`set_num_threads`, else env ``EDGESEG_NUM_THREADS``, else the number of cores). Arrays are
used zero-copy, so they must already have the documented dtype, shape and C-contiguous layout;
anything else raises :class:`edgeseg.errors.ArrayError` (a ``ValueError``) that names what was
expected and what was given.

Conventions: images are BGR ``uint8`` ``H x W x 3``; network inputs are ``(1, 3, h, w)``
normalised RGB; labels are ``uint8`` (``int32`` when there are more than 255 classes).

This module never imports torch.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple, Union

import numpy as np

from . import _C
from . import defaults
from .errors import ArrayError

__all__ = [
    "LetterboxInfo",
    "letterbox",
    "letterbox_info",
    "argmax",
    "upsample_argmax",
    "overlay",
    "set_num_threads",
    "get_num_threads",
]

SizeLike = Union[int, Sequence[int]]


@dataclass(frozen=True)
class LetterboxInfo:
    """How a frame was placed in the network input by :func:`letterbox`.

    Attributes:
        src_hw: frame size ``(H, W)``.
        dst_hw: network input size ``(h, w)``.
        scale: resize factor ``min(h / H, w / W)`` (the resized size is rounded from it).
        resized_hw: size ``(rh, rw)`` of the resized frame inside the input.
        pad_top: rows of padding above the resized frame.
        pad_left: columns of padding left of the resized frame.

    A frame point ``(y, x)`` (continuous pixel-edge coordinates) sits at
    ``(y * rh / H + pad_top, x * rw / W + pad_left)`` in the network input.
    """

    src_hw: Tuple[int, int]
    dst_hw: Tuple[int, int]
    scale: float
    resized_hw: Tuple[int, int]
    pad_top: int
    pad_left: int


# ---- helpers ----------------------------------------------------------------------------------


def _call(fn, *args):
    """Call a C++ binding, turning its ValueError into ArrayError with the same message."""
    try:
        return fn(*args)
    except ArrayError:
        raise
    except ValueError as e:
        raise ArrayError(str(e)) from None


def _require_ndarray(x, fn: str, name: str) -> np.ndarray:
    if not isinstance(x, np.ndarray):
        raise ArrayError(f"{fn}: {name} must be a numpy.ndarray, got {type(x).__name__}")
    return x


def _parse_size(size: SizeLike, fn: str) -> Tuple[int, int]:
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        h = w = int(size)
    else:
        try:
            h, w = (int(v) for v in size)  # type: ignore[union-attr]
        except (TypeError, ValueError):
            raise ArrayError(f"{fn}: size must be an int or (height, width), got {size!r}") from None
    if h < 1 or w < 1:
        raise ArrayError(f"{fn}: size must be positive, got ({h}, {w})")
    return h, w


def _triple(v, fn: str, name: str) -> Tuple[float, float, float]:
    if np.isscalar(v):
        t = (float(v),) * 3  # type: ignore[arg-type]
    else:
        t = tuple(float(x) for x in v)
        if len(t) != 3:
            raise ArrayError(f"{fn}: {name} must be a number or 3 values (R, G, B), got {v!r}")
    return t  # type: ignore[return-value]


def letterbox_info(src_hw: Sequence[int], size: SizeLike) -> LetterboxInfo:
    """The :class:`LetterboxInfo` that :func:`letterbox` uses for a frame of ``src_hw``.

    The frame is scaled by ``min(h / H, w / W)`` (up or down), the resized size is rounded to the
    nearest pixel (at least 1) and centred; odd padding puts the extra row/column bottom/right.
    """
    H, W = (int(v) for v in src_hw)
    if H < 1 or W < 1:
        raise ArrayError(f"letterbox: image must be non-empty, got size ({H}, {W})")
    h, w = _parse_size(size, "letterbox")
    scale = min(h / H, w / W)
    rh = min(h, max(1, int(round(H * scale))))
    rw = min(w, max(1, int(round(W * scale))))
    return LetterboxInfo(
        src_hw=(H, W), dst_hw=(h, w), scale=scale, resized_hw=(rh, rw),
        pad_top=(h - rh) // 2, pad_left=(w - rw) // 2,
    )


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
    info = letterbox_info(image.shape[:2], size)
    h, w = info.dst_hw
    mean_t, std_t = _triple(mean, "letterbox", "mean"), _triple(std, "letterbox", "std")
    if any(s == 0 or not math.isfinite(s) for s in std_t):
        raise ArrayError(f"letterbox: std must be finite and non-zero, got {std!r}")
    pad_t = _triple(pad_value, "letterbox", "pad_value")
    scale = [1.0 / s for s in std_t]
    bias = [-m / s for m, s in zip(mean_t, std_t)]
    pad = [(p - m) / s for p, m, s in zip(pad_t, mean_t, std_t)]
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
    alpha: float = 0.5,
    out: Optional[np.ndarray] = None,
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
    _call(_C.overlay, image, labels, palette, alpha, out)
    return out


# ---- threads ----------------------------------------------------------------------------------


def set_num_threads(n: int) -> None:
    """Use ``n >= 1`` threads in the C++ kernels (default: env ``EDGESEG_NUM_THREADS``, else
    the number of cores). Results do not depend on the thread count."""
    n = int(n)
    if n < 1:
        raise ValueError(f"set_num_threads: n must be >= 1, got {n}")
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
