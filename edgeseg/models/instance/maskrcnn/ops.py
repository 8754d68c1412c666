"""Detection ops of Mask R-CNN in plain PyTorch, each exporting to one standard ONNX operator.

* :func:`roi_align` - RoIAlign (bilinear, fixed ``sampling_ratio``, ``aligned`` half-pixel
  offsets; the torchvision / detectron2 ``ROIAlignV2`` / ONNX ``RoiAlign`` definition). Eager and
  training: bilinear sampling is separable, so each box's pooled features are ``Wy @ map @ Wx^T``
  with per-axis interpolation weight matrices - two matrix products, differentiable with respect
  to the features and several times faster on a CPU than ``grid_sample`` (whose backward is a
  scatter). Under ``torch.onnx.export``: ONNX ``RoiAlign`` (opset 16+,
  ``coordinate_transformation_mode="half_pixel"`` when aligned).
* :func:`multilevel_roi_align` - FPN RoI pooling, each RoI from its level (eager: RoIs grouped by
  level; ONNX: per level ``NonZero`` + ``Gather`` of its RoIs, ``RoiAlign``, ``ScatterND`` back).
* :func:`batched_nms` - greedy NMS where boxes of different groups (classes, FPN levels) never
  suppress each other, kept indices by descending score. Eager: the C++ core's
  :func:`edgeseg.ops.nms`; ONNX: ``NonMaxSuppression`` (one "class" per group) + ``TopK``.
* Box geometry: :func:`box_iou_torch` (the numpy one is :func:`edgeseg.geometry.box_iou`),
  :func:`encode_boxes` / :func:`decode_boxes` (the R-CNN ``(dx, dy, dw, dh)`` parameterisation),
  :func:`grid_anchors`, :func:`assign_levels`.

Boxes are ``x0, y0, x1, y1`` in pixel edges (width ``x1 - x0``). A feature map of stride ``s``
has cell ``(i, j)`` centred at input pixel coordinate ``((j + 0.5) s, (i + 0.5) s)``; with
``aligned=True`` RoIAlign samples a box at exactly the input positions it covers.
"""
from __future__ import annotations

import contextlib
import math
import warnings
from typing import Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch

#: Largest ``dw``/``dh`` before ``exp`` (boxes at most 1000/16 times their reference).
BBOX_CLAMP = math.log(1000.0 / 16)
_F32_LOWEST = float(np.finfo(np.float32).min)


@contextlib.contextmanager
def _quiet_tracer() -> Iterator[None]:
    """Silence TracerWarnings from the eager body of an op whose ONNX form is its symbolic."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        yield


def exporting() -> bool:
    """True while ``torch.onnx.export`` traces the model."""
    return bool(torch.onnx.is_in_onnx_export())


# ------------------------------------------------------------------------------ box geometry


def box_area(b: torch.Tensor) -> torch.Tensor:
    """Areas of (..., 4) xyxy boxes (0 for empty ones)."""
    return (b[..., 2] - b[..., 0]).clamp(min=0) * (b[..., 3] - b[..., 1]).clamp(min=0)


def box_iou_torch(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(N, M) IoU of xyxy boxes ``a`` (N, 4) and ``b`` (M, 4); 0 where the union is empty."""
    lt = torch.maximum(a[:, None, :2], b[None, :, :2])
    rb = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    union = box_area(a)[:, None] + box_area(b)[None, :] - inter
    return torch.where(union > 0, inter / union.clamp(min=1e-12), torch.zeros_like(inter))


