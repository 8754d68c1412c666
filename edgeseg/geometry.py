"""Geometry shared by every layer: sizes, box IoU, and the letterbox mapping.

Sizes are ``(height, width)``. Boxes are ``(K, 4)`` ``x0, y0, x1, y1`` in continuous pixel-edge
coordinates (pixel ``i`` spans ``[i, i + 1)``). A frame placed in a network input by
:func:`edgeseg.ops.letterbox` is described by one :class:`LetterboxInfo`, which maps boxes both
ways. numpy only.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Optional, Sequence, Tuple, Type, Union

import numpy as np

from .errors import ArrayError

SizeLike = Union[int, str, Sequence[int]]


def parse_size(size: SizeLike, what: str = "size", error: Type[Exception] = ArrayError,
               minimum: int = 1) -> Tuple[int, int]:
    """``(height, width)`` from an int (square), a pair, or text ``"N"`` / ``"HxW"`` / ``"H,W"``.

    Raises ``error`` (an :class:`~edgeseg.errors.EdgesegError` subclass by default) naming
    ``what`` when the value is not a size or a side is below ``minimum``.
    """
    if isinstance(size, str):
        parts = size.lower().replace(",", "x").split("x")
        try:
            vals = [int(p) for p in parts]
        except ValueError:
            vals = []
        if len(vals) == 1:
            vals *= 2
        if len(vals) != 2:
            raise error(f"{what} must be N or HxW (e.g. 256 or 256x512), got {size!r}")
        h, w = vals
    elif isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        h = w = int(size)
    else:
        try:
            vals = list(size)  # type: ignore[arg-type]
            h, w = (int(v) for v in vals)
            if any(isinstance(v, (float, np.floating)) and v != int(v) for v in vals):
                raise ValueError("not a whole number")  # 640.5 is not a size: never truncated silently
        except (TypeError, ValueError, OverflowError):  # OverflowError: inf
            raise error(f"{what} must be an int or (height, width), got {size!r:.80}") from None
    if h < minimum or w < minimum:
        need = "positive" if minimum <= 1 else f"at least {minimum}x{minimum}"
        raise error(f"{what} must be {need}, got ({h}, {w})")
    return h, w


# ---------------------------------------------------------------------------------- boxes
def box_area(boxes: np.ndarray) -> np.ndarray:
    """Areas of ``(..., 4)`` xyxy boxes (0 for empty or inverted boxes)."""
    b = np.asarray(boxes, np.float64)
    return np.prod(np.clip(b[..., 2:] - b[..., :2], 0, None), axis=-1)


def box_iou(a: np.ndarray, b: np.ndarray, paired: bool = False,
            crowd: Optional[np.ndarray] = None) -> np.ndarray:
    """IoU of xyxy boxes, in float64.

    Args:
        a: ``(N, 4)`` boxes.
        b: ``(M, 4)`` boxes.
        paired: return the ``(N,)`` IoU of ``a[i]`` with ``b[i]`` (``N == M``) instead of the
            ``(N, M)`` matrix.
        crowd: optional ``(M,)`` bools; for a crowd box of ``b`` the union is the area of the
            ``a`` box (COCO's ``iscrowd`` rule).

    Pairs with an empty union have IoU 0.
    """
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    if paired:
        if len(a) != len(b):
            raise ArrayError(f"box_iou(paired=True) needs as many boxes on both sides, got {len(a)} and {len(b)}")
    else:
        a, b = a[:, None, :], b[None, :, :]
    lt = np.maximum(a[..., :2], b[..., :2])
    rb = np.minimum(a[..., 2:], b[..., 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=-1)
    area_a, area_b = box_area(a), box_area(b)
    union = area_a + area_b - inter
    if crowd is not None:
        union = np.where(np.asarray(crowd, bool), area_a, union)
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


# ------------------------------------------------------------------------------ letterbox
@dataclass(frozen=True)
class LetterboxInfo:
    """How a frame was placed in the network input by :func:`edgeseg.ops.letterbox`.

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

    def to_frame(self, boxes: np.ndarray, clip: bool = True) -> np.ndarray:
        """``(K, 4)`` xyxy boxes in network-input pixels -> float32 frame pixels (clipped to the
        frame unless ``clip=False``)."""
        (H, W), (rh, rw) = self.src_hw, self.resized_hw
        boxes = np.asarray(boxes)
        out = np.empty((len(boxes), 4), np.float32)
        out[:, 0::2] = (boxes[:, 0::2] - self.pad_left) * (W / rw)
        out[:, 1::2] = (boxes[:, 1::2] - self.pad_top) * (H / rh)
        if clip:
            clip_boxes(out, (H, W))
        return out

    def to_network(self, boxes: np.ndarray) -> np.ndarray:
        """``(K, 4)`` xyxy boxes in frame pixels -> float32 network-input pixels."""
        (H, W), (rh, rw) = self.src_hw, self.resized_hw
        boxes = np.asarray(boxes)
        out = np.empty((len(boxes), 4), np.float32)
        out[:, 0::2] = boxes[:, 0::2] * (rw / W) + self.pad_left
        out[:, 1::2] = boxes[:, 1::2] * (rh / H) + self.pad_top
        return out


def clip_boxes(boxes: np.ndarray, hw: Sequence[int]) -> np.ndarray:
    """Clip ``(K, 4)`` xyxy boxes to a ``(H, W)`` frame in place; returns them."""
    H, W = int(hw[0]), int(hw[1])
    np.clip(boxes[:, 0::2], 0, W, out=boxes[:, 0::2])
    np.clip(boxes[:, 1::2], 0, H, out=boxes[:, 1::2])
    return boxes


def letterbox_info(src_hw: Sequence[int], size: SizeLike) -> LetterboxInfo:
    """The :class:`LetterboxInfo` of a frame of ``src_hw`` letterboxed into ``size``.

    The frame is scaled by ``min(h / H, w / W)`` (up or down), the resized size is rounded to the
    nearest pixel (at least 1) and centred; odd padding puts the extra row/column bottom/right.
    """
    H, W = int(src_hw[0]), int(src_hw[1])
    if H < 1 or W < 1:
        raise ArrayError(f"letterbox: image must be non-empty, got size ({H}, {W})")
    h, w = parse_size(size, "letterbox: size")
    return _letterbox_info(H, W, h, w)


@lru_cache(maxsize=256)
def _letterbox_info(H: int, W: int, h: int, w: int) -> LetterboxInfo:
    # Cached: a video stream asks for the same geometry every frame (LetterboxInfo is frozen).
    scale = min(h / H, w / W)
    rh = min(h, max(1, int(round(H * scale))))
    rw = min(w, max(1, int(round(W * scale))))
    return LetterboxInfo(
        src_hw=(H, W), dst_hw=(h, w), scale=scale, resized_hw=(rh, rw),
        pad_top=(h - rh) // 2, pad_left=(w - rw) // 2,
    )


__all__ = ["SizeLike", "parse_size", "box_area", "box_iou", "clip_boxes", "LetterboxInfo", "letterbox_info"]
