"""Torch views of instance datasets: augmented padded batches for training, letterbox for evaluation.

Datasets come from :func:`edgeseg.data.open_instance_dataset` (``.classes``, ``sample(i) ->
InstanceSample``); augmentation is :func:`edgeseg.data.instance_transforms.train_transforms`
(drop crowd, letterbox, random scale, random crop, flip, colour jitter - masks stay aligned).

Training samples are ``(RGB uint8 3xHxW tensor, target dict)`` with ``boxes`` (M,4) float32 input
pixels, ``classes`` (M,) int64 and ``masks`` (M, H/4, W/4) float32: each mask's coverage of the
4x4 block under every prototype pixel (a soft target). :func:`instance_collate` pads the
variable instance counts to a batch.
"""
from __future__ import annotations

from typing import Any, Dict, List, Sequence, Tuple

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import DataError
from ..geometry import LetterboxInfo
from .dataset import EvalDataset, eval_collate, letterbox, to_chw_rgb


class InstanceTrainDataset(Dataset):
    """Augmented training samples ``(RGB uint8 3xHxW, target dict)`` at ``input_size``.

    The augmentation of sample ``i`` in epoch ``e`` is drawn from ``default_rng((seed, e, i))``
    (reproducible with any worker count; call :meth:`set_epoch` each epoch). ``mask_stride`` is
    the prototype stride: masks are returned at input / mask_stride.
    """

    def __init__(self, dataset: Any, input_size: Tuple[int, int], seed: int = 0,
                 scale_range: Tuple[float, float] = (0.5, 1.5), hflip: bool = True, color_jitter: float = 0.25,
                 mask_stride: int = 4, min_area_frac: float = 0.2) -> None:
        from ..data.instance_transforms import train_transforms

        self.dataset = dataset
        self.input_size = (int(input_size[0]), int(input_size[1]))
        if self.input_size[0] % mask_stride or self.input_size[1] % mask_stride:
            raise DataError(f"input_size {self.input_size} must be a multiple of the mask stride {mask_stride}")
        self.seed, self.epoch, self.mask_stride = int(seed), 0, int(mask_stride)
        self.transforms = train_transforms(self.input_size, (float(scale_range[0]), float(scale_range[1])),
                                           0.5 if hflip else 0.0, float(color_jitter), min_area_frac)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        from ..data.instance_transforms import mask_downsample

        rng = np.random.default_rng((self.seed, self.epoch, int(i)))
        s = self.transforms(self.dataset.sample(i), rng)
        target = {"boxes": torch.from_numpy(np.asarray(s.boxes, np.float32).reshape(-1, 4)),
                  "classes": torch.from_numpy(np.asarray(s.class_ids, np.int64)),
                  "masks": torch.from_numpy(mask_downsample(s.masks, self.mask_stride, soft=True))}
        return to_chw_rgb(s.image), target


def instance_collate(batch: Sequence[Tuple[torch.Tensor, Dict[str, torch.Tensor]]]
                     ) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
    """Stack images; pad targets to the largest instance count M: ``boxes`` (B,M,4), ``classes``
    (B,M), ``valid`` (B,M) bool, ``masks`` (B,M,h,w)."""
    images = torch.stack([b[0] for b in batch])
    n = max([len(t["classes"]) for _, t in batch] + [0])
    bsz = len(batch)
    h, w = batch[0][1]["masks"].shape[-2:]
    boxes = torch.zeros(bsz, n, 4)
    classes = torch.zeros(bsz, n, dtype=torch.long)
    valid = torch.zeros(bsz, n, dtype=torch.bool)
    masks = torch.zeros(bsz, n, h, w)
    for i, (_, t) in enumerate(batch):
        k = len(t["classes"])
        boxes[i, :k], classes[i, :k], valid[i, :k], masks[i, :k] = t["boxes"], t["classes"], True, t["masks"]
    return images, {"boxes": boxes, "classes": classes, "valid": valid, "masks": masks}


class InstanceEvalDataset(EvalDataset):
    """Letterboxed samples for evaluation: ``(RGB uint8 3xhxw, sample, LetterboxInfo)``."""

    def __getitem__(self, i: int):
        smp = self.dataset.sample(i)
        image, info = letterbox(smp.image, self.input_size)
        return to_chw_rgb(image), smp, info


def instance_eval_collate(batch) -> Tuple[torch.Tensor, List[Any], List[LetterboxInfo]]:
    """Stack images; keep samples and LetterboxInfos as lists."""
    return eval_collate(batch)
