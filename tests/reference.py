"""Slow, obviously-correct numpy references for the C++ kernels in edgeseg.ops.

Everything is computed in float64 straight from the definitions in the docstrings of
edgeseg/ops.py and the headers in csrc/core/; no tricks, no speed. Used by the tests and
benchmarks/bench_kernels.py. Also here: the references of the PyTorch-side Mask R-CNN ops
(RoIAlign) and of the mask geometry of the instance augmentations.
"""
from __future__ import annotations

import math

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


# =================================================================================================
# Instance post-processing: nms, select_detections, assemble_masks, paste_masks, RLE, overlay.
# Literal definitions (python loops / full-frame float64 arrays), see csrc/core/nms.h, masks.h.
# =================================================================================================


def _ref_area(b) -> float:
    return max(b[2] - b[0], 0.0) * max(b[3] - b[1], 0.0)


def ref_iou(a, b) -> float:
    """IoU of two xyxy boxes given as python floats (float64), 0 when the union is not > 0."""
    iw = max(min(a[2], b[2]) - max(a[0], b[0]), 0.0)
    ih = max(min(a[3], b[3]) - max(a[1], b[1]), 0.0)
    inter = iw * ih
    union = _ref_area(a) + _ref_area(b) - inter
    return inter / union if union > 0.0 else 0.0


def ref_nms(boxes, scores, class_ids=None, iou_threshold=0.5, score_threshold=0.0,
            max_candidates=1000, max_detections=100, class_agnostic=False) -> np.ndarray:
    """Score filter (> threshold), stable top-k by score, greedy NMS against kept boxes."""
    b = [[float(v) for v in row] for row in np.asarray(boxes, np.float64)]
    s = [float(v) for v in np.asarray(scores, np.float32)]
    cls = None if class_ids is None or class_agnostic else [int(c) for c in class_ids]
    cand = [i for i in range(len(s)) if s[i] > score_threshold]
    cand.sort(key=lambda i: (-s[i], i))
    cand = cand[:max_candidates]
    keep: list = []
    for i in cand:
        if len(keep) >= max_detections:
            break
        if all((cls is not None and cls[j] != cls[i]) or not ref_iou(b[j], b[i]) > iou_threshold
               for j in keep):
            keep.append(i)
    return np.array(keep, np.int64)


def ref_select_detections(boxes, scores, iou_threshold=0.5, score_threshold=0.25,
                          max_candidates=1000, max_detections=100, class_agnostic=False):
    """Best class per anchor (first max, NaN ignored), then ref_nms with that class/score."""
    s = np.asarray(scores, np.float32)
    s = np.where(np.isnan(s), np.float32(-np.inf), s)
    cls = np.argmax(s, axis=1) if s.shape[1] else np.zeros(s.shape[0], np.int64)
    best = s[np.arange(s.shape[0]), cls] if s.shape[1] else np.full(s.shape[0], -np.inf,
                                                                      np.float32)
    idx = ref_nms(boxes, best, cls, iou_threshold, score_threshold, max_candidates,
                  max_detections, class_agnostic)
    return idx, cls[idx].astype(np.int32), best[idx].astype(np.float32)


def _proto_units(H, W, Hp, Wp, letterbox=None, input_hw=None):
    """u * cells / input for every frame row and column (float64): the frame pixel centre mapped
    into the network input (letterbox), then scaled to prototype cells."""
    if letterbox is not None:
        in_h, in_w = letterbox.dst_hw if input_hw is None else input_hw
        rh, rw = letterbox.resized_hw
        top, left = letterbox.pad_top, letterbox.pad_left
    else:
        in_h, in_w = (H, W) if input_hw is None else input_hw
        rh, rw, top, left = in_h, in_w, 0, 0
    y = np.arange(H, dtype=np.float64)
    x = np.arange(W, dtype=np.float64)
    uy = ((y + 0.5) * rh / H + top) * Hp / in_h
    ux = ((x + 0.5) * rw / W + left) * Wp / in_w
    return uy, ux


def ref_logit_threshold(t: float) -> float:
    if t <= 0.0:
        return -np.inf
    if t >= 1.0:
        return np.inf
    return float(np.log(t / (1.0 - t)))


