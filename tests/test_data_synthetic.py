"""Synthetic scene generator: determinism, label/instance consistency, dataset + open_dataset."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from edgeseg.data import SYNTHETIC_SPLITS, open_dataset
from edgeseg.data.synthetic import CLASSES, PALETTE, Sample, SyntheticSegmentation, generate
from edgeseg.errors import DataError


def test_same_index_and_seed_give_identical_sample():
    a, b = generate(7, seed=3), generate(7, seed=3)
    assert np.array_equal(a.image, b.image)
    assert np.array_equal(a.semantic, b.semantic)
    assert np.array_equal(a.instance_masks, b.instance_masks)
    assert np.array_equal(a.instance_classes, b.instance_classes)
    assert np.array_equal(a.boxes, b.boxes)


def test_different_index_or_seed_differ():
    a = generate(7, seed=3)
    assert not np.array_equal(a.image, generate(8, seed=3).image)
    assert not np.array_equal(a.image, generate(7, seed=4).image)


@pytest.mark.parametrize("size", [(256, 256), (96, 160), 64])
def test_sample_types_and_shapes(size):
    s = generate(0, 0, size)
    h, w = (size, size) if isinstance(size, int) else size
    assert isinstance(s, Sample)
    assert s.image.shape == (h, w, 3) and s.image.dtype == np.uint8
    assert s.semantic.shape == (h, w) and s.semantic.dtype == np.uint8
    n = len(s.instance_classes)
    assert s.instance_masks.shape == (n, h, w) and s.instance_masks.dtype == bool
    assert s.instance_classes.dtype == np.int64
    assert s.boxes.shape == (n, 4) and s.boxes.dtype == np.float32


def test_semantic_is_union_of_visible_instance_masks():
    for i in range(12):
        s = generate(i, seed=11)
        ms = s.instance_masks
        # visible parts do not overlap
        assert (ms.sum(0) <= 1).all()
        rebuilt = np.zeros_like(s.semantic)
        for m, c in zip(ms, s.instance_classes):
            assert 1 <= c < len(CLASSES)
            assert m.any()
            rebuilt[m] = c
        valid = s.semantic != 255  # 255 only where a dropped sliver of an object is visible
        assert np.array_equal(rebuilt[valid], s.semantic[valid])
        assert (rebuilt[~valid] == 0).all()
        assert set(np.unique(s.semantic)) <= set(range(len(CLASSES))) | {255}


def test_boxes_are_tight_around_masks():
    s = generate(5, seed=2)
    assert len(s.boxes) > 0
    for m, (x0, y0, x1, y1) in zip(s.instance_masks, s.boxes):
        ys, xs = np.nonzero(m)
        assert (x0, y0, x1, y1) == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)


def test_every_class_appears_and_objects_are_reasonably_large():
    seen = np.zeros(len(CLASSES), np.int64)
    counts = []
    for i in range(40):
        s = generate(i, seed=0)
        seen += np.bincount(s.semantic[s.semantic != 255].ravel(), minlength=len(CLASSES))
        counts.append(len(s.instance_classes))
        for m in s.instance_masks:
            assert m.sum() >= 0.002 * m.size
    assert (seen > 0).all(), seen
    frac = seen / seen.sum()
    assert 0.6 < frac[0] < 0.95  # background dominates but objects are substantial
    assert frac[1:].min() > 0.01
    assert 1 <= min(counts) and max(counts) <= 5


def test_background_and_objects_are_not_flat():
    s = generate(1, seed=0)
    bg = s.image[s.semantic == 0].astype(np.float32)
    assert bg.std(0).mean() > 5  # textured/gradient background, not a constant colour


def test_dataset_indexing_and_metadata():
    ds = SyntheticSegmentation(5, seed=9, size=(64, 80))
    assert len(ds) == 5
    img, lab = ds[2]
    assert img.shape == (64, 80, 3) and lab.shape == (64, 80)
    assert np.array_equal(lab, generate(2, 9, (64, 80)).semantic)
    assert np.array_equal(ds[-1][0], ds[4][0])
    with pytest.raises(IndexError):
        ds[5]
    assert list(ds.classes) == list(CLASSES) and ds.palette == PALETTE
    assert len(PALETTE) == len(CLASSES) and PALETTE[0] == (0, 0, 0)
    assert len(list(iter(ds))) == 5


def test_open_dataset_synthetic_splits_do_not_overlap():
    tr, va = open_dataset("synthetic", "train"), open_dataset("synthetic", "val")
    assert len(tr) == SYNTHETIC_SPLITS["train"][0] == 2000 and len(va) == 200
    assert tr.seed != va.seed
    assert not np.array_equal(tr[0][0], va[0][0])
    small = open_dataset("synthetic:17", "val", size=(32, 48))
    assert len(small) == 17 and small[0][0].shape == (32, 48, 3)
    assert small.seed == va.seed


@pytest.mark.parametrize("spec", ["nope", "synthetic:abc", "voc:", "", "imagenet:/x"])
def test_open_dataset_bad_specs(spec):
    with pytest.raises(DataError) as e:
        open_dataset(spec, "train")
    if spec in ("nope", "imagenet:/x", ""):
        assert "voc:PATH" in str(e.value) and "cityscapes:PATH" in str(e.value)


def test_bad_sizes_raise_data_error():
    with pytest.raises(DataError):
        SyntheticSegmentation(0)
    with pytest.raises(DataError):
        generate(0, 0, (8, 8))


def test_data_package_never_imports_torch():
    code = ("import sys, edgeseg.data, edgeseg.data.voc, edgeseg.data.cityscapes, "
            "edgeseg.data.coco, edgeseg.data.transforms; "
            "edgeseg.data.synthetic.generate(0); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_make_video_writes_a_readable_moving_scene(tmp_path):
    import cv2

    from edgeseg.data.synthetic import make_video, video_frame

    path = make_video(tmp_path / "clip.mp4", n_frames=12, size=(64, 96), fps=10, seed=1)
    assert path.exists() and path.suffix in (".mp4", ".avi")
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # no temp files left
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(f)
    cap.release()
    assert len(frames) == 12 and frames[0].shape == (64, 96, 3)
    gt0, gt9 = video_frame(0, (64, 96), seed=1), video_frame(9, (64, 96), seed=1)
    assert np.abs(frames[0].astype(int) - gt0.image).mean() < 12  # lossy codec
    assert len(gt0.instance_classes) >= 1
    assert not np.array_equal(gt0.semantic, gt9.semantic)  # objects move
    # smooth motion: consecutive frames mostly agree
    gt1 = video_frame(1, (64, 96), seed=1)
    assert (gt0.semantic == gt1.semantic).mean() > 0.9
