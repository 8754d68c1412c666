"""Cityscapes gtFine layout and the official labelId -> trainId mapping."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from edgeseg.data import open_dataset
from edgeseg.data.cityscapes import (CLASSES, LABEL_TO_TRAIN, PALETTE, CityscapesSegmentation,
                                     label_ids_to_train_ids)
from edgeseg.errors import DataError, InputFileError

# (labelId, trainId) spot checks from cityscapesScripts' labels.py
OFFICIAL = [(0, 255), (1, 255), (3, 255), (6, 255), (7, 0), (8, 1), (9, 255), (10, 255), (11, 2),
            (14, 255), (15, 255), (16, 255), (17, 5), (18, 255), (19, 6), (20, 7), (21, 8),
            (23, 10), (24, 11), (26, 13), (29, 255), (30, 255), (31, 16), (33, 18), (34, 255),
            (255, 255)]


def _write_city(root: Path, split: str, city: str, stem: str, label_ids: np.ndarray) -> None:
    (root / "leftImg8bit" / split / city).mkdir(parents=True, exist_ok=True)
    (root / "gtFine" / split / city).mkdir(parents=True, exist_ok=True)
    lid = label_ids.astype(np.int64)
    img = np.dstack([lid * 7 % 256, lid, 255 - lid]).astype(np.uint8)
    cv2.imwrite(str(root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png"), img)
    cv2.imwrite(str(root / "gtFine" / split / city / f"{stem}_gtFine_labelIds.png"), label_ids)
    # the other gtFine files that exist in the real dataset must be ignored
    cv2.imwrite(str(root / "gtFine" / split / city / f"{stem}_gtFine_color.png"), img)
    cv2.imwrite(str(root / "gtFine" / split / city / f"{stem}_gtFine_instanceIds.png"),
                label_ids.astype(np.uint16) * 1000)


@pytest.fixture()
def city_root(tmp_path) -> Path:
    rng = np.random.default_rng(0)
    for split, city, stem in [("train", "aachen", "aachen_000000_000019"),
                              ("train", "bochum", "bochum_000000_000313"),
                              ("val", "frankfurt", "frankfurt_000000_000294")]:
        _write_city(tmp_path, split, city, stem, rng.integers(0, 34, (24, 48)).astype(np.uint8))
    return tmp_path


def test_official_table():
    assert len(CLASSES) == 19 and len(PALETTE) == 19
    assert sorted(LABEL_TO_TRAIN.values()) == list(range(19))
    ids = np.array([a for a, _ in OFFICIAL], np.uint8)
    assert label_ids_to_train_ids(ids).tolist() == [b for _, b in OFFICIAL]
    assert CLASSES[13] == "car" and PALETTE[0] == (128, 64, 128)


def test_reads_pairs_and_maps_ids(city_root):
    ds = CityscapesSegmentation(city_root, "train")
    assert len(ds) == 2
    assert [p.parent.name for p in ds.images] == ["aachen", "bochum"]
    img, lab = ds[0]
    raw = cv2.imread(str(ds.labels[0]), cv2.IMREAD_UNCHANGED)
    assert img.shape == (24, 48, 3) and lab.dtype == np.uint8
    for lid in np.unique(raw):
        expect = LABEL_TO_TRAIN.get(int(lid), 255)
        assert (lab[raw == lid] == expect).all()
    assert np.array_equal(img[..., 1], raw)  # the right image was paired with the label
    assert len(open_dataset(f"cityscapes:{city_root}", "val")) == 1


def test_errors(city_root, tmp_path_factory):
    empty = tmp_path_factory.mktemp("empty")
    with pytest.raises(DataError, match="leftImg8bit"):
        CityscapesSegmentation(empty)
    with pytest.raises(DataError, match="available"):
        CityscapesSegmentation(city_root, "test")
    next((city_root / "gtFine" / "val").rglob("*_labelIds.png")).unlink()
    with pytest.raises(DataError, match="labels missing"):
        CityscapesSegmentation(city_root, "val")
    ds = CityscapesSegmentation(city_root, "train")
    ds.images[1].write_bytes(b"\x89PNG broken")
    with pytest.raises(InputFileError):
        ds[1]