def ref_assemble_masks(coeffs, protos, boxes, image_hw, letterbox=None, input_hw=None,
                       threshold=0.5, mode="exact"):
    """(masks bool (K, H, W), margin float64 (K, H, W)): per frame pixel whose centre is inside
    the box, the bilinearly interpolated (or nearest, mode="fast") prototype logit vs the logit
    threshold; margin = |logit - threshold| (inf outside boxes, where the result is exact)."""
    H, W = image_hw
    M, Hp, Wp = protos.shape
    uy, ux = _proto_units(H, W, Hp, Wp, letterbox, input_hw)
    P = protos.astype(np.float64)
    if mode == "exact":
        planes = bilinear_sample(P, uy - 0.5, ux - 0.5)  # (M, H, W), edge-clamped
    else:
        cy = np.clip(np.floor(uy), 0, Hp - 1).astype(np.int64)
        cx = np.clip(np.floor(ux), 0, Wp - 1).astype(np.int64)
        planes = P[:, cy][:, :, cx]
    thr = ref_logit_threshold(float(threshold))
    K = coeffs.shape[0]
    masks = np.zeros((K, H, W), bool)
    margin = np.full((K, H, W), np.inf)
    cy_ = np.arange(H, dtype=np.float64) + 0.5
    cx_ = np.arange(W, dtype=np.float64) + 0.5
    for k in range(K):
        x0, y0, x1, y1 = (float(v) for v in np.asarray(boxes[k], np.float64))
        inside = ((y0 <= cy_) & (cy_ < y1))[:, None] & ((x0 <= cx_) & (cx_ < x1))[None, :]
        m = np.tensordot(coeffs[k].astype(np.float64), planes, axes=1)
        masks[k] = inside & (m > thr)
        margin[k] = np.where(inside, np.abs(m - thr), np.inf)
    return masks, margin


def ref_paste_masks(masks, boxes, image_hw, threshold=0.5):
    """(masks bool (N, H, W), margin): detectron2's CPU paste, per mask: region
    [floor(x0)-1, ceil(x1)+1) clipped; sample at ix = (x+0.5-x0)/(x1-x0)*Mw - 0.5 with explicit
    bilinear weights, taps outside the mask read 0; >= threshold."""
    H, W = image_hw
    N, Mh, Mw = masks.shape
    out = np.zeros((N, H, W), bool)
    margin = np.full((N, H, W), np.inf)
    for k in range(N):
        x0, y0, x1, y1 = (float(v) for v in np.asarray(boxes[k], np.float64))
        if not (np.isfinite([x0, y0, x1, y1]).all() and x1 > x0 and y1 > y0):
            continue
        rx0, rx1 = int(np.clip(np.floor(x0) - 1, 0, W)), int(np.clip(np.ceil(x1) + 1, 0, W))
        ry0, ry1 = int(np.clip(np.floor(y0) - 1, 0, H)), int(np.clip(np.ceil(y1) + 1, 0, H))
        if rx1 <= rx0 or ry1 <= ry0:
            continue
        xs = np.arange(rx0, rx1, dtype=np.float64)
        ys = np.arange(ry0, ry1, dtype=np.float64)
        # clip only keeps huge positions (near-degenerate boxes) finite; they read zeros anyway
        ix = np.clip((xs + 0.5 - x0) / (x1 - x0) * Mw - 0.5, -2, Mw + 1)
        iy = np.clip((ys + 0.5 - y0) / (y1 - y0) * Mh - 0.5, -2, Mh + 1)
        m = masks[k].astype(np.float64)
        val = np.zeros((ys.size, xs.size))
        fy0 = np.floor(iy)
        fx0 = np.floor(ix)
        for dy in (0, 1):
            r = fy0.astype(np.int64) + dy
            wy = (iy - fy0) if dy else (1 - (iy - fy0))
            for dx in (0, 1):
                c = fx0.astype(np.int64) + dx
                wx = (ix - fx0) if dx else (1 - (ix - fx0))
                ok = ((r >= 0) & (r < Mh))[:, None] & ((c >= 0) & (c < Mw))[None, :]
                tap = m[np.clip(r, 0, Mh - 1)][:, np.clip(c, 0, Mw - 1)]
                val += wy[:, None] * wx[None, :] * np.where(ok, tap, 0.0)
        out[k, ry0:ry1, rx0:rx1] = val >= threshold
        margin[k, ry0:ry1, rx0:rx1] = np.abs(val - threshold)
    return out, margin