def encode_boxes(ref: torch.Tensor, gt: torch.Tensor, weights: Sequence[float] = (1.0, 1.0, 1.0, 1.0)
                 ) -> torch.Tensor:
    """Regression targets ``(dx, dy, dw, dh)`` taking ``ref`` boxes to ``gt`` boxes (both (N, 4)):
    ``dx = wx * (gx - rx) / rw``, ``dw = ww * log(gw / rw)`` (centres and sizes)."""
    wx, wy, ww, wh = weights
    rw, rh = ref[:, 2] - ref[:, 0], ref[:, 3] - ref[:, 1]
    rx, ry = ref[:, 0] + 0.5 * rw, ref[:, 1] + 0.5 * rh
    gw, gh = gt[:, 2] - gt[:, 0], gt[:, 3] - gt[:, 1]
    gx, gy = gt[:, 0] + 0.5 * gw, gt[:, 1] + 0.5 * gh
    return torch.stack([wx * (gx - rx) / rw, wy * (gy - ry) / rh,
                        ww * torch.log(gw / rw), wh * torch.log(gh / rh)], 1)


def decode_boxes(deltas: torch.Tensor, ref: torch.Tensor, weights: Sequence[float] = (1.0, 1.0, 1.0, 1.0)
                 ) -> torch.Tensor:
    """Inverse of :func:`encode_boxes`: ``deltas`` (..., 4) applied to ``ref`` (..., 4) (broadcast),
    ``dw``/``dh`` clamped at :data:`BBOX_CLAMP`."""
    wx, wy, ww, wh = weights
    rw, rh = ref[..., 2] - ref[..., 0], ref[..., 3] - ref[..., 1]
    rx, ry = ref[..., 0] + 0.5 * rw, ref[..., 1] + 0.5 * rh
    dx, dy = deltas[..., 0] / wx, deltas[..., 1] / wy
    dw = (deltas[..., 2] / ww).clamp(max=BBOX_CLAMP)
    dh = (deltas[..., 3] / wh).clamp(max=BBOX_CLAMP)
    cx, cy = dx * rw + rx, dy * rh + ry
    w, h = torch.exp(dw) * rw, torch.exp(dh) * rh
    return torch.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], -1)


def clip_boxes(boxes: torch.Tensor, hw: Tuple[int, int]) -> torch.Tensor:
    """Clip (..., 4) xyxy boxes to an ``(h, w)`` image."""
    h, w = float(hw[0]), float(hw[1])
    x = boxes[..., 0::2].clamp(0.0, w)
    y = boxes[..., 1::2].clamp(0.0, h)
    return torch.stack([x[..., 0], y[..., 0], x[..., 1], y[..., 1]], -1)


def cell_anchors(size: float, ratios: Sequence[float], scales: Sequence[float]) -> torch.Tensor:
    """(len(scales) * len(ratios), 4) anchors centred at 0: area ``(size * scale)^2``, aspect
    ``h / w = ratio``; scale-major order."""
    out = []
    for s in scales:
        area = (size * s) ** 2
        for r in ratios:
            w = math.sqrt(area / r)
            h = w * r
            out.append([-w / 2, -h / 2, w / 2, h / 2])
    return torch.tensor(out, dtype=torch.float32)


def grid_anchors(hw: Tuple[int, int], stride: int, cell: torch.Tensor) -> torch.Tensor:
    """(h * w * A, 4) anchors of one level: ``cell`` (A, 4) shifted to every cell centre
    ``((j + 0.5) s, (i + 0.5) s)``; order (row, column, anchor), matching a head output
    (N, A*k, h, w) permuted to (N, h, w, A, k)."""
    h, w = hw
    ys = (torch.arange(h, dtype=torch.float32, device=cell.device) + 0.5) * stride
    xs = (torch.arange(w, dtype=torch.float32, device=cell.device) + 0.5) * stride
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    shift = torch.stack([gx, gy, gx, gy], -1).reshape(-1, 1, 4)
    return (shift + cell[None]).reshape(-1, 4)


def assign_levels(boxes: torch.Tensor, num_levels: int, min_level: int, canonical_size: float = 224.0,
                  canonical_level: int = 4) -> torch.Tensor:
    """FPN level index (0 = finest) of each RoI (K, 4): ``floor(canonical_level +
    log2(sqrt(area) / canonical_size))``, clamped to the available levels (Eq. 1 of the FPN paper)."""
    size = torch.sqrt(box_area(boxes))
    lvl = torch.floor(canonical_level + torch.log2(size / canonical_size + 1e-8))
    return (lvl.clamp(min_level, min_level + num_levels - 1) - min_level).to(torch.int64)


