"""Cityscapes (gtFine) semantic segmentation with the official 19 training classes.

Expected layout under ``root``::

    leftImg8bit/<split>/<city>/<stem>_leftImg8bit.png
    gtFine/<split>/<city>/<stem>_gtFine_labelIds.png      8-bit label ids (0..33)

Label ids are mapped to train ids (0..18) with the official table; all others become 255.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Union

import numpy as np

from ..errors import DataError
from ._io import read_image, read_label

PathLike = Union[str, "os.PathLike[str]"]

#: The 19 Cityscapes training classes, in train-id order.
CLASSES: tuple[str, ...] = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
    "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train",
    "motorcycle", "bicycle",
)
#: Official Cityscapes colours (RGB) per train id.
PALETTE: list[tuple[int, int, int]] = [
    (128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153),
    (153, 153, 153), (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152),
    (70, 130, 180), (220, 20, 60), (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100),
    (0, 80, 100), (0, 0, 230), (119, 11, 32),
]
#: labelId -> trainId for the ids that are trained on (cityscapesScripts labels.py).
LABEL_TO_TRAIN: dict[int, int] = {
    7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10, 24: 11, 25: 12,
    26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18,
}
#: A 256-entry lookup table implementing LABEL_TO_TRAIN (everything else -> 255).
LUT: np.ndarray = np.full(256, 255, np.uint8)
for _k, _v in LABEL_TO_TRAIN.items():
    LUT[_k] = _v

LAYOUT = __doc__.split("::", 1)[1].split("Label ids", 1)[0].rstrip()
_IMG_SUFFIX = "_leftImg8bit.png"
_LAB_SUFFIX = "_gtFine_labelIds.png"


def label_ids_to_train_ids(label_ids: np.ndarray) -> np.ndarray:
    """Map a uint8 labelIds image to train ids (255 = ignore)."""
    return LUT[np.asarray(label_ids, np.uint8)]


class CityscapesSegmentation:
    """Cityscapes gtFine: ``ds[i] -> (image BGR uint8, train-id label uint8, 255 = ignore)``."""

    classes: tuple[str, ...] = CLASSES
    palette: list[tuple[int, int, int]] = PALETTE

    def __init__(self, root: PathLike, split: str = "train") -> None:
        self.root = Path(root).expanduser()
        self.split = split
        if not self.root.is_dir():
            raise DataError(f"Cityscapes root {self.root} does not exist; expected layout:{LAYOUT}")
        for d in ("leftImg8bit", "gtFine"):
            if not (self.root / d).is_dir():
                raise DataError(f"Cityscapes root {self.root} is missing {d}/; expected "
                                f"layout:{LAYOUT}")
        img_dir, lab_dir = self.root / "leftImg8bit" / split, self.root / "gtFine" / split
        for d in (img_dir, lab_dir):
            if not d.is_dir():
                have = sorted(p.name for p in d.parent.iterdir() if p.is_dir())
                raise DataError(f"Cityscapes split {split!r} not found: missing {d}/ "
                                f"(available: {have or 'none'})")
        self.images = sorted(img_dir.glob(f"*/*{_IMG_SUFFIX}"))
        if not self.images:
            raise DataError(f"no images matching <city>/*{_IMG_SUFFIX} under {img_dir}; expected "
                            f"layout:{LAYOUT}")
        self.labels = [lab_dir / p.parent.name / (p.name[:-len(_IMG_SUFFIX)] + _LAB_SUFFIX)
                       for p in self.images]
        missing = [p for p in self.labels if not p.is_file()]
        if missing:
            more = f" (and {len(missing) - 3} more)" if len(missing) > 3 else ""
            raise DataError(f"Cityscapes labels missing: {', '.join(map(str, missing[:3]))}{more}; "
                            f"every image needs its gtFine *{_LAB_SUFFIX}")

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, idx: int) -> tuple[np.ndarray, np.ndarray]:
        img = read_image(self.images[idx])
        lab = label_ids_to_train_ids(read_label(self.labels[idx]))
        if img.shape[:2] != lab.shape:
            raise DataError(f"Cityscapes sample {self.images[idx].name}: image is "
                            f"{img.shape[:2]} but its label is {lab.shape}")
        return img, lab

    def __repr__(self) -> str:
        return (f"CityscapesSegmentation(root={str(self.root)!r}, split={self.split!r}, "
                f"n={len(self)})")
