"""COCO RLE (checked against pycocotools), polygons, the COCO writer and reader."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from edgeseg.data.coco import CocoInstances
from edgeseg.data.coco_rle import (annotation_to_mask, counts_to_string, mask_to_polygons, polygons_to_mask,
                                   rle_decode, rle_encode, string_to_counts)
from edgeseg.data.synthetic import CLASSES, generate, write_coco
from edgeseg.errors import DataError

mask_util = pytest.importorskip("pycocotools.mask")
# pycocotools' own NumPy-2 deprecation noise
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:pycocotools.*")


def _masks():
    rng = np.random.default_rng(0)
    yield np.zeros((5, 7), bool)
    yield np.ones((5, 7), bool)
    yield np.eye(6, 9, dtype=bool)
    m = np.zeros((1, 1), bool)
    yield m
    yield ~m
    for _ in range(6):
        yield rng.random((int(rng.integers(1, 40)), int(rng.integers(1, 40)))) < rng.random()
    for i in range(4):
        yield from generate(i, seed=1, size=(120, 200)).instance_masks


def test_rle_matches_pycocotools_both_ways():
    for m in _masks():
        ours = rle_encode(m)
        ref = mask_util.encode(np.asfortranarray(m.astype(np.uint8)))
        assert ours["size"] == list(ref["size"])
        assert ours["counts"] == ref["counts"].decode()
        dec = mask_util.decode({"size": ours["size"], "counts": ours["counts"].encode()})
        assert np.array_equal(dec.astype(bool), m)
        assert np.array_equal(rle_decode(ours), m)
        assert np.array_equal(rle_decode({"size": ref["size"], "counts": ref["counts"]}), m)
        unc = rle_encode(m, compressed=False)
        assert np.array_equal(rle_decode(unc), m)
        # pycocotools reads uncompressed counts through frPyObjects
        fr = mask_util.frPyObjects(unc, *unc["size"])
        assert np.array_equal(mask_util.decode(fr).astype(bool), m)


def test_counts_string_roundtrip_large_and_negative_deltas():
    counts = [0, 1, 100000, 3, 5, 70000, 1, 1, 2 ** 20, 7]
    assert string_to_counts(counts_to_string(counts)) == counts


def test_bad_rle():
    with pytest.raises(DataError):
        rle_decode({"size": [2, 2], "counts": [1, 1]})
    with pytest.raises(DataError):
        rle_decode({"counts": [4]})


def test_polygons_roundtrip_and_agree_with_pycocotools():
    smp = generate(3, seed=0, size=(192, 192))
    m = smp.instance_masks[int(np.argmax(smp.instance_masks.sum((1, 2))))]
    polys = mask_to_polygons(m)
    ours = polygons_to_mask(polys, 192, 192)
    # polygons carry no holes: expect the mask with its holes filled (flood the outside)
    flood = np.pad(~m, 1, constant_values=True).astype(np.uint8)
    cv2.floodFill(flood, None, (0, 0), 2)
    filled = flood[1:-1, 1:-1] != 2
    assert np.array_equal(ours, filled)
    ref = mask_util.decode(mask_util.merge(mask_util.frPyObjects(polys, 192, 192))).astype(bool)
    # pycocotools rasterises the same outline slightly thinner (about half the edge pixels)
    assert (ref & ~ours).sum() <= 0.02 * ref.sum()
    assert (ours & ref).sum() / (ours | ref).sum() > 0.8


@pytest.mark.parametrize("rle", ["compressed", "uncompressed", "polygon"])
def test_write_and_read_coco(tmp_path, rle):
    jp = write_coco(tmp_path / "images", tmp_path / "ann.json", n=3, seed=7, size=(64, 80), rle=rle)
    doc = json.loads(jp.read_text())
    assert [c["id"] for c in doc["categories"]] == list(range(1, len(CLASSES)))
    assert len(doc["images"]) == 3 and all(a["iscrowd"] == 0 for a in doc["annotations"])
    ds = CocoInstances(tmp_path / "images", jp)
    assert ds.classes == CLASSES and len(ds) == 3
    for i in range(3):
        ref = generate(i, 7, (64, 80))
        s = ds.sample(i)
        assert np.array_equal(s.instance_classes, ref.instance_classes)
        if rle != "polygon":
            assert np.array_equal(s.instance_masks, ref.instance_masks)
            assert np.array_equal(s.boxes, ref.boxes)
            keep = ref.semantic != 255
            assert np.array_equal(s.semantic[keep], ref.semantic[keep])
    for a in doc["annotations"]:  # pycocotools agrees with bbox/area
        h, w = 64, 80
        seg = a["segmentation"]
        rle_obj = (mask_util.frPyObjects(seg, h, w) if isinstance(seg, list) or
                   isinstance(seg["counts"], list) else seg)
        if isinstance(rle_obj, list):
            rle_obj = mask_util.merge(rle_obj)
        if rle != "polygon":
            assert mask_util.area(rle_obj) == a["area"]
            assert np.allclose(mask_util.toBbox(rle_obj), a["bbox"])
        assert annotation_to_mask(a, h, w).any()


def test_crowd_is_ignored_in_semantic(tmp_path):
    jp = write_coco(tmp_path / "im", tmp_path / "a.json", n=1, seed=0, size=(48, 48))
    doc = json.loads(jp.read_text())
    crowd = np.zeros((48, 48), bool)
    crowd[:4, :4] = True
    doc["annotations"].append({"id": 999, "image_id": 1, "category_id": 1, "iscrowd": 1,
                               "segmentation": rle_encode(crowd, compressed=False),
                               "area": 16.0, "bbox": [0, 0, 4, 4]})
    jp.write_text(json.dumps(doc))
    s = CocoInstances(tmp_path / "im", jp).sample(0)
    assert (s.semantic[:4, :4] == 255).all()
    assert len(s.instance_classes) == len(generate(0, 0, (48, 48)).instance_classes)


def test_bad_files(tmp_path):
    with pytest.raises(DataError):
        CocoInstances(tmp_path, tmp_path / "missing.json")
    (tmp_path / "x.json").write_text("{not json")
    with pytest.raises(DataError, match="JSON"):
        CocoInstances(tmp_path, tmp_path / "x.json")
    (tmp_path / "y.json").write_text("{}")
    with pytest.raises(DataError, match="images"):
        CocoInstances(tmp_path, tmp_path / "y.json")
