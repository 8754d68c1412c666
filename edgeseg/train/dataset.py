"""Torch views of the numpy datasets: seeded augmentation for training, letterbox for evaluation.

Datasets yield BGR uint8 images; these wrappers return RGB uint8 CHW tensors (normalisation
happens on the device, see :func:`normalize`) and int64 labels (255 = ignore).
"""
from __future__ import annotations

from typing import Any, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch.utils.data import Dataset

from .. import defaults
from ..data.transforms import letterbox_image
from ..geometry import LetterboxInfo


def to_chw_rgb(image: np.ndarray) -> torch.Tensor:
    """BGR uint8 HxWx3 -> RGB uint8 3xHxW tensor."""
    return torch.from_numpy(np.ascontiguousarray(image[:, :, ::-1].transpose(2, 0, 1)))


def normalize(x: torch.Tensor, mean: Sequence[float] = defaults.MEAN_RGB,
              std: Sequence[float] = defaults.STD_RGB) -> torch.Tensor:
    """RGB uint8 (or float 0..255) N,3,H,W -> float32 ``(x - mean) / std`` per channel."""
    m = torch.as_tensor(mean, dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
    s = torch.as_tensor(std, dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
    return (x.float() - m) / s


def default_transforms(input_size: Tuple[int, int], scale_range: Tuple[float, float] = (0.75, 1.5),
                       hflip: bool = True, color_jitter: float = 0.25):
    """Random scale -> random crop to ``input_size`` (pad 114 / ignore 255) -> flip -> colour jitter."""
    from ..data.transforms import ColorJitter, Compose, RandomCrop, RandomHorizontalFlip, RandomScale

    ts: List[Any] = [RandomScale(*scale_range),
                     RandomCrop(input_size, pad_value=defaults.PAD_VALUE, ignore=defaults.IGNORE_INDEX)]
    if hflip:
        ts.append(RandomHorizontalFlip(0.5))
    if color_jitter > 0:
        ts.append(ColorJitter(color_jitter, color_jitter, color_jitter))
    return Compose(ts)


class TrainDataset(Dataset):
    """Augmented training samples ``(RGB uint8 3xHxW, int64 HxW)`` at ``input_size``.

    The augmentation of sample ``i`` in epoch ``e`` is drawn from ``default_rng((seed, e, i))``, so
    a run (and a resumed run) is reproducible regardless of worker count. Call
    :meth:`set_epoch` before iterating each epoch.
    """

    def __init__(self, dataset: Any, input_size: Tuple[int, int], seed: int = 0, transforms: Any = None,
                 **transform_kw: Any) -> None:
        self.dataset = dataset
        self.input_size = tuple(int(v) for v in input_size)
        self.seed = int(seed)
        self.epoch = 0
        self.transforms = transforms if transforms is not None else default_transforms(self.input_size,
                                                                                      **transform_kw)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int):
        image, label = self.dataset[i]
        rng = np.random.default_rng((self.seed, self.epoch, int(i)))
        image, label = self.transforms(image, label, rng)
        return to_chw_rgb(image), torch.from_numpy(label.astype(np.int64))


def letterbox(image: np.ndarray, size: Tuple[int, int], pad_value: int = defaults.PAD_VALUE
              ) -> Tuple[np.ndarray, LetterboxInfo]:
    """Resize keeping aspect to fit ``size`` = (h, w), pad centred (as the runtime does).

    Returns ``(image h x w x 3, its LetterboxInfo)``.
    """
    return letterbox_image(image, size, pad_value)


class EvalDataset(Dataset):
    """Letterboxed samples for evaluation: ``(RGB uint8 3xhxw, label uint8 HxW numpy, LetterboxInfo)``."""

    def __init__(self, dataset: Any, input_size: Tuple[int, int], limit: Optional[int] = None) -> None:
        self.dataset = dataset
        self.input_size = tuple(int(v) for v in input_size)
        self.n = len(dataset) if limit is None else min(len(dataset), int(limit))

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        image, label = self.dataset[i]
        image, info = letterbox(image, self.input_size)
        return to_chw_rgb(image), label, info


def eval_collate(batch):
    """Stack images; keep labels (varying sizes) and LetterboxInfos as lists."""
    images, labels, infos = zip(*batch)
    return torch.stack(images), list(labels), list(infos)
