"""Joint image/label augmentations: callables ``(image, label, rng) -> (image, label)``.

Images are BGR uint8 HxWx3, labels uint8 HxW (255 = ignore). Labels are always resized with
nearest-neighbour so no new class ids appear. ``rng`` is a numpy Generator (None: a fresh one).
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence, Union

import cv2
import numpy as np

from .. import defaults
from ..geometry import LetterboxInfo, SizeLike, letterbox_info, parse_size

Transform = Callable[[np.ndarray, np.ndarray, Optional[np.random.Generator]],
                     "tuple[np.ndarray, np.ndarray]"]


def _rng(rng: Optional[np.random.Generator]) -> np.random.Generator:
    return rng if rng is not None else np.random.default_rng()


class Compose:
    """Apply transforms in order."""

    def __init__(self, transforms: Sequence[Transform]) -> None:
        self.transforms = list(transforms)

    def __call__(self, image, label, rng=None):
        rng = _rng(rng)
        for t in self.transforms:
            image, label = t(image, label, rng)
        return image, label

    def __repr__(self) -> str:
        return f"Compose({self.transforms!r})"


class _ScaleRange:
    """The factor range of a RandomScale (this module's and the instance one): validation, draw, repr."""

    def __init__(self, min_scale: float = 0.5, max_scale: float = 2.0) -> None:
        if not 0 < min_scale <= max_scale:
            raise ValueError(f"need 0 < min_scale <= max_scale, got {min_scale}, {max_scale}")
        self.min_scale, self.max_scale = float(min_scale), float(max_scale)

    def _draw(self, rng: Optional[np.random.Generator]) -> float:
        """A factor drawn uniformly from [min_scale, max_scale]."""
        return _rng(rng).uniform(self.min_scale, self.max_scale)

    def __repr__(self) -> str:
        return f"RandomScale({self.min_scale}, {self.max_scale})"


class RandomScale(_ScaleRange):
    """Resize both by a factor drawn uniformly from [min_scale, max_scale]."""

    def __call__(self, image, label, rng=None):
        s = self._draw(rng)
        h, w = label.shape
        nh, nw = max(1, int(round(h * s))), max(1, int(round(w * s)))
        interp = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
        image = cv2.resize(image, (nw, nh), interpolation=interp)
        label = cv2.resize(label, (nw, nh), interpolation=cv2.INTER_NEAREST)
        return image, label


class RandomCrop:
    """Crop a random (h, w) window; pad first (bottom/right) with pad_value / ignore if smaller."""

    def __init__(self, size: Union[int, Sequence[int]], pad_value: int = defaults.PAD_VALUE,
                 ignore: int = defaults.IGNORE_INDEX) -> None:
        self.size = parse_size(size)
        self.pad_value, self.ignore = int(pad_value), int(ignore)

    def __call__(self, image, label, rng=None):
        rng = _rng(rng)
        ch, cw = self.size
        h, w = label.shape
        if h < ch or w < cw:
            ph, pw = max(0, ch - h), max(0, cw - w)
            image = cv2.copyMakeBorder(image, 0, ph, 0, pw, cv2.BORDER_CONSTANT,
                                       value=(self.pad_value,) * 3)
            label = cv2.copyMakeBorder(label, 0, ph, 0, pw, cv2.BORDER_CONSTANT, value=self.ignore)
            h, w = label.shape
        y = int(rng.integers(0, h - ch + 1))
        x = int(rng.integers(0, w - cw + 1))
        return (np.ascontiguousarray(image[y:y + ch, x:x + cw]),
                np.ascontiguousarray(label[y:y + ch, x:x + cw]))

    def __repr__(self) -> str:
        return f"RandomCrop({self.size}, pad_value={self.pad_value}, ignore={self.ignore})"


class RandomHorizontalFlip:
    """Mirror left-right with probability p."""

    def __init__(self, p: float = 0.5) -> None:
        self.p = float(p)

    def __call__(self, image, label, rng=None):
        if _rng(rng).random() < self.p:
            return np.ascontiguousarray(image[:, ::-1]), np.ascontiguousarray(label[:, ::-1])
        return image, label

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p})"


class ColorJitter:
    """Random brightness / contrast / saturation factors in [1-x, 1+x] and a hue shift in
    [-hue, hue] (fraction of the colour circle, <= 0.5), as in torchvision. Label untouched."""

    def __init__(self, brightness: float = 0.0, contrast: float = 0.0, saturation: float = 0.0,
                 hue: float = 0.0) -> None:
        if min(brightness, contrast, saturation, hue) < 0 or hue > 0.5:
            raise ValueError("jitter amounts must be >= 0 and hue <= 0.5")
        self.brightness, self.contrast = float(brightness), float(contrast)
        self.saturation, self.hue = float(saturation), float(hue)

    def __call__(self, image, label, rng=None):
        rng = _rng(rng)
        img = image.astype(np.float32)
        if self.brightness:
            img *= rng.uniform(1 - self.brightness, 1 + self.brightness)
        if self.contrast:
            f = rng.uniform(1 - self.contrast, 1 + self.contrast)
            mean = float(cv2.cvtColor(np.clip(img, 0, 255).astype(np.uint8),
                                      cv2.COLOR_BGR2GRAY).mean())
            img = (img - mean) * f + mean
        if self.saturation:
            f = rng.uniform(1 - self.saturation, 1 + self.saturation)
            gray = cv2.cvtColor(np.clip(img, 0, 255).astype(np.uint8), cv2.COLOR_BGR2GRAY)
            img = (img - gray[..., None]) * f + gray[..., None]
        out = np.clip(img + 0.5, 0, 255).astype(np.uint8)
        if self.hue:
            shift = int(round(rng.uniform(-self.hue, self.hue) * 180))  # OpenCV hue is 0..179
            if shift:
                hsv = cv2.cvtColor(out, cv2.COLOR_BGR2HSV)
                hsv[..., 0] = ((hsv[..., 0].astype(np.int16) + shift) % 180).astype(np.uint8)
                out = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)
        return out, label

    def __repr__(self) -> str:
        return (f"ColorJitter(brightness={self.brightness}, contrast={self.contrast}, "
                f"saturation={self.saturation}, hue={self.hue})")


def letterbox_image(image: np.ndarray, size: SizeLike, pad_value: int = defaults.PAD_VALUE
                    ) -> tuple[np.ndarray, LetterboxInfo]:
    """A uint8 HxWx3 image fitted into ``size`` keeping its aspect ratio, centred on ``pad_value``
    grey, with the geometry of :func:`edgeseg.ops.letterbox` (the inference path; bilinear, half-pixel
    centres), and the :class:`~edgeseg.geometry.LetterboxInfo` that maps back."""
    info = letterbox_info(image.shape[:2], size)
    (oh, ow), (rh, rw) = info.dst_hw, info.resized_hw
    if (rh, rw) != tuple(image.shape[:2]):
        image = cv2.resize(image, (rw, rh), interpolation=cv2.INTER_LINEAR)
    elif (rh, rw) == (oh, ow):
        return image.copy(), info
    if (rh, rw) != (oh, ow):
        top, left = info.pad_top, info.pad_left
        image = cv2.copyMakeBorder(image, top, oh - rh - top, left, ow - rw - left,
                                   cv2.BORDER_CONSTANT, value=(int(pad_value),) * 3)
    return image, info


__all__ = ["Compose", "RandomScale", "RandomCrop", "RandomHorizontalFlip", "ColorJitter", "letterbox_image"]
