"""COCO instance annotations: a small dataset reader (the mask codec is :mod:`edgeseg.data.coco_rle`)."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Union

import numpy as np

from ..errors import DataError
from ..meta import default_palette
from ._io import read_image
from .coco_rle import annotation_to_mask
from .synthetic import Sample

PathLike = Union[str, "os.PathLike[str]"]


# -------------------------------------------------------------------------------- dataset
def load_coco_json(json_path: PathLike) -> dict[str, Any]:
    """Read and sanity-check a COCO instances file (needs images, annotations, categories)."""
    path = Path(json_path)
    if not path.is_file():
        raise DataError(f"COCO annotation file {path} not found")
    try:
        doc = json.loads(path.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{path} is not valid JSON ({e})") from None
    if not isinstance(doc, dict):
        raise DataError(f"{path} is not a COCO instances file: expected a JSON object")
    for key in ("images", "annotations", "categories"):
        if key not in doc:
            raise DataError(f"{path} is not a COCO instances file: no {key!r}")
    return doc


class CocoInstances:
    """COCO-format instance dataset.

    ``ds.sample(i)`` -> Sample (image, semantic, instance masks, classes, xyxy boxes);
    ``ds[i]`` -> (image, semantic label) so it also serves semantic training. Class ids are
    contiguous: 0 = background, then the categories sorted by id; crowd regions are 255.
    """

    def __init__(self, image_dir: PathLike, json_path: PathLike) -> None:
        self.image_dir, self.json_path = Path(image_dir), Path(json_path)
        doc = load_coco_json(self.json_path)
        if not self.image_dir.is_dir():
            raise DataError(f"COCO image folder {self.image_dir} not found")
        cats = sorted(doc["categories"], key=lambda c: c["id"])
        self.cat_to_label = {int(c["id"]): k + 1 for k, c in enumerate(cats)}
        self.classes: tuple[str, ...] = ("background",) + tuple(str(c["name"]) for c in cats)
        self.palette = default_palette(len(self.classes))
        self.images = list(doc["images"])
        self._anns: dict[int, list[dict[str, Any]]] = {int(im["id"]): [] for im in self.images}
        for a in doc["annotations"]:
            self._anns.setdefault(int(a["image_id"]), []).append(a)

    def __len__(self) -> int:
        return len(self.images)

    def sample(self, idx: int) -> Sample:
        info = self.images[idx]
        image = read_image(self.image_dir / info["file_name"])
        h, w = image.shape[:2]
        semantic = np.zeros((h, w), np.uint8)
        masks, classes, crowd = [], [], []
        for a in self._anns.get(int(info["id"]), []):
            m = annotation_to_mask(a, h, w)
            if a.get("iscrowd", 0):
                crowd.append(m)
                continue
            label = self.cat_to_label.get(int(a["category_id"]))
            if label is None:
                raise DataError(f"annotation {a.get('id')} has unknown category {a['category_id']}")
            masks.append(m)
            classes.append(label)
        order = np.argsort([-m.sum() for m in masks], kind="stable")  # small objects win overlaps
        for j in order:
            semantic[masks[j]] = classes[j]
        for m in crowd:
            semantic[m] = 255
        mk = np.stack(masks) if masks else np.zeros((0, h, w), bool)
        boxes = np.zeros((len(masks), 4), np.float32)
        for j, m in enumerate(mk):
            if m.any():
                ys, xs = np.nonzero(m.any(1))[0], np.nonzero(m.any(0))[0]
                boxes[j] = (xs[0], ys[0], xs[-1] + 1, ys[-1] + 1)
        return Sample(image, semantic, mk, np.asarray(classes, np.int64), boxes)

    def __getitem__(self, idx: int) -> tuple[np.ndarray, np.ndarray]:
        s = self.sample(idx)
        return s.image, s.semantic
