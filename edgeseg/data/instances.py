"""Instance-segmentation datasets: one sample type and readers for synthetic, COCO and VOC data.

Every dataset has ``.classes`` (object class names, no background), ``.palette`` (RGB per
class), ``.cat_ids`` (the COCO category id of each class, used when writing predictions),
``__len__`` and ``sample(i) -> InstanceSample``. Files are read in ``sample()`` only.
Use :func:`edgeseg.data.open_instance_dataset` to open one from a spec string.

COCO layout (``coco:ROOT``)::

    ROOT/annotations/instances_<split>2017.json
    ROOT/<split>2017/<file_name>            (split "val" -> val2017/)

or ``coco:ANN.json`` with the images in a sibling folder named after the json stem
(``/data/shapes.json`` + ``/data/shapes/``), in ``ROOT/<split>2017`` for
``ROOT/annotations/instances_<split>2017.json``, or in the folder given as ``image_dir=``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np

from ..errors import ArrayError, DataError
from ..meta import default_palette
from ._io import read_image, read_label
from .coco import load_coco_json
from .coco_rle import segmentation_to_mask
from .synthetic import CLASSES as SYNTHETIC_CLASSES
from .synthetic import PALETTE as SYNTHETIC_PALETTE
from .synthetic import _check_index, _SyntheticScenes, generate

PathLike = Union[str, "os.PathLike[str]"]
COCO_LAYOUT = """
    ROOT/annotations/instances_<split>2017.json
    ROOT/<split>2017/<file_name>            (split "val" -> val2017/)"""


# ------------------------------------------------------------------------------------ sample
@dataclass
class InstanceSample:
    """One image with its object instances.

    image: BGR uint8 HxWx3. masks: bool NxHxW. class_ids: int64 N, 0-based object classes
    (background excluded). boxes: float32 Nx4 (x0, y0, x1, y1) in pixel edges, tight around each
    mask (x1 = last column + 1). image_id: int (the COCO image id where there is one).
    iscrowd: bool N; crowd regions are kept so evaluation can ignore them (training drops them
    with :meth:`drop_crowd`).
    """

    image: np.ndarray
    masks: np.ndarray
    class_ids: np.ndarray
    boxes: np.ndarray
    image_id: int = 0
    iscrowd: np.ndarray = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.iscrowd is None:
            self.iscrowd = np.zeros(len(self.class_ids), bool)

    def __len__(self) -> int:
        return int(self.masks.shape[0])

    @property
    def hw(self) -> tuple[int, int]:
        """(height, width) of the image."""
        return int(self.image.shape[0]), int(self.image.shape[1])

    def validate(self) -> "InstanceSample":
        """Check dtypes and shapes; raise ArrayError naming expected vs got. Returns self."""
        img = self.image
        if not isinstance(img, np.ndarray) or img.dtype != np.uint8 or img.ndim != 3 \
                or img.shape[2] != 3:
            raise ArrayError("InstanceSample.image must be a BGR uint8 array (H, W, 3), got "
                             f"{_desc(img)}")
        h, w = img.shape[:2]
        m = self.masks
        if not isinstance(m, np.ndarray) or m.dtype != bool or m.ndim != 3 \
                or m.shape[1:] != (h, w):
            raise ArrayError(f"InstanceSample.masks must be bool (N, {h}, {w}) like the image, "
                             f"got {_desc(m)}")
        n = m.shape[0]
        for name, arr, dt, shape in (("class_ids", self.class_ids, np.int64, (n,)),
                                     ("boxes", self.boxes, np.float32, (n, 4)),
                                     ("iscrowd", self.iscrowd, np.bool_, (n,))):
            if not isinstance(arr, np.ndarray) or arr.dtype != dt or arr.shape != shape:
                raise ArrayError(f"InstanceSample.{name} must be {np.dtype(dt)} {shape} for "
                                 f"{n} masks, got {_desc(arr)}")
        return self

    def select(self, keep: Union[np.ndarray, Sequence[int]]) -> "InstanceSample":
        """A sample with only the instances ``keep`` (bool mask or indices); image shared."""
        keep = np.asarray(keep)
        if keep.dtype != bool:
            keep = keep.astype(np.int64)
        return InstanceSample(self.image, self.masks[keep], self.class_ids[keep],
                              self.boxes[keep], self.image_id, self.iscrowd[keep])

    def drop_crowd(self) -> "InstanceSample":
        """The sample without crowd regions (what training uses)."""
        return self if not self.iscrowd.any() else self.select(~self.iscrowd)


def _desc(a: Any) -> str:
    if isinstance(a, np.ndarray):
        return f"{a.dtype} {tuple(a.shape)}"
    return type(a).__name__


def masks_to_boxes(masks: np.ndarray) -> np.ndarray:
    """Tight float32 Nx4 xyxy boxes (pixel edges) of bool NxHxW masks; all zeros for an empty
    mask."""
    m = np.asarray(masks)
    if m.ndim != 3:
        raise ArrayError(f"masks_to_boxes: masks must be (N, H, W), got shape {m.shape}")
    n, h, w = m.shape
    boxes = np.zeros((n, 4), np.float32)
    if n == 0 or h == 0 or w == 0:
        return boxes
    rows, cols = m.any(2), m.any(1)
    ok = rows.any(1)
    boxes[:, 0] = cols.argmax(1)
    boxes[:, 1] = rows.argmax(1)
    boxes[:, 2] = w - cols[:, ::-1].argmax(1)
    boxes[:, 3] = h - rows[:, ::-1].argmax(1)
    boxes[~ok] = 0
    return boxes


def _sample(image: np.ndarray, masks: list[np.ndarray], classes: list[int], crowd: list[bool],
            image_id: int) -> InstanceSample:
    h, w = image.shape[:2]
    mk = np.stack(masks) if masks else np.zeros((0, h, w), bool)
    return InstanceSample(image, mk, np.asarray(classes, np.int64), masks_to_boxes(mk),
                          int(image_id), np.asarray(crowd, bool).reshape(-1))


# --------------------------------------------------------------------------------- synthetic
class SyntheticInstances(_SyntheticScenes):
    """The synthetic shapes as instances: sample i is ``generate(i, seed, size)``.

    Class ids are the synthetic classes minus one (``classes = CLASSES[1:]``); COCO category
    ids are the synthetic ids 1..6 (as :func:`~edgeseg.data.synthetic.write_coco` writes them);
    image ids are ``i + 1``. Nothing is crowd.
    """

    classes: tuple[str, ...] = SYNTHETIC_CLASSES[1:]
    palette: list[tuple[int, int, int]] = SYNTHETIC_PALETTE[1:]
    cat_ids: tuple[int, ...] = tuple(range(1, len(SYNTHETIC_CLASSES)))

    def sample(self, i: int) -> InstanceSample:
        """The InstanceSample of scene i."""
        i = _check_index(i, self.n)
        s = generate(i, self.seed, self.size)
        n = len(s.instance_classes)
        return InstanceSample(s.image, s.instance_masks, s.instance_classes - 1, s.boxes,
                              i + 1, np.zeros(n, bool))


# -------------------------------------------------------------------------------------- COCO
def resolve_coco(path: PathLike, split: str = "train",
                 image_dir: Optional[PathLike] = None) -> tuple[Path, Path]:
    """(annotation json, image folder) for ``coco:PATH`` (see the module docstring)."""
    p = Path(path).expanduser()
    if p.suffix.lower() == ".json" or p.is_file():
        if not p.is_file():
            raise DataError(f"COCO annotation file {p} not found")
        if image_dir is not None:
            cands = [Path(image_dir).expanduser()]
        else:
            cands = [p.parent / p.stem]
            if p.parent.name == "annotations" and p.stem.startswith("instances_"):
                cands.append(p.parent.parent / p.stem[len("instances_"):])
        for c in cands:
            if c.is_dir():
                return p, c
        raise DataError(f"COCO image folder for {p} not found: looked in "
                        f"{', '.join(map(str, cands))}; put the images there or pass "
                        "image_dir=<folder>")
    if not p.is_dir():
        raise DataError(f"COCO root {p} does not exist; expected layout:{COCO_LAYOUT}")
    ann = p / "annotations" / f"instances_{split}2017.json"
    img = Path(image_dir).expanduser() if image_dir is not None else p / f"{split}2017"
    if not ann.is_file():
        have = sorted(q.name for q in (p / "annotations").glob("instances_*.json"))
        raise DataError(f"COCO split {split!r} not found: missing {ann}; found "
                        f"{have or 'no instances_*.json'} in {p / 'annotations'}; expected "
                        f"layout:{COCO_LAYOUT}")
    if not img.is_dir():
        raise DataError(f"COCO image folder {img} not found (split {split!r}); expected "
                        f"layout:{COCO_LAYOUT}")
    return ann, img


class CocoInstanceDataset:
    """A COCO instances file and its image folder.

    Class ids are contiguous: the categories sorted by id; ``cat_ids[k]`` maps class k back to
    its category id. Masks follow ``COCO.annToMask`` (polygons, compressed and uncompressed
    RLE), decoded with pycocotools when importable and with edgeseg's identical numpy codec
    otherwise (``mask_backend``). Annotations whose mask has no pixel are skipped. Crowd
    annotations are kept with ``iscrowd`` set. ``drop_empty`` drops images without a non-crowd
    instance (useful for training).
    """

    def __init__(self, json_path: PathLike, image_dir: PathLike, drop_empty: bool = False,
                 mask_backend: str = "auto") -> None:
        self.json_path, self.image_dir = Path(json_path), Path(image_dir)
        doc = load_coco_json(self.json_path)
        if not self.image_dir.is_dir():
            raise DataError(f"COCO image folder {self.image_dir} not found")
        if mask_backend not in ("auto", "pycocotools", "numpy"):
            raise DataError(f"mask_backend must be 'auto', 'pycocotools' or 'numpy', got "
                            f"{mask_backend!r}")
        self.mask_backend = mask_backend
        try:
            cats = sorted(doc["categories"], key=lambda c: int(c["id"]))
            self.cat_ids: tuple[int, ...] = tuple(int(c["id"]) for c in cats)
            self.classes: tuple[str, ...] = tuple(str(c["name"]) for c in cats)
        except (KeyError, TypeError, ValueError):
            raise DataError(f"{self.json_path}: every category needs an integer 'id' and a "
                            "'name'") from None
        if len(set(self.cat_ids)) != len(self.cat_ids):
            raise DataError(f"{self.json_path}: category ids are not unique")
        self.cat_to_class = {c: k for k, c in enumerate(self.cat_ids)}
        self.palette: list[tuple[int, int, int]] = default_palette(len(self.classes) + 1)[1:]
        self._anns: dict[int, list[dict[str, Any]]] = {}
        for a in doc["annotations"]:
            try:
                iid, cid = int(a["image_id"]), int(a["category_id"])
            except (KeyError, TypeError, ValueError):
                raise DataError(f"{self.json_path}: annotation {a.get('id')} needs integer "
                                "'image_id' and 'category_id'") from None
            if cid not in self.cat_to_class:
                raise DataError(f"{self.json_path}: annotation {a.get('id')} has category "
                                f"{cid}, which is not among the categories {list(self.cat_ids)}")
            if "segmentation" not in a:
                raise DataError(f"{self.json_path}: annotation {a.get('id')} has no "
                                "'segmentation'; this looks like a box-only (detection) file, "
                                "but instance segmentation needs masks")
            self._anns.setdefault(iid, []).append(a)
        images = list(doc["images"])
        for im in images:
            if not isinstance(im, dict) or "id" not in im or "file_name" not in im:
                raise DataError(f"{self.json_path}: every image entry needs 'id' and "
                                f"'file_name', got {im!r:.80}")
        if drop_empty:
            images = [im for im in images
                      if any(not a.get("iscrowd", 0) for a in self._anns.get(int(im["id"]), []))]
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    @property
    def image_ids(self) -> list[int]:
        """The COCO image id of each sample, in order."""
        return [int(im["id"]) for im in self.images]

    def sample(self, i: int) -> InstanceSample:
        """Read image i and decode its annotations."""
        info = self.images[_check_index(i, len(self.images))]
        path = self.image_dir / str(info["file_name"])
        image = read_image(path)
        h, w = image.shape[:2]
        jh, jw = int(info.get("height", h)), int(info.get("width", w))
        if (jh, jw) != (h, w):
            raise DataError(f"{path} is {w}x{h} but {self.json_path.name} says {jw}x{jh} "
                            f"(image id {info['id']}); the annotations do not fit this image")
        masks, classes, crowd = [], [], []
        for a in self._anns.get(int(info["id"]), []):
            try:
                m = segmentation_to_mask(a["segmentation"], h, w, self.mask_backend)
            except DataError as e:
                raise DataError(f"{self.json_path}: annotation {a.get('id')} of image "
                                f"{info['id']}: {e}") from None
            if not m.any():
                continue
            masks.append(m)
            classes.append(self.cat_to_class[int(a["category_id"])])
            crowd.append(bool(a.get("iscrowd", 0)))
        return _sample(image, masks, classes, crowd, int(info["id"]))

    def __repr__(self) -> str:
        return (f"CocoInstanceDataset(json={str(self.json_path)!r}, "
                f"images={str(self.image_dir)!r}, n={len(self)})")


# --------------------------------------------------------------------------------------- VOC
class VOCInstances:
    """PASCAL VOC 2012 SegmentationObject instances (same layout and root rules as
    :class:`~edgeseg.data.voc.VOCSegmentation`).

    The class of an object is the majority SegmentationClass class under it; 255 boundary
    pixels belong to no object. ``classes`` are the object classes (VOC's 20 for real VOC, or
    ``classes.txt`` minus background); ``classes=`` overrides, background first as for
    VOCSegmentation. Image ids are ``i + 1`` (``ids[i]`` is the VOC name); nothing is crowd.
    VOC's detection annotations (Annotations/*.xml) carry boxes only, no masks, so they are
    not used.
    """

    def __init__(self, root: PathLike, split: str = "train",
                 classes: Optional[Sequence[str]] = None) -> None:
        from .voc import LAYOUT, VOCSegmentation

        self._voc = VOCSegmentation(root, split, classes)
        self.root, self.split, self.ids = self._voc.root, split, self._voc.ids
        obj_dir = self.root / "SegmentationObject"
        if not obj_dir.is_dir():
            raise DataError(f"VOC folder {self.root} has no SegmentationObject/; instance masks "
                            f"need it (VOCDetection's Annotations/ have boxes only); expected "
                            f"layout:{LAYOUT}")
        missing = [obj_dir / f"{i}.png" for i in self.ids if not (obj_dir / f"{i}.png").is_file()]
        if missing:
            more = f" (and {len(missing) - 3} more)" if len(missing) > 3 else ""
            raise DataError(f"VOC split {split!r} lists images without an instance label: "
                            f"{', '.join(map(str, missing[:3]))}{more}")
        self.classes: tuple[str, ...] = tuple(self._voc.classes[1:])
        self.palette: list[tuple[int, int, int]] = list(self._voc.palette[1:])
        self.cat_ids: tuple[int, ...] = tuple(range(1, len(self.classes) + 1))

    def __len__(self) -> int:
        return len(self.ids)

    def sample(self, i: int) -> InstanceSample:
        """Image i with its objects (objects without any class pixel are skipped)."""
        from .voc import objects_from_labels

        i = _check_index(i, len(self.ids))
        name = self.ids[i]
        image, sem = self._voc[i]
        obj = read_label(self.root / "SegmentationObject" / f"{name}.png")
        masks, cls = objects_from_labels(obj, sem, name)
        keep = (cls > 0) & (cls <= len(self.classes))
        masks, cls = masks[keep], cls[keep] - 1
        return InstanceSample(image, masks, cls, masks_to_boxes(masks), i + 1,
                              np.zeros(len(cls), bool))

    def __repr__(self) -> str:
        return f"VOCInstances(root={str(self.root)!r}, split={self.split!r}, n={len(self)})"


__all__ = ["InstanceSample", "masks_to_boxes", "SyntheticInstances", "CocoInstanceDataset",
           "VOCInstances", "resolve_coco"]