def detectron2_paste(masks, boxes, image_hw, threshold=None):
    """detectron2's paste_masks_in_image as it runs on CPU, in torch: one mask per chunk,
    skip_empty (each mask grid_sampled over its box's pixel region only). masks (N, M, M) and
    boxes (N, 4) xyxy are float32 tensors. Returns (N, H, W) bool (sample >= threshold), or the
    sampled float values (0 outside the regions) when threshold is None."""
    import torch
    import torch.nn.functional as F

    H, W = image_hw
    out = torch.zeros((masks.shape[0], H, W), dtype=torch.float32 if threshold is None else torch.bool)
    for i in range(masks.shape[0]):
        m = masks[i:i + 1, None]
        b = boxes[i:i + 1]
        x0i, y0i = torch.clamp(b.min(dim=0).values.floor()[:2] - 1, min=0).to(torch.int32)
        x1i = torch.clamp(b[:, 2].max().ceil() + 1, max=W).to(torch.int32)
        y1i = torch.clamp(b[:, 3].max().ceil() + 1, max=H).to(torch.int32)
        if x1i <= x0i or y1i <= y0i:  # box outside the frame: torch.arange would raise;
            continue                    # detectron2 clips boxes before pasting
        x0, y0, x1, y1 = torch.split(b, 1, dim=1)
        img_y = torch.arange(y0i, y1i, dtype=torch.float32) + 0.5
        img_x = torch.arange(x0i, x1i, dtype=torch.float32) + 0.5
        img_y = (img_y - y0) / (y1 - y0) * 2 - 1
        img_x = (img_x - x0) / (x1 - x0) * 2 - 1
        gx = img_x[:, None, :].expand(1, img_y.size(1), img_x.size(1))
        gy = img_y[:, :, None].expand(1, img_y.size(1), img_x.size(1))
        grid = torch.stack([gx, gy], dim=3)
        val = F.grid_sample(m, grid, align_corners=False)[:, 0]
        out[i:i + 1, y0i:y1i, x0i:x1i] = val if threshold is None else val >= threshold
    return out


def ref_rle(mask: np.ndarray) -> dict:
    """pycocotools.mask.encode of a dense HxW mask, counts as str."""
    from pycocotools import mask as mask_utils

    r = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in r["size"]], "counts": r["counts"].decode("ascii")}


def ref_overlay_instances(image, masks, colors, alpha, outline=True):
    """Sequential per-mask fixed-point blend over dense (K, H, W) masks; boundary pixels (a
    4-neighbour outside the mask or the frame) painted with the opaque colour when outline."""
    a = int(np.floor(alpha * 65536.0 + 0.5))
    out = image.astype(np.int64)
    for k in range(masks.shape[0]):
        m = masks[k].astype(bool)
        p = np.pad(m, 1)
        interior = m & p[:-2, 1:-1] & p[2:, 1:-1] & p[1:-1, :-2] & p[1:-1, 2:]
        edge = (m & ~interior) if outline else np.zeros_like(m)
        col = colors[k].astype(np.int64)
        blend = (out * (65536 - a) + col * a + 32768) >> 16
        out = np.where((m & ~edge)[..., None], blend, out)
        out[edge] = col
    return out.astype(np.uint8)


# =================================================================================================
# Tracking: mask IoU of box-local masks, linear assignment with a cost limit (csrc/core/track.h).
# =================================================================================================


def ref_mask_iou(dense_a: np.ndarray, dense_b: np.ndarray, shift=None) -> np.ndarray:
    """IoU of dense (K, H, W) and (M, H, W) masks, each mask of a first moved by shift[k] =
    (dx, dy) on an unbounded canvas (pixels moved outside the frame still count in its area)."""
    K, H, W = dense_a.shape
    M = dense_b.shape[0]
    out = np.zeros((K, M), np.float64)
    for k in range(K):
        ys, xs = np.nonzero(dense_a[k])
        if shift is not None:
            xs, ys = xs + int(shift[k][0]), ys + int(shift[k][1])
        pts = set(zip(ys.tolist(), xs.tolist()))
        for j in range(M):
            yb, xb = np.nonzero(dense_b[j])
            other = set(zip(yb.tolist(), xb.tolist()))
            inter, union = len(pts & other), len(pts | other)
            out[k, j] = inter / union if union else 0.0
    return out