# ----------------------------------------------------------------------------------- RoIAlign


def _sample_positions(start: torch.Tensor, length: torch.Tensor, bins: int, sr: int) -> torch.Tensor:
    """(K, bins * sr) sample coordinates: bin ``p``, sample ``i`` at
    ``start + (p + (i + 0.5) / sr) * length / bins``."""
    t = (torch.arange(bins * sr, dtype=start.dtype, device=start.device) + 0.5) / sr
    return start[:, None] + t[None, :] * (length / bins)[:, None]


def _axis_weights(start: torch.Tensor, length: torch.Tensor, bins: int, sr: int, n: int) -> torch.Tensor:
    """(K, bins, n) RoIAlign interpolation weights along one axis: row ``p`` averages the linear
    interpolation weights of bin ``p``'s ``sr`` sample points over the ``n`` pixels. A point more
    than one pixel outside the map contributes 0; points in the outer band are clamped to the edge
    pixel (the RoIAlign rule). Bilinear sampling is separable, so RoIAlign of a (C, H, W) map is
    ``Wy @ map @ Wx^T`` per box."""
    pos = _sample_positions(start, length, bins, sr)  # (K, bins*sr), pixel-index coordinates
    valid = ((pos >= -1.0) & (pos <= n)).to(pos.dtype)
    p = pos.clamp(min=0.0)
    low = torch.floor(p).clamp(max=n - 1)
    frac = torch.where(low >= n - 1, torch.zeros_like(p), p - low)
    low_i = low.to(torch.int64)
    high_i = (low_i + 1).clamp(max=n - 1)
    w = pos.new_zeros((pos.shape[0], pos.shape[1], n))
    w.scatter_add_(2, low_i[..., None], ((1.0 - frac) * valid)[..., None])
    w.scatter_add_(2, high_i[..., None], (frac * valid)[..., None])
    return w.view(pos.shape[0], bins, sr, n).mean(2)


def _roi_weights(boxes: torch.Tensor, hw: Tuple[int, int], out_hw: Tuple[int, int], spatial_scale: float, sr: int,
                 aligned: bool) -> Tuple[torch.Tensor, torch.Tensor]:
    """Per box the row weights (K, ph, H) and column weights (K, pw, W) of RoIAlign."""
    b = boxes * spatial_scale - (0.5 if aligned else 0.0)
    bw, bh = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    if not aligned:  # legacy RoIAlign: RoIs at least 1x1
        bw, bh = bw.clamp(min=1.0), bh.clamp(min=1.0)
    return (_axis_weights(b[:, 1], bh, out_hw[0], sr, hw[0]), _axis_weights(b[:, 0], bw, out_hw[1], sr, hw[1]))


def _apply_weights(fmap: torch.Tensor, wy: torch.Tensor, wx: torch.Tensor) -> torch.Tensor:
    """RoIAlign of S boxes on one map (C, H, W) from their weights (S, ph, H), (S, pw, W) -> (S, C, ph, pw),
    as two matrix products (dense, fast forward and backward on CPU)."""
    c, h, w = fmap.shape
    s, ph, pw = wy.shape[0], wy.shape[1], wx.shape[1]
    t = torch.matmul(wy.reshape(s * ph, h), fmap.transpose(0, 1).reshape(h, c * w))  # (S*ph, C*W)
    t = torch.bmm(t.view(s, ph * c, w), wx.transpose(1, 2))  # (S, ph*C, pw)
    return t.view(s, ph, c, pw).transpose(1, 2)


