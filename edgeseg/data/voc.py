"""PASCAL VOC 2012 semantic segmentation (and its SegmentationObject instances).

Expected layout (``root`` may be the VOC2012 folder, its VOCdevkit parent, or a folder holding
VOCdevkit/)::

    VOC2012/
      JPEGImages/<id>.jpg
      SegmentationClass/<id>.png        indexed PNG: class ids 0..20, 255 = boundary/ignore
      SegmentationObject/<id>.png       optional; instance ids 1..N, 0 background, 255 boundary
      ImageSets/Segmentation/<split>.txt   one <id> per line (train, val, trainval)
      classes.txt                       optional (edgeseg extension): one class name per line
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np

from ..errors import DataError
from ..meta import voc_palette
from ._io import read_image, read_label

PathLike = Union[str, "os.PathLike[str]"]

#: The 21 PASCAL VOC classes (background first).
CLASSES: tuple[str, ...] = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
    "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
)
LAYOUT = __doc__.split("Expected layout", 1)[1].split("::", 1)[1].rstrip()


def find_voc_root(root: PathLike) -> Path:
    """Resolve ``root`` to the folder holding JPEGImages/ (VOC2012 or a VOCdevkit parent)."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(f"VOC root {root} does not exist or is not a folder; expected "
                        f"layout:{LAYOUT}")
    for cand in (root, root / "VOC2012", root / "VOCdevkit" / "VOC2012"):
        if (cand / "JPEGImages").is_dir():
            return cand
    raise DataError(f"{root} is not a PASCAL VOC folder: missing JPEGImages/ (also looked in "
                    f"{root / 'VOC2012'} and {root / 'VOCdevkit' / 'VOC2012'}); expected "
                    f"layout:{LAYOUT}")


def objects_from_labels(obj: np.ndarray, sem: np.ndarray, name: str = "<labels>"
                        ) -> tuple[np.ndarray, np.ndarray]:
    """Split a SegmentationObject map (ids 1..N, 0 background, 255 boundary) into bool NxHxW
    masks, ordered by id, and give each the majority SegmentationClass class under it (0 when
    no pixel of the object carries an object class)."""
    if obj.shape != sem.shape:
        raise DataError(f"VOC sample {name!r}: SegmentationObject is {obj.shape} but "
                        f"SegmentationClass is {sem.shape}; they must have the same size")
    ids = [int(v) for v in np.unique(obj) if v not in (0, 255)]
    masks = np.stack([obj == v for v in ids]) if ids else np.zeros((0,) + obj.shape, bool)
    cls = []
    for m in masks:
        votes = np.bincount(sem[m], minlength=256)[:255]
        votes[0] = 0
        cls.append(int(votes.argmax()))
    return masks, np.asarray(cls, np.int64)


class VOCSegmentation:
    """PASCAL VOC-style segmentation dataset: ``ds[i] -> (image BGR uint8, label uint8)``.

    ``classes`` defaults to ``root/classes.txt`` when present (edgeseg's synthetic VOC writer
    puts one there) and otherwise to the 21 VOC classes. Missing files are reported at
    construction; corrupt images raise InputFileError when read.
    """

    def __init__(self, root: PathLike, split: str = "train",
                 classes: Optional[Sequence[str]] = None) -> None:
        self.root = find_voc_root(root)
        self.split = split
        for d in ("SegmentationClass", "ImageSets/Segmentation"):
            if not (self.root / d).is_dir():
                raise DataError(f"VOC folder {self.root} is missing {d}/; expected layout:{LAYOUT}")
        list_file = self.root / "ImageSets" / "Segmentation" / f"{split}.txt"
        if not list_file.is_file():
            have = sorted(p.stem for p in list_file.parent.glob("*.txt"))
            raise DataError(f"VOC split {split!r} not found: missing {list_file}; available "
                            f"splits: {have or 'none'}")
        self.ids = [ln.split()[0] for ln in list_file.read_text().splitlines() if ln.strip()]
        if not self.ids:
            raise DataError(f"VOC split file {list_file} lists no images")
        missing = [p for i in self.ids for p in (self._img(i), self._lab(i)) if not p.is_file()]
        if missing:
            more = f" (and {len(missing) - 3} more)" if len(missing) > 3 else ""
            raise DataError(f"VOC split {split!r} lists files that do not exist: "
                            f"{', '.join(map(str, missing[:3]))}{more}; expected layout:{LAYOUT}")
        if classes is None:
            cfile = self.root / "classes.txt"
            classes = ([c.strip() for c in cfile.read_text().splitlines() if c.strip()]
                       if cfile.is_file() else CLASSES)
        self.classes: tuple[str, ...] = tuple(classes)
        self.palette: list[tuple[int, int, int]] = voc_palette(len(self.classes))  # the dataset's own colours

    def _img(self, i: str) -> Path:
        return self.root / "JPEGImages" / f"{i}.jpg"

    def _lab(self, i: str) -> Path:
        return self.root / "SegmentationClass" / f"{i}.png"

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, idx: int) -> tuple[np.ndarray, np.ndarray]:
        name = self.ids[idx]
        img, lab = read_image(self._img(name)), read_label(self._lab(name))
        if img.shape[:2] != lab.shape:
            raise DataError(f"VOC sample {name!r}: image is {img.shape[:2]} but its label is "
                            f"{lab.shape}; they must have the same size")
        return img, lab

    def instances(self, idx: int) -> tuple[np.ndarray, np.ndarray]:
        """Visible instance masks (bool NxHxW) and their class ids (int64 N) for sample idx,
        from SegmentationObject/ (the class of an object is the majority class under it)."""
        name = self.ids[idx]
        path = self.root / "SegmentationObject" / f"{name}.png"
        if not path.is_file():
            raise DataError(f"VOC instance label {path} is missing; instance masks need "
                            "SegmentationObject/<id>.png")
        return objects_from_labels(read_label(path), read_label(self._lab(name)), name)

    def __repr__(self) -> str:
        return f"VOCSegmentation(root={str(self.root)!r}, split={self.split!r}, n={len(self)})"
