"""Augmentations for instance segmentation that keep masks aligned with the image.

Transforms are callables ``(sample: InstanceSample, rng: np.random.Generator) -> InstanceSample``
(numpy + OpenCV only). Geometry is exact: an image pixel centre ``x'`` of the output comes from
the source position ``(x' + 0.5 - offset) / scale``; images are resampled bilinearly (half-pixel
centres, as ``cv2.resize`` and ``ops.letterbox``), masks with nearest neighbour at the same
centres, per instance and only inside its box. Boxes are recomputed tight from the new masks.
Use :func:`mask_downsample` for the 1/4-resolution mask targets of instance heads.
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence

import cv2
import numpy as np

from .. import defaults
from ..errors import ArrayError
from ..geometry import LetterboxInfo, SizeLike, parse_size
from . import transforms as _sem
from .transforms import _rng
from .instances import InstanceSample, masks_to_boxes

InstanceTransform = Callable[[InstanceSample, Optional[np.random.Generator]], InstanceSample]


# ------------------------------------------------------------------------- mask geometry
def _axis_map(n_out: int, n_src: int, scale: float, offset: float) -> np.ndarray:
    """Nearest source index of each output pixel under x' = scale * x + offset (-1 outside)."""
    c = (np.arange(n_out, dtype=np.float64) + 0.5 - offset) / scale
    idx = np.floor(c).astype(np.int64)
    idx[(idx < 0) | (idx >= n_src)] = -1
    return idx


