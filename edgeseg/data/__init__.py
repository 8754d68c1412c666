"""Datasets for training and evaluation (numpy + OpenCV only; never imports torch).

``open_dataset(spec, split)`` is the one entry point the trainer and CLI use:

    "synthetic"            synthetic shapes, 2000 train / 200 val samples
    "synthetic:N"          N samples for any split
    "voc:PATH"             PASCAL VOC 2012 (PATH = VOC2012 folder or its VOCdevkit parent)
    "cityscapes:PATH"      Cityscapes gtFine (PATH = folder holding leftImg8bit/ and gtFine/)

Every dataset returns ``(image BGR uint8 HxWx3, label uint8 HxW, 255 = ignore)`` and has
``.classes`` and ``.palette`` (RGB per class).

``open_instance_dataset(spec, split)`` opens instance-segmentation data (synthetic, COCO, VOC):
``ds.sample(i) -> InstanceSample`` (see :mod:`edgeseg.data.instances`).
"""
from __future__ import annotations

from typing import Any

from ..errors import DataError
from .instances import InstanceSample
from .synthetic import SyntheticSegmentation

#: Default synthetic dataset sizes and seeds per split (distinct seeds: val never seen in train).
SYNTHETIC_SPLITS: dict[str, tuple[int, int]] = {"train": (2000, 0), "val": (200, 1_000_003),
                                                "test": (200, 2_000_003)}
SCHEMES = ("synthetic", "synthetic:N", "voc:PATH", "cityscapes:PATH")


def open_dataset(spec: str, split: str = "train", **kw: Any):
    """Open a dataset from a spec string (see the module docstring) for ``split``.

    Keyword arguments go to the dataset class (e.g. ``size=`` or ``seed=`` for synthetic).
    """
    if not isinstance(spec, str) or not spec:
        raise DataError("dataset spec must be a non-empty string; valid forms: "
                        + ", ".join(SCHEMES))
    scheme, _, arg = spec.partition(":")
    scheme = scheme.strip().lower()
    if scheme == "synthetic":
        n_default, seed_default = SYNTHETIC_SPLITS.get(split, (200, _split_seed(split)))
        n = n_default
        if arg:
            try:
                n = int(arg)
            except ValueError:
                raise DataError(f"dataset spec {spec!r}: expected synthetic:N with an integer N"
                                ) from None
        kw.setdefault("seed", seed_default)
        return SyntheticSegmentation(n, **kw)
    if scheme in ("voc", "cityscapes") and not arg:
        raise DataError(f"dataset spec {spec!r} needs a path, e.g. {scheme}:/data/{scheme}")
    if scheme == "voc":
        from .voc import VOCSegmentation

        return VOCSegmentation(arg, split, **kw)
    if scheme == "cityscapes":
        from .cityscapes import CityscapesSegmentation

        return CityscapesSegmentation(arg, split, **kw)
    raise DataError(f"unknown dataset spec {spec!r}; valid forms: {', '.join(SCHEMES)}")


INSTANCE_SCHEMES = ("synthetic", "synthetic:N", "coco:ROOT", "coco:ANN.json", "voc:PATH")


def open_instance_dataset(spec: str, split: str = "train", **kw: Any):
    """Open an instance-segmentation dataset (``sample(i) -> InstanceSample``) from a spec:

        "synthetic" / "synthetic:N"  synthetic shapes, same sizes and split seeds as open_dataset
        "coco:ROOT"                  ROOT/annotations/instances_<split>2017.json + ROOT/<split>2017/
        "coco:ANN.json"              images in the sibling folder named after the json stem,
                                     or image_dir=...; ``split`` is not used
        "voc:PATH"                   VOC 2012 SegmentationObject + SegmentationClass

    Keyword arguments go to the dataset class (synthetic: size, seed; coco: image_dir,
    drop_empty, mask_backend; voc: classes). See :mod:`edgeseg.data.instances`.
    """
    from . import instances as inst

    if not isinstance(spec, str) or not spec:
        raise DataError("instance dataset spec must be a non-empty string; valid forms: "
                        + ", ".join(INSTANCE_SCHEMES))
    scheme, _, arg = spec.partition(":")
    scheme = scheme.strip().lower()
    if scheme == "synthetic":
        n_default, seed_default = SYNTHETIC_SPLITS.get(split, (200, _split_seed(split)))
        n = n_default
        if arg:
            try:
                n = int(arg)
            except ValueError:
                raise DataError(f"dataset spec {spec!r}: expected synthetic:N with an integer N"
                                ) from None
        kw.setdefault("seed", seed_default)
        return inst.SyntheticInstances(n, **kw)
    if scheme in ("coco", "voc") and not arg:
        raise DataError(f"dataset spec {spec!r} needs a path, e.g. {scheme}:/data/{scheme}")
    if scheme == "coco":
        ann, images = inst.resolve_coco(arg, split, kw.pop("image_dir", None))
        return inst.CocoInstanceDataset(ann, images, **kw)
    if scheme == "voc":
        return inst.VOCInstances(arg, split, **kw)
    raise DataError(f"unknown instance dataset spec {spec!r}; valid forms: "
                    f"{', '.join(INSTANCE_SCHEMES)}")


def _split_seed(split: str) -> int:
    import zlib

    return zlib.crc32(split.encode()) & 0x7FFFFFFF


__all__ = ["open_dataset", "open_instance_dataset", "InstanceSample", "SyntheticSegmentation",
           "SYNTHETIC_SPLITS", "SCHEMES", "INSTANCE_SCHEMES"]
