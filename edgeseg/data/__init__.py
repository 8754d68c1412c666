"""Datasets for training and evaluation (numpy + OpenCV only; never imports torch).

``open_dataset(spec, split)`` is the one entry point the trainer and CLI use:

    "synthetic"            synthetic shapes, 2000 train / 200 val samples
    "synthetic:N"          N samples for any split
    "voc:PATH"             PASCAL VOC 2012 (PATH = VOC2012 folder or its VOCdevkit parent)
    "cityscapes:PATH"      Cityscapes gtFine (PATH = folder holding leftImg8bit/ and gtFine/)

Every dataset returns ``(image BGR uint8 HxWx3, label uint8 HxW, 255 = ignore)`` and has
``.classes`` and ``.palette`` (RGB per class).
"""
from __future__ import annotations

from typing import Any

from ..errors import DataError
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


def _split_seed(split: str) -> int:
    import zlib

    return zlib.crc32(split.encode()) & 0x7FFFFFFF


__all__ = ["open_dataset", "SyntheticSegmentation", "SYNTHETIC_SPLITS", "SCHEMES"]