def warp_masks(masks: np.ndarray, out_hw: Sequence[int], scale_yx: Sequence[float],
               offset_yx: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Map bool NxHxW masks through ``y' = sy * y + ty, x' = sx * x + tx`` (nearest neighbour,
    pixel-centre sampling) into ``out_hw``. Work is done per instance inside its box only.

    Returns (bool N x out_h x out_w masks, float32 Nx4 tight xyxy boxes; zeros where a mask
    left the frame). Negative scales mirror.
    """
    m = np.asarray(masks)
    if m.ndim != 3 or m.dtype != bool:
        raise ArrayError(f"warp_masks: masks must be bool (N, H, W), got {m.dtype} {m.shape}")
    n, h, w = m.shape
    oh, ow = (int(v) for v in out_hw)
    ymap = _axis_map(oh, h, float(scale_yx[0]), float(offset_yx[0]))
    xmap = _axis_map(ow, w, float(scale_yx[1]), float(offset_yx[1]))
    out = np.zeros((n, oh, ow), bool)
    boxes = np.zeros((n, 4), np.float32)
    src_boxes = masks_to_boxes(m).astype(np.int64)
    for i, (x0, y0, x1, y1) in enumerate(src_boxes):
        if x1 <= x0:
            continue
        rows = np.flatnonzero((ymap >= y0) & (ymap < y1))  # contiguous: the map is monotone
        cols = np.flatnonzero((xmap >= x0) & (xmap < x1))
        if rows.size == 0 or cols.size == 0:
            continue
        r0, c0 = int(rows[0]), int(cols[0])
        patch = m[i][np.ix_(ymap[r0:rows[-1] + 1], xmap[c0:cols[-1] + 1])]
        out[i, r0:r0 + patch.shape[0], c0:c0 + patch.shape[1]] = patch
        ry, cx = np.flatnonzero(patch.any(1)), np.flatnonzero(patch.any(0))
        if ry.size:
            boxes[i] = (c0 + cx[0], r0 + ry[0], c0 + cx[-1] + 1, r0 + ry[-1] + 1)
    return out, boxes


def _with_geometry(s: InstanceSample, image: np.ndarray, scale_yx, offset_yx,
                   min_area_frac: float = 0.0, min_pixels: int = 1) -> InstanceSample:
    """The sample with a new image and its masks warped by the same map; instances that keep
    less than ``min_area_frac`` of their area (or fewer than ``min_pixels``) are dropped."""
    masks, boxes = warp_masks(s.masks, image.shape[:2], scale_yx, offset_yx)
    after = masks.sum((1, 2))
    keep = after >= max(int(min_pixels), 1)
    if min_area_frac > 0 and len(s):
        # compare in source-pixel units: divide by the area scale of the map
        area_scale = abs(float(scale_yx[0]) * float(scale_yx[1]))
        keep &= after >= min_area_frac * s.masks.sum((1, 2)) * area_scale
    return InstanceSample(image, masks[keep], s.class_ids[keep], boxes[keep], s.image_id,
                          s.iscrowd[keep])


# ---------------------------------------------------------------------------- transforms
class Compose:
    """Apply transforms in order (the sample is validated once, first)."""

    def __init__(self, transforms: Sequence[InstanceTransform]) -> None:
        self.transforms = list(transforms)

    def __call__(self, sample: InstanceSample,
                 rng: Optional[np.random.Generator] = None) -> InstanceSample:
        rng = _rng(rng)
        sample.validate()
        for t in self.transforms:
            sample = t(sample, rng)
        return sample

    def __repr__(self) -> str:
        return f"Compose({self.transforms!r})"


class RandomScale(_sem._ScaleRange):
    """Resize by a factor drawn uniformly from [min_scale, max_scale]."""

    def __call__(self, sample: InstanceSample,
                 rng: Optional[np.random.Generator] = None) -> InstanceSample:
        s = self._draw(rng)
        return resize(sample, (max(1, int(round(sample.hw[0] * s))),
                               max(1, int(round(sample.hw[1] * s)))))


def resize(sample: InstanceSample, size: SizeLike) -> InstanceSample:
    """Resize the sample to ``size`` (int or (h, w)); bilinear image (area when shrinking)."""
    nh, nw = parse_size(size)
    h, w = sample.hw
    interp = cv2.INTER_AREA if nh * nw < h * w else cv2.INTER_LINEAR
    image = cv2.resize(sample.image, (nw, nh), interpolation=interp)
    return _with_geometry(sample, image, (nh / h, nw / w), (0.0, 0.0))


class RandomCrop:
    """Crop a random (h, w) window, padding bottom/right with ``pad_value`` first where the
    image is smaller. Instances that keep less than ``min_area_frac`` of their visible area
    (or fewer than ``min_pixels`` pixels) are dropped; boxes are recomputed from the masks."""

    def __init__(self, size: SizeLike, min_area_frac: float = 0.1, min_pixels: int = 4,
                 pad_value: int = defaults.PAD_VALUE) -> None:
        self.size = parse_size(size)
        if not 0 <= min_area_frac <= 1:
            raise ValueError(f"min_area_frac must be in [0, 1], got {min_area_frac}")
        self.min_area_frac, self.min_pixels = float(min_area_frac), int(min_pixels)
        self.pad_value = int(pad_value)

    def __call__(self, sample: InstanceSample,
                 rng: Optional[np.random.Generator] = None) -> InstanceSample:
        rng = _rng(rng)
        ch, cw = self.size
        h, w = sample.hw
        image = sample.image
        if h < ch or w < cw:
            image = cv2.copyMakeBorder(image, 0, max(0, ch - h), 0, max(0, cw - w),
                                       cv2.BORDER_CONSTANT, value=(self.pad_value,) * 3)
        y = int(rng.integers(0, image.shape[0] - ch + 1))
        x = int(rng.integers(0, image.shape[1] - cw + 1))
        image = np.ascontiguousarray(image[y:y + ch, x:x + cw])
        return _with_geometry(sample, image, (1.0, 1.0), (-y, -x), self.min_area_frac,
                              self.min_pixels)

    def __repr__(self) -> str:
        return (f"RandomCrop({self.size}, min_area_frac={self.min_area_frac}, "
                f"min_pixels={self.min_pixels}, pad_value={self.pad_value})")


class RandomHorizontalFlip:
    """Mirror left-right with probability p."""

    def __init__(self, p: float = 0.5) -> None:
        self.p = float(p)

    def __call__(self, sample: InstanceSample,
                 rng: Optional[np.random.Generator] = None) -> InstanceSample:
        if _rng(rng).random() >= self.p:
            return sample
        return hflip(sample)

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p})"


def hflip(sample: InstanceSample) -> InstanceSample:
    """The sample mirrored left-right."""
    w = sample.hw[1]
    boxes = sample.boxes.copy()
    boxes[:, 0], boxes[:, 2] = w - sample.boxes[:, 2], w - sample.boxes[:, 0]
    return InstanceSample(np.ascontiguousarray(sample.image[:, ::-1]),
                          np.ascontiguousarray(sample.masks[:, :, ::-1]), sample.class_ids,
                          boxes, sample.image_id, sample.iscrowd)


class ColorJitter:
    """Brightness / contrast / saturation / hue jitter of the image (as
    :class:`edgeseg.data.transforms.ColorJitter`); masks untouched."""

    def __init__(self, brightness: float = 0.0, contrast: float = 0.0, saturation: float = 0.0,
                 hue: float = 0.0) -> None:
        self._jitter = _sem.ColorJitter(brightness, contrast, saturation, hue)

    def __call__(self, sample: InstanceSample,
                 rng: Optional[np.random.Generator] = None) -> InstanceSample:
        image, _ = self._jitter(sample.image, None, _rng(rng))
        return InstanceSample(image, sample.masks, sample.class_ids, sample.boxes,
                              sample.image_id, sample.iscrowd)

    def __repr__(self) -> str:
        return repr(self._jitter)


def letterbox(sample: InstanceSample, size: SizeLike, pad_value: int = defaults.PAD_VALUE
              ) -> tuple[InstanceSample, LetterboxInfo]:
    """Fit the sample into ``size`` keeping its aspect ratio, centred on ``pad_value`` grey,
    with the same geometry as :func:`edgeseg.ops.letterbox` (the inference path). Returns the
    uint8 sample and the :class:`~edgeseg.geometry.LetterboxInfo` that maps back: source
    ``x = (x' - pad_left) * src_w / resized_w``, likewise for y."""
    image, info = _sem.letterbox_image(sample.image, size, pad_value)
    (h, w), (rh, rw) = sample.hw, info.resized_hw
    top, left = info.pad_top, info.pad_left
    return _with_geometry(sample, image, (rh / h, rw / w), (top, left)), info


class Letterbox:
    """Transform form of :func:`letterbox` (use the function where you need the mapping)."""

    def __init__(self, size: SizeLike, pad_value: int = defaults.PAD_VALUE) -> None:
        self.size, self.pad_value = parse_size(size), int(pad_value)

    def __call__(self, sample: InstanceSample,
                 rng: Optional[np.random.Generator] = None) -> InstanceSample:
        return letterbox(sample, self.size, self.pad_value)[0]

    def __repr__(self) -> str:
        return f"Letterbox({self.size}, pad_value={self.pad_value})"


class DropCrowd:
    """Remove crowd regions (training ignores them; evaluation keeps them)."""

    def __call__(self, sample: InstanceSample,
                 rng: Optional[np.random.Generator] = None) -> InstanceSample:
        return sample.drop_crowd()

    def __repr__(self) -> str:
        return "DropCrowd()"


def train_transforms(size: SizeLike, scale: tuple[float, float] = (0.5, 1.5),
                     hflip_p: float = 0.5, jitter: float = 0.2, min_area_frac: float = 0.1
                     ) -> Compose:
    """The default training pipeline: drop crowd, letterbox to ``size``, random scale, random
    crop back to ``size``, horizontal flip, colour jitter."""
    return Compose([DropCrowd(), Letterbox(size), RandomScale(*scale),
                    RandomCrop(size, min_area_frac=min_area_frac), RandomHorizontalFlip(hflip_p),
                    ColorJitter(jitter, jitter, jitter, jitter / 4)])


def eval_transforms(size: SizeLike) -> Compose:
    """The evaluation pipeline: letterbox only (crowd regions kept)."""
    return Compose([Letterbox(size)])


# ------------------------------------------------------------------------------ low-res
def mask_downsample(masks: np.ndarray, factor: int = 4, soft: bool = False) -> np.ndarray:
    """Masks at 1/``factor`` resolution (the resolution instance heads compute mask losses at).

    Each low-res pixel covers a ``factor x factor`` block (the frame is padded with background
    to a multiple of ``factor``, so the output is ceil(H/f) x ceil(W/f)). ``soft=False``: bool,
    set where at least half the block is covered; ``soft=True``: float32 coverage in [0, 1].
    """
    m = np.asarray(masks)
    if m.ndim != 3 or m.dtype != bool:
        raise ArrayError(f"mask_downsample: masks must be bool (N, H, W), got {m.dtype} "
                         f"{m.shape}")
    f = int(factor)
    if not 1 <= f <= 255:
        raise ValueError(f"mask_downsample: factor must be in 1..255, got {factor}")
    n, h, w = m.shape
    oh, ow = -(-h // f), -(-w // f)
    if (oh * f, ow * f) != (h, w):
        m = np.pad(m, ((0, 0), (0, oh * f - h), (0, ow * f - w)))
    cov = m.reshape(n, oh, f, ow, f).sum((2, 4), dtype=np.uint16)
    if soft:
        return cov.astype(np.float32) / np.float32(f * f)
    return 2 * cov.astype(np.int32) >= f * f


__all__ = ["Compose", "RandomScale", "RandomCrop", "RandomHorizontalFlip", "ColorJitter",
           "Letterbox", "DropCrowd", "letterbox", "resize", "hflip", "warp_masks",
           "mask_downsample", "train_transforms", "eval_transforms"]
