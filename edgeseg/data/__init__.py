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
    scheme, arg = _parse_spec(spec, "dataset", SCHEMES, ("voc", "cityscapes"))
    if scheme == "synthetic":
        n = _synthetic_size(spec, split, arg, kw)  # also sets the split's seed in kw
        return SyntheticSegmentation(n, **kw)
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

    scheme, arg = _parse_spec(spec, "instance dataset", INSTANCE_SCHEMES, ("coco", "voc"))
    if scheme == "synthetic":
        n = _synthetic_size(spec, split, arg, kw)  # also sets the split's seed in kw
        return inst.SyntheticInstances(n, **kw)
    if scheme == "coco":
        ann, images = inst.resolve_coco(arg, split, kw.pop("image_dir", None))
        return inst.CocoInstanceDataset(ann, images, **kw)
    if scheme == "voc":
        return inst.VOCInstances(arg, split, **kw)
    raise DataError(f"unknown instance dataset spec {spec!r}; valid forms: "
                    f"{', '.join(INSTANCE_SCHEMES)}")


def _parse_spec(spec: str, kind: str, schemes: tuple[str, ...],
                path_schemes: tuple[str, ...]) -> tuple[str, str]:
    """``"scheme:arg"`` -> (lower-case scheme, arg); ``path_schemes`` need a non-empty arg."""
    if not isinstance(spec, str) or not spec:
        raise DataError(f"{kind} spec must be a non-empty string; valid forms: " + ", ".join(schemes))
    scheme, _, arg = spec.partition(":")
    scheme = scheme.strip().lower()
    if scheme in path_schemes and not arg:
        raise DataError(f"dataset spec {spec!r} needs a path, e.g. {scheme}:/data/{scheme}")
    return scheme, arg


def _synthetic_size(spec: str, split: str, arg: str, kw: dict[str, Any]) -> int:
    """Sample count of ``synthetic[:N]`` for ``split`` (default from SYNTHETIC_SPLITS); sets the
    split's default seed in ``kw`` unless one is given."""
    n, seed = SYNTHETIC_SPLITS.get(split, (200, _split_seed(split)))
    if arg:
        try:
            n = int(arg)
        except ValueError:
            raise DataError(f"dataset spec {spec!r}: expected synthetic:N with an integer N") from None
    kw.setdefault("seed", seed)
    return n


def _split_seed(split: str) -> int:
    import zlib

    return zlib.crc32(split.encode()) & 0x7FFFFFFF


__all__ = ["open_dataset", "open_instance_dataset", "InstanceSample", "SyntheticSegmentation",
           "SYNTHETIC_SPLITS", "SCHEMES", "INSTANCE_SCHEMES"]
