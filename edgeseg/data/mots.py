"""KITTI-MOTS / MOTSChallenge tracking ground truth and results: the text format with RLE masks.

One line per object and frame, space separated::

    time_frame object_id class_id img_height img_width rle

``object_id`` is ``class_id * 1000 + instance`` in the official data (10000 marks an ignore
region, class 10); ``rle`` is the COCO compressed RLE counts string of the full-frame mask
(column-major). KITTI-MOTS counts frames from 0 (images ``000000.png``), MOTSChallenge from 1
(``000001.jpg``). Masks of one frame must not overlap (the format's rule, checked on reading).

Layouts read by :class:`MOTSSequence`: a MOTSChallenge sequence folder (``gt/gt.txt`` +
``img1/``), or a KITTI-MOTS ``instances_txt/NNNN.txt`` with its images in
``image_02/NNNN/`` (or ``images/NNNN/``) beside ``instances_txt``. numpy + OpenCV; no pycocotools.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Optional, Sequence, Union

import numpy as np

from ..errors import DataError, InputFileError
from ..masks import MaskSet
from ._io import atomic_write_bytes
from .coco_rle import rle_decode

PathLike = Union[str, "os.PathLike[str]"]

#: class_id of ignore regions in KITTI-MOTS / MOTSChallenge.
IGNORE_CLASS = 10
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


@dataclass
class MOTSObject:
    """One object in one frame: its id, class and compressed RLE mask of an ``h x w`` frame."""

    frame: int
    obj_id: int
    class_id: int
    height: int
    width: int
    rle: str

    def mask(self) -> np.ndarray:
        """The bool (h, w) mask."""
        return rle_decode({"size": [self.height, self.width], "counts": self.rle})


def read_mots_txt(path: PathLike) -> dict[int, list[MOTSObject]]:
    """Parse a MOTS text file -> {frame: objects}; raises DataError naming the bad line."""
    p = Path(path)
    if not p.is_file():
        raise InputFileError(f"MOTS file not found: {p}")
    out: dict[int, list[MOTSObject]] = {}
    with open(p, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            parts = line.split()
            if len(parts) != 6:
                raise DataError(f"{p}:{n}: expected 6 fields 'frame id class height width rle', got {len(parts)}")
            try:
                t, oid, cid, h, w = (int(v) for v in parts[:5])
            except ValueError:
                raise DataError(f"{p}:{n}: frame, id, class, height and width must be integers") from None
            if t < 0 or h < 1 or w < 1:
                raise DataError(f"{p}:{n}: bad frame {t} or size {h}x{w}")
            out.setdefault(t, []).append(MOTSObject(t, oid, cid, h, w, parts[5]))
    return out


def write_mots_txt(path: PathLike, frames: Iterable[tuple[int, Sequence[int], Sequence[int], MaskSet]]) -> Path:
    """Write tracks as a MOTS text file, atomically.

    ``frames`` yields ``(time_frame, object_ids, class_ids, masks)`` per frame. Masks must not
    overlap (the format's rule); overlapping pixels are given to the earlier mask of the frame,
    as the MOTS tools expect results to be made (``edgeseg`` lists detections by score).
    """
    lines: list[str] = []
    for t, ids, classes, masks in frames:
        ids, classes = list(ids), list(classes)
        if not len(ids) == len(classes) == len(masks):
            raise DataError(f"frame {t}: {len(ids)} ids, {len(classes)} classes, {len(masks)} masks")
        h, w = masks.image_hw
        if len(masks):
            masks = _without_overlaps(masks)
        for oid, cid, rle in zip(ids, classes, masks.to_rle()):
            lines.append(f"{int(t)} {int(oid)} {int(cid)} {h} {w} {rle['counts']}\n")
    atomic_write_bytes(path, "".join(lines).encode())
    return Path(path)


def _without_overlaps(masks: MaskSet) -> MaskSet:
    taken = np.zeros(masks.image_hw, bool)
    dense = masks.to_dense()
    for k in range(len(dense)):
        dense[k] &= ~taken
        taken |= dense[k]
    return MaskSet.from_dense(dense)


@dataclass
class MOTSFrame:
    """Ground truth of one frame: image (BGR uint8), track ids, class ids, masks, and the
    ignore mask (pixels of class-10 regions, or None)."""

    image: np.ndarray
    track_ids: np.ndarray
    class_ids: np.ndarray
    masks: MaskSet
    ignore: Optional[np.ndarray]


class MOTSSequence:
    """One annotated MOTS sequence: ``seq[i]`` is the :class:`MOTSFrame` of the i-th image."""

    def __init__(self, root: PathLike) -> None:
        root = Path(root)
        if (root / "gt" / "gt.txt").is_file():  # MOTSChallenge
            self.txt, self.image_dir, self.first = root / "gt" / "gt.txt", root / "img1", 1
        elif root.is_file() and root.suffix == ".txt":  # KITTI-MOTS instances_txt/NNNN.txt
            base = root.parent.parent
            cands = [base / "image_02" / root.stem, base / "images" / root.stem]
            found = [c for c in cands if c.is_dir()]
            if not found:
                raise InputFileError(f"no images for {root}: expected one of {[str(c) for c in cands]}")
            self.txt, self.image_dir, self.first = root, found[0], 0
        else:
            raise InputFileError(f"{root}: not a MOTS sequence; give a MOTSChallenge sequence folder "
                                 "(gt/gt.txt + img1/) or a KITTI-MOTS instances_txt/NNNN.txt")
        if not self.image_dir.is_dir():
            raise InputFileError(f"image folder not found: {self.image_dir}")
        self.images = sorted(p for p in self.image_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self.images:
            raise InputFileError(f"no images in {self.image_dir}")
        self.objects = read_mots_txt(self.txt)
        self.name = root.stem if root.is_file() else root.name

    def __len__(self) -> int:
        return len(self.images)

    def __repr__(self) -> str:
        return f"MOTSSequence({self.name!r}, {len(self)} frames)"

    def __iter__(self) -> Iterator[MOTSFrame]:
        for i in range(len(self)):
            yield self[i]

    def __getitem__(self, i: int) -> MOTSFrame:
        import cv2

        path = self.images[i]
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise InputFileError(f"cannot read image {path}")
        try:
            t = int(path.stem)
        except ValueError:
            t = i + self.first
        h, w = image.shape[:2]
        objs = self.objects.get(t, [])
        keep = [o for o in objs if o.class_id != IGNORE_CLASS]
        dense = np.zeros((len(keep), h, w), bool)
        for k, o in enumerate(keep):
            if (o.height, o.width) != (h, w):
                raise DataError(f"{self.txt}: frame {t} object {o.obj_id} is {o.height}x{o.width} but "
                                f"the image {path.name} is {h}x{w}")
            dense[k] = o.mask()
        if len(keep) > 1 and (dense.sum(0) > 1).any():
            raise DataError(f"{self.txt}: masks of frame {t} overlap; MOTS masks must not overlap")
        ign = [o.mask() for o in objs if o.class_id == IGNORE_CLASS]
        return MOTSFrame(image=image, track_ids=np.array([o.obj_id for o in keep], np.int64),
                         class_ids=np.array([o.class_id for o in keep], np.int64),
                         masks=MaskSet.from_dense(dense), ignore=np.any(ign, axis=0) if ign else None)


def write_mots_sequence(root: PathLike, frames: Iterable) -> Path:
    """Write frames (objects with ``image``, ``track_ids``, ``class_ids``, ``masks``, e.g. a
    :class:`~edgeseg.data.synthetic_tracks.TrackingVideo`) as a MOTSChallenge sequence folder:
    ``img1/000001.png ...`` and ``gt/gt.txt`` (frames counted from 1)."""
    from .._io import write_image

    root = Path(root)
    (root / "img1").mkdir(parents=True, exist_ok=True)
    rows = []
    for i, f in enumerate(frames):
        write_image(root / "img1" / f"{i + 1:06d}.png", f.image)
        rows.append((i + 1, f.track_ids, f.class_ids, f.masks))
    (root / "gt").mkdir(exist_ok=True)
    write_mots_txt(root / "gt" / "gt.txt", rows)
    return root


def open_tracking_sequences(spec: str, n_frames: Optional[int] = None, seed: int = 0) -> dict[str, Sequence]:
    """Tracking videos with ground truth by spec -> {name: frames} (each frame has ``image``,
    ``track_ids``, ``class_ids``, ``masks``):

    * ``synthetic`` (the crossing, occluding and separate scenes) or ``synthetic:KIND[,KIND]``
      (:mod:`edgeseg.data.synthetic_tracks`), ``n_frames`` frames each (default 60);
    * ``mots:PATH``: a MOTS sequence (see :class:`MOTSSequence`), or a folder of MOTSChallenge
      sequence folders / a KITTI-MOTS ``instances_txt`` folder (every sequence in it).
    """
    from .synthetic_tracks import KINDS, TrackingVideo

    kind, _, arg = spec.partition(":")
    if kind == "synthetic":
        kinds = [k for k in arg.split(",") if k] or ["separate", "crossing", "occluding"]
        bad = [k for k in kinds if k not in KINDS]
        if bad:
            raise DataError(f"unknown synthetic tracking scene(s) {bad}; choose from {KINDS}")
        return {k: TrackingVideo(k, n_frames or 60, seed=seed) for k in kinds}
    if kind == "mots" and arg:
        root = Path(arg)
        if (root / "gt" / "gt.txt").is_file() or root.is_file():
            seqs = [MOTSSequence(root)]
        elif root.is_dir():
            found = sorted(p for p in root.iterdir() if (p / "gt" / "gt.txt").is_file())
            found += sorted(root.glob("*.txt"))
            if not found:
                raise InputFileError(f"no MOTS sequences in {root}")
            seqs = [MOTSSequence(p) for p in found]
        else:
            raise InputFileError(f"MOTS data not found: {root}")
        return {s.name: (s if n_frames is None else [s[i] for i in range(min(n_frames, len(s)))]) for s in seqs}
    raise DataError(f"tracking data {spec!r}: use synthetic, synthetic:KIND[,KIND] or mots:PATH")