def ref_assignment_cost(cost: np.ndarray, limit: float, rows, cols) -> float:
    """Total of a matching: matched pair costs + limit / 2 per unmatched row and column."""
    n, m = cost.shape
    return float(sum(cost[r, c] for r, c in zip(rows, cols)) + (n + m - 2 * len(rows)) * limit / 2)


def ref_linear_assignment_cost(cost: np.ndarray, limit: float) -> float:
    """Lowest total over every partial matching whose pairs have cost <= limit (brute force)."""
    import itertools

    n, m = cost.shape
    best = (n + m) * limit / 2
    for k in range(1, min(n, m) + 1):
        for rows in itertools.combinations(range(n), k):
            for cols in itertools.permutations(range(m), k):
                if all(cost[r, c] <= limit for r, c in zip(rows, cols)):
                    best = min(best, ref_assignment_cost(cost, limit, rows, cols))
    return best


# ---- Mask R-CNN (PyTorch side)


def ref_bilinear(f: np.ndarray, y: float, x: float) -> np.ndarray:
    """torchvision / ONNX RoIAlign bilinear sample of a (C, H, W) map at (y, x), float64."""
    c, h, w = f.shape
    if y < -1.0 or y > h or x < -1.0 or x > w:
        return np.zeros(c)
    y, x = max(y, 0.0), max(x, 0.0)
    y0, x0 = int(y), int(x)
    if y0 >= h - 1:
        y0 = y1 = h - 1
        y = float(y0)
    else:
        y1 = y0 + 1
    if x0 >= w - 1:
        x0 = x1 = w - 1
        x = float(x0)
    else:
        x1 = x0 + 1
    ly, lx = y - y0, x - x0
    return (f[:, y0, x0] * (1 - ly) * (1 - lx) + f[:, y0, x1] * (1 - ly) * lx
            + f[:, y1, x0] * ly * (1 - lx) + f[:, y1, x1] * ly * lx)


def ref_roi_align(feat, boxes, bidx, ph, pw, scale, sr, aligned=True) -> np.ndarray:
    """RoIAlign straight from its definition: per bin the mean of sr x sr bilinear samples."""
    feat = np.asarray(feat, np.float64)
    out = np.zeros((len(boxes), feat.shape[1], ph, pw))
    off = 0.5 if aligned else 0.0
    for k, b in enumerate(boxes):
        x0, y0, x1, y1 = (float(v) * scale - off for v in b)
        rw, rh = x1 - x0, y1 - y0
        if not aligned:
            rw, rh = max(rw, 1.0), max(rh, 1.0)
        for py in range(ph):
            for px in range(pw):
                acc = np.zeros(feat.shape[1])
                for iy in range(sr):
                    for ix in range(sr):
                        y = y0 + py * rh / ph + (iy + 0.5) * rh / ph / sr
                        x = x0 + px * rw / pw + (ix + 0.5) * rw / pw / sr
                        acc += ref_bilinear(feat[int(bidx[k])], y, x)
                out[k, :, py, px] = acc / (sr * sr)
    return out


# ---- instance masks and augmentations


def ref_masks_to_boxes(masks) -> np.ndarray:
    """Tight xyxy boxes of bool masks (zeros for an empty mask), pixel by pixel."""
    out = np.zeros((len(masks), 4), np.float32)
    for i, m in enumerate(masks):
        ys, xs = np.nonzero(m)
        if ys.size:
            out[i] = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
    return out


def ref_warp_masks(masks, out_hw, scale, offset) -> np.ndarray:
    """Slow per-pixel nearest-neighbour map at pixel centres."""
    n, h, w = masks.shape
    out = np.zeros((n,) + tuple(out_hw), bool)
    for yo in range(out_hw[0]):
        ys = math.floor((yo + 0.5 - offset[0]) / scale[0])
        for xo in range(out_hw[1]):
            xs = math.floor((xo + 0.5 - offset[1]) / scale[1])
            if 0 <= ys < h and 0 <= xs < w:
                out[:, yo, xo] = masks[:, ys, xs]
    return out
