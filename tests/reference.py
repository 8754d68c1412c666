"""Slow, obviously-correct numpy references for the C++ kernels in edgeseg.ops.

Everything is computed in float64 straight from the definitions in the docstrings of
edgeseg/ops.py and the headers in csrc/core/; no tricks, no speed. Used by tests/test_ops*.py and
benchmarks/bench_kernels.py.
"""
from __future__ import annotations

import numpy as np


def ref_argmax(logits: np.ndarray) -> np.ndarray:
    """argmax over the channel axis (-3), labels uint8 if C <= 255 else int32."""
    c = logits.shape[-3]
    return np.argmax(logits, axis=-3).astype(np.uint8 if c <= 255 else np.int32)


def _taps(pos: np.ndarray, n_in: int):
    """Bilinear taps at continuous pixel-centre positions, border-clamped (cv2/torch style)."""
    pos = np.maximum(pos, 0.0)
    i0 = np.floor(pos).astype(np.int64)
    f = pos - i0
    over = i0 >= n_in - 1
    i0 = np.where(over, n_in - 1, i0)
    f = np.where(over, 0.0, f)
    i1 = np.minimum(i0 + 1, n_in - 1)
    return i0, i1, f


def bilinear_sample(planes: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """Sample (C, h, w) planes at rows ys (len H) x cols xs (len W) -> float64 (C, H, W)."""
    planes = planes.astype(np.float64)
    _, h, w = planes.shape
    y0, y1, fy = _taps(np.asarray(ys, np.float64), h)
    x0, x1, fx = _taps(np.asarray(xs, np.float64), w)
    fy = fy[None, :, None]
    fx = fx[None, None, :]
    top = planes[:, y0][:, :, x0] * (1 - fx) + planes[:, y0][:, :, x1] * fx
    bot = planes[:, y1][:, :, x0] * (1 - fx) + planes[:, y1][:, :, x1] * fx
    return top * (1 - fy) + bot * fy


def sample_positions(out_hw, logits_hw, letterbox=None):
    """Logits-space sampling positions (ys, xs) of every output row/column.

    Without letterbox: half-pixel resize, s = (d + 0.5) * in / out - 0.5.
    With letterbox: the frame pixel centre mapped into the network input, then to logits space:
    s = ((d + 0.5) * rh / H + pad_top) * h / h_in - 0.5.
    """
    H, W = out_hw
    h, w = logits_hw
    y = np.arange(H, dtype=np.float64)
    x = np.arange(W, dtype=np.float64)
    if letterbox is None:
        return (y + 0.5) * h / H - 0.5, (x + 0.5) * w / W - 0.5
    rh, rw = letterbox.resized_hw
    h_in, w_in = letterbox.dst_hw
    ys = ((y + 0.5) * rh / H + letterbox.pad_top) * h / h_in - 0.5
    xs = ((x + 0.5) * rw / W + letterbox.pad_left) * w / w_in - 0.5
    return ys, xs


def ref_upsample_logits(logits: np.ndarray, out_hw, letterbox=None) -> np.ndarray:
    """Full-resolution float64 logits (C, H, W) that upsample_argmax takes the argmax of."""
    ys, xs = sample_positions(out_hw, logits.shape[1:], letterbox)
    return bilinear_sample(logits, ys, xs)


def ref_upsample_argmax(logits: np.ndarray, out_hw, letterbox=None):
    """(labels, margin): float64 reference labels and the top-1 minus top-2 logit per pixel."""
    up = ref_upsample_logits(logits, out_hw, letterbox)
    labels = ref_argmax(up)
    if up.shape[0] == 1:
        margin = np.full(up.shape[1:], np.inf)
    else:
        part = np.partition(up, up.shape[0] - 2, axis=0)
        margin = part[-1] - part[-2]
    return labels, margin


def ref_letterbox_geometry(src_hw, size):
    """(rh, rw, pad_top, pad_left) from the letterbox rule: scale = min(h/H, w/W), round, centre."""
    H, W = src_hw
    h, w = (size, size) if np.isscalar(size) else size
    s = min(h / H, w / W)
    rh = min(h, max(1, int(round(H * s))))
    rw = min(w, max(1, int(round(W * s))))
    return rh, rw, (h - rh) // 2, (w - rw) // 2


def ref_resize_bilinear(image: np.ndarray, rh: int, rw: int) -> np.ndarray:
    """float64 HxWx3 -> rh x rw x 3 half-pixel bilinear resize (cv2.INTER_LINEAR, no rounding)."""
    H, W = image.shape[:2]
    ys = (np.arange(rh) + 0.5) * H / rh - 0.5
    xs = (np.arange(rw) + 0.5) * W / rw - 0.5
    chw = np.transpose(image, (2, 0, 1))
    return np.transpose(bilinear_sample(chw, ys, xs), (1, 2, 0))


def ref_letterbox(image, size, mean, std, pad_value) -> np.ndarray:
    """float64 (1, 3, h, w) normalised RGB letterboxed tensor."""
    h, w = (size, size) if np.isscalar(size) else size
    rh, rw, top, left = ref_letterbox_geometry(image.shape[:2], (h, w))
    canvas = np.empty((h, w, 3), np.float64)
    canvas[...] = np.broadcast_to(np.asarray(pad_value, np.float64), (3,))[::-1]  # RGB -> BGR
    canvas[top:top + rh, left:left + rw] = ref_resize_bilinear(image, rh, rw)
    rgb = canvas[:, :, ::-1]
    out = (rgb - np.asarray(mean, np.float64)) / np.asarray(std, np.float64)
    return np.transpose(out, (2, 0, 1))[None]


def ref_overlay(image: np.ndarray, labels: np.ndarray, palette: np.ndarray, alpha: float):
    """Exact 16-bit fixed-point blend: (img*(65536-a) + col*a + 32768) >> 16 where 0 <= label < K."""
    a = int(np.floor(alpha * 65536.0 + 0.5))
    lab = labels.astype(np.int64)
    k = palette.shape[0]
    valid = (lab >= 0) & (lab < k)
    col = palette.astype(np.int64)[np.where(valid, lab, 0)]
    blend = (image.astype(np.int64) * (65536 - a) + col * a + 32768) >> 16
    return np.where(valid[..., None], blend, image).astype(np.uint8)