def _roi_align_eager(feat: torch.Tensor, boxes: torch.Tensor, batch_idx: torch.Tensor, out_hw: Tuple[int, int],
                     spatial_scale: float, sampling_ratio: int, aligned: bool) -> torch.Tensor:
    n, c, h, w = feat.shape
    ph, pw = out_hw
    k = boxes.shape[0]
    if k == 0:
        return feat.new_zeros((0, c, ph, pw))
    wy, wx = _roi_weights(boxes.detach().to(feat.dtype), (h, w), out_hw, spatial_scale, int(sampling_ratio), aligned)
    if n == 1:
        return _apply_weights(feat[0], wy, wx)
    order = torch.argsort(batch_idx, stable=True)
    counts = torch.bincount(batch_idx, minlength=n).tolist()
    parts = [_apply_weights(feat[i], wy[sel], wx[sel])
             for i, sel in enumerate(torch.split(order, counts)) if counts[i]]
    return _unsort(torch.cat(parts), order)


def _unsort(x: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    """Rows computed in ``order`` back to the original order (one gather; its backward is one
    scatter, much cheaper than an indexed assignment per group)."""
    inv = torch.empty_like(order)
    inv[order] = torch.arange(order.numel(), device=order.device)
    return x[inv]


class _RoiAlignOnnx(torch.autograd.Function):
    """RoIAlign that exports as one ONNX ``RoiAlign`` node (forward: the eager implementation)."""

    @staticmethod
    def forward(ctx, feat, boxes, batch_idx, ph: int, pw: int, scale: float, sr: int, aligned: bool):  # noqa: D102
        with _quiet_tracer():
            return _roi_align_eager(feat, boxes, batch_idx, (ph, pw), scale, sr, aligned)

    @staticmethod
    def symbolic(g, feat, boxes, batch_idx, ph, pw, scale, sr, aligned):  # noqa: D102
        return g.op("RoiAlign", feat, boxes, batch_idx,
                    coordinate_transformation_mode_s="half_pixel" if aligned else "output_half_pixel",
                    mode_s="avg", output_height_i=int(ph), output_width_i=int(pw), sampling_ratio_i=int(sr),
                    spatial_scale_f=float(scale))


def roi_align(feat: torch.Tensor, boxes: torch.Tensor, batch_idx: torch.Tensor, output_size: Tuple[int, int],
              spatial_scale: float, sampling_ratio: int = 2, aligned: bool = True) -> torch.Tensor:
    """RoIAlign: ``feat`` (N, C, H, W), ``boxes`` (K, 4) xyxy in input pixels, ``batch_idx`` (K,)
    int64 image of each box -> (K, C, ph, pw).

    Each output bin averages ``sampling_ratio^2`` bilinear samples at regularly spaced points;
    box coordinates are scaled by ``spatial_scale`` and, with ``aligned``, shifted by half a pixel
    so that a box covering input pixels [x0, x1) samples exactly there. Samples more than one
    pixel outside the map read 0, samples in the outer half-pixel band are clamped to the edge.
    Differentiable with respect to ``feat``.
    """
    if sampling_ratio < 1:
        raise ValueError(f"roi_align: sampling_ratio must be >= 1 (adaptive sampling does not export), "
                         f"got {sampling_ratio}")
    ph, pw = (int(output_size), int(output_size)) if isinstance(output_size, int) else (int(v) for v in output_size)
    if exporting():
        return _RoiAlignOnnx.apply(feat, boxes, batch_idx.to(torch.int64), ph, pw, float(spatial_scale),
                                   int(sampling_ratio), bool(aligned))
    return _roi_align_eager(feat, boxes, batch_idx, (ph, pw), float(spatial_scale), int(sampling_ratio),
                            bool(aligned))


def roi_align_per_roi(images: torch.Tensor, boxes: torch.Tensor, output_size: Tuple[int, int],
                      spatial_scale: float = 1.0, sampling_ratio: int = 2, aligned: bool = True) -> torch.Tensor:
    """RoIAlign of box ``k`` on its own map ``images[k]``: ``images`` (K, C, H, W), ``boxes`` (K, 4)
    -> (K, C, ph, pw). The same sampling as :func:`roi_align` with ``batch_idx = arange(K)``, in
    batched matrix products (mask targets: each RoI's matched ground-truth mask)."""
    ph, pw = (int(output_size), int(output_size)) if isinstance(output_size, int) else (int(v) for v in output_size)
    k, c, h, w = images.shape
    if boxes.shape[0] != k:
        raise ValueError(f"roi_align_per_roi: {k} maps but {boxes.shape[0]} boxes")
    if k == 0:
        return images.new_zeros((0, c, ph, pw))
    wy, wx = _roi_weights(boxes.detach().to(images.dtype), (h, w), (ph, pw), spatial_scale, int(sampling_ratio),
                          aligned)
    t = torch.matmul(wy[:, None], images)  # (K, C, ph, W)
    return torch.matmul(t, wx.transpose(1, 2)[:, None])  # (K, C, ph, pw)


def multilevel_roi_align(feats: Sequence[torch.Tensor], strides: Sequence[int], boxes: torch.Tensor,
                         batch_idx: torch.Tensor, levels: torch.Tensor, output_size: Tuple[int, int],
                         sampling_ratio: int = 2) -> torch.Tensor:
    """Pool each RoI from its FPN level (``levels`` (K,) indexes ``feats``): (K, C, ph, pw)."""
    if exporting():  # NonZero + Gather per level, RoiAlign on that level's RoIs, ScatterND back
        ph, pw = (output_size, output_size) if isinstance(output_size, int) else output_size
        out = feats[0].new_zeros((boxes.shape[0], feats[0].shape[1], ph, pw))
        for lvl, (f, s) in enumerate(zip(feats, strides)):
            idx = torch.nonzero(levels == lvl).flatten()
            pooled = roi_align(f, boxes[idx], batch_idx[idx], (ph, pw), 1.0 / s, sampling_ratio)
            out = out.index_put((idx,), pooled)
        return out
    ph, pw = (output_size, output_size) if isinstance(output_size, int) else output_size
    if boxes.shape[0] == 0:
        return feats[0].new_zeros((0, feats[0].shape[1], ph, pw))
    order = torch.argsort(levels, stable=True)
    counts = torch.bincount(levels, minlength=len(feats)).tolist()
    parts = [roi_align(feats[lvl], boxes[sel], batch_idx[sel], (ph, pw), 1.0 / strides[lvl], sampling_ratio)
             for lvl, sel in enumerate(torch.split(order, counts)) if counts[lvl]]
    return _unsort(torch.cat(parts), order)


# ---------------------------------------------------------------------------------------- NMS


def _nms_eager(boxes: torch.Tensor, scores: torch.Tensor, groups: torch.Tensor, iou_threshold: float,
               max_output: int, score_threshold: float) -> torch.Tensor:
    from .... import ops

    if boxes.shape[0] == 0 or max_output == 0:
        return torch.zeros(0, dtype=torch.int64, device=boxes.device)
    b = np.ascontiguousarray(boxes.detach().float().cpu().numpy())
    s = np.ascontiguousarray(scores.detach().float().cpu().numpy())
    gr = np.ascontiguousarray(groups.detach().cpu().numpy().astype(np.int64))
    keep = ops.nms(b, s, gr, iou_threshold=iou_threshold, score_threshold=score_threshold,
                   max_candidates=len(s), max_detections=int(max_output))
    return torch.from_numpy(keep).to(boxes.device)


class _NmsOnnx(torch.autograd.Function):
    """Grouped NMS exported as ONNX ``NonMaxSuppression`` (one score row per group) + ``TopK``."""

    @staticmethod
    def forward(ctx, boxes, scores, groups, num_groups: int, iou: float, max_output: int, score_thr: float):  # noqa: D102
        with _quiet_tracer():
            return _nms_eager(boxes, scores, groups, iou, max_output, score_thr)

    @staticmethod
    def symbolic(g, boxes, scores, groups, num_groups, iou, max_output, score_thr):  # noqa: D102
        def const(v, dtype):
            return g.op("Constant", value_t=torch.tensor(v, dtype=dtype))

        row = g.op("Unsqueeze", scores, const([0], torch.int64))  # (1, N)
        if int(num_groups) > 1:
            ids = const(np.arange(int(num_groups)).reshape(-1, 1).tolist(), torch.int64)  # (G, 1)
            same = g.op("Equal", g.op("Unsqueeze", groups, const([0], torch.int64)), ids)  # (G, N)
            row = g.op("Where", same, row, const(float("-inf"), torch.float32))
        sel = g.op("NonMaxSuppression", g.op("Unsqueeze", boxes, const([0], torch.int64)),
                   g.op("Unsqueeze", row, const([0], torch.int64)), const([int(max_output)], torch.int64),
                   const([float(iou)], torch.float32), const([float(score_thr)], torch.float32))
        idx = g.op("Gather", sel, const(2, torch.int64), axis_i=1)  # (S,) box indices, group by group
        # ascending box index first, so that TopK (which keeps the lower position of equal values)
        # breaks score ties by box index, as the eager NMS does
        idx, _ = g.op("TopK", idx, g.op("Shape", idx), axis_i=0, largest_i=0, sorted_i=1, outputs=2)
        sc = g.op("Gather", scores, idx, axis_i=0)
        k = g.op("Min", g.op("Shape", idx), const([int(max_output)], torch.int64))
        _, order = g.op("TopK", sc, k, axis_i=0, largest_i=1, sorted_i=1, outputs=2)
        return g.op("Gather", idx, order, axis_i=0)


def batched_nms(boxes: torch.Tensor, scores: torch.Tensor, groups: Optional[torch.Tensor], num_groups: int,
                iou_threshold: float, max_output: int, score_threshold: Optional[float] = None) -> torch.Tensor:
    """Greedy NMS per group: indices (int64) of the kept boxes by descending score, at most
    ``max_output``. A box is dropped when its IoU with a kept box of its group is
    ``> iou_threshold``; only boxes with ``score > score_threshold`` (None: all) take part.
    ``groups`` (N,) int64 in ``[0, num_groups)`` (None: one group). Not differentiable."""
    if groups is None:
        groups = torch.zeros(boxes.shape[0], dtype=torch.int64, device=boxes.device)
        num_groups = 1
    thr = _F32_LOWEST if score_threshold is None else float(score_threshold)
    if exporting():
        return _NmsOnnx.apply(boxes, scores, groups, int(num_groups), float(iou_threshold), int(max_output), thr)
    return _nms_eager(boxes, scores, groups, float(iou_threshold), int(max_output), thr)


def tie_break(x: torch.Tensor, step: float, max_len: int) -> torch.Tensor:
    """``x`` (N,) minus ``i * step`` for entry ``i`` (N <= ``max_len``): exactly equal scores - the
    padding of a letterboxed frame gives many - become distinct, lower index first, identically in
    every runtime (the offsets are a constant and float32 addition is exact-rounded), so top-k and
    NMS no longer depend on how a runtime orders ties (ONNX Runtime and OpenVINO differ). ``step``
    must exceed the float32 spacing of the scores (2**-18 for logits below 32 in magnitude, 2**-23
    for probabilities)."""
    if exporting() or x.shape[0] <= max_len:
        offsets = torch.from_numpy(np.arange(max_len, dtype=np.float32) * np.float32(step)).to(x.device)
        return x - offsets[:x.shape[0]]
    raise ValueError(f"tie_break: {x.shape[0]} scores but max_len={max_len}")


def topk_min(x: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the ``min(k, len(x))`` largest entries of a 1-D tensor, descending; equal values
    keep the lower index first (the ONNX ``TopK`` rule; ``torch.topk`` leaves ties unordered, so the
    eager path sorts stably). When exporting, the count is computed in the graph."""
    if exporting():
        n = torch._shape_as_tensor(x)[0:1]
        kk = torch.minimum(n, torch.tensor([int(k)], dtype=n.dtype))[0]
        return x.topk(kk).indices  # type: ignore[arg-type]
    return torch.sort(x, descending=True, stable=True).indices[:int(k)]


def stack_levels(per_level: List[torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
    """Concatenate per-level tensors and return them with their level ids (int64)."""
    lv = [torch.full((t.shape[0],), i, dtype=torch.int64, device=t.device) for i, t in enumerate(per_level)]
    return torch.cat(per_level), torch.cat(lv)
