"""Instance datasets (synthetic, COCO, VOC), pycocotools-exact mask decoding, and the
instance augmentations (masks stay aligned; checked against slow references)."""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgeseg import defaults, ops
from edgeseg.data import SYNTHETIC_SPLITS, open_dataset, open_instance_dataset
from edgeseg.data import instance_transforms as T
from edgeseg.data.coco_rle import (coco_polygon_to_mask, mask_to_polygons, rle_encode,
                                   segmentation_to_mask)
from edgeseg.data.instances import (CocoInstanceDataset, InstanceSample, SyntheticInstances,
                                    VOCInstances, masks_to_boxes)
from edgeseg.data.synthetic import CLASSES, PALETTE, generate, write_coco, write_voc
from edgeseg.data.voc import CLASSES as VOC_CLASSES
from edgeseg.errors import ArrayError, DataError

try:  # tests/ may or may not be a package
    from .reference import ref_masks_to_boxes, ref_warp_masks
except ImportError:
    from reference import ref_masks_to_boxes, ref_warp_masks

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:pycocotools.*")
SETTINGS = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
SIZE = (48, 64)
CAT_MAP = {1: 1, 2: 5, 3: 9, 4: 20, 5: 33, 6: 90}  # synthetic class -> non-contiguous category


# -------------------------------------------------------------------------------- sample
def test_masks_to_boxes_matches_reference():
    rng = np.random.default_rng(0)
    for h, w in [(1, 1), (5, 7), (31, 17)]:
        m = rng.random((6, h, w)) < 0.05
        m[0] = False
        assert np.array_equal(masks_to_boxes(m), ref_masks_to_boxes(m))
    assert masks_to_boxes(np.zeros((0, 4, 4), bool)).shape == (0, 4)


def test_instance_sample_validation_and_selection():
    s = SyntheticInstances(3, seed=2, size=SIZE).sample(1)
    assert s.validate() is s and s.hw == SIZE and len(s) == len(s.class_ids)
    bad = InstanceSample(s.image, s.masks.astype(np.uint8), s.class_ids, s.boxes)
    with pytest.raises(ArrayError, match=r"masks must be bool \(N, 48, 64\).*got uint8"):
        bad.validate()
    with pytest.raises(ArrayError, match="image must be a BGR uint8"):
        InstanceSample(s.image[..., 0], s.masks, s.class_ids, s.boxes).validate()
    with pytest.raises(ArrayError, match="boxes must be float32"):
        InstanceSample(s.image, s.masks, s.class_ids, s.boxes.astype(np.float64)).validate()
    crowd = s.iscrowd.copy()
    crowd[0] = True
    s2 = InstanceSample(s.image, s.masks, s.class_ids, s.boxes, 5, crowd)
    d = s2.drop_crowd()
    assert len(d) == len(s) - 1 and not d.iscrowd.any() and d.image_id == 5
    assert np.array_equal(d.masks, s.masks[1:])


# ----------------------------------------------------------------------------- synthetic
def test_synthetic_instances_follow_generator_and_split_seeds():
    ds = open_instance_dataset("synthetic", "val")
    assert len(ds) == SYNTHETIC_SPLITS["val"][0]
    assert ds.classes == CLASSES[1:] and ds.palette == PALETTE[1:]
    assert ds.cat_ids == (1, 2, 3, 4, 5, 6)
    small = open_instance_dataset("synthetic:3", "val", size=SIZE)
    sem = open_dataset("synthetic:3", "val", size=SIZE)
    for i in range(3):
        s = small.sample(i)
        ref = generate(i, SYNTHETIC_SPLITS["val"][1], SIZE)
        assert np.array_equal(s.image, sem[i][0])
        assert np.array_equal(s.masks, ref.instance_masks)
        assert np.array_equal(s.class_ids, ref.instance_classes - 1)
        assert np.array_equal(s.boxes, ref_masks_to_boxes(s.masks))
        assert s.image_id == i + 1 and not s.iscrowd.any()
        s.validate()
    assert small.sample(-1).image_id == 3
    with pytest.raises(IndexError):
        small.sample(3)
    with pytest.raises(DataError, match="integer N"):
        open_instance_dataset("synthetic:abc")


def test_open_instance_dataset_spec_errors():
    with pytest.raises(DataError, match="valid forms"):
        open_instance_dataset("")
    with pytest.raises(DataError, match="coco:ROOT"):
        open_instance_dataset("cityscapes:/x")
    with pytest.raises(DataError, match="needs a path"):
        open_instance_dataset("coco")


# ------------------------------------------------------------------ COCO mask decoding
def _random_polygon(rng, h, w):
    k = int(rng.integers(3, 14))
    mode = rng.integers(4)
    if mode == 0:  # star-shaped around a centre, possibly leaving the image
        t = np.sort(rng.uniform(0, 2 * np.pi, k))
        r = rng.uniform(0.1, 0.7, k) * max(h, w)
        c = rng.uniform(0, 1, 2) * (w, h)
        p = np.stack([c[0] + r * np.cos(t), c[1] + r * np.sin(t)], 1)
    elif mode == 1:  # self-intersecting, integer vertices
        p = np.round(rng.uniform(0, 1, (k, 2)) * (w, h))
    elif mode == 2:  # half-pixel vertices, one repeated
        p = np.round(rng.uniform(-2, 1.1, (k, 2)) * (w, h) * 2) / 2
        p[1] = p[0]
    else:
        p = rng.uniform(0, 1, (k, 2)) * (w, h)
    return p.ravel().tolist()


def test_numpy_polygon_rasteriser_equals_pycocotools():
    mask_util = pytest.importorskip("pycocotools.mask")
    rng = np.random.default_rng(1)
    for _ in range(400):
        h, w = (int(v) for v in rng.integers(1, 50, 2))
        p = _random_polygon(rng, h, w)
        ref = mask_util.decode(mask_util.frPyObjects([p], h, w)[0]).astype(bool)
        assert np.array_equal(coco_polygon_to_mask(p, h, w), ref), (h, w, p)


def test_segmentation_backends_agree_on_polygons_and_both_rles():
    pytest.importorskip("pycocotools")
    rng = np.random.default_rng(2)
    segs = []
    for i in range(4):
        s = generate(i, 3, SIZE)
        for m in s.instance_masks:
            segs += [mask_to_polygons(m), rle_encode(m), rle_encode(m, compressed=False)]
    segs.append([_random_polygon(rng, *SIZE), _random_polygon(rng, *SIZE)])  # union
    segs.append([[1.0, 1.0, 9.0, 9.0], [2.0, 2.0, 20.0, 3.0, 10.0, 30.0]])  # 2-point + triangle
    segs.append([])
    for seg in segs:
        a = segmentation_to_mask(seg, *SIZE, backend="pycocotools")
        b = segmentation_to_mask(seg, *SIZE, backend="numpy")
        assert a.dtype == bool and a.shape == SIZE and np.array_equal(a, b)
    comp = rle_encode(generate(0, 3, SIZE).instance_masks[0])
    assert np.array_equal(segmentation_to_mask(dict(comp, counts=comp["counts"].encode()), *SIZE),
                          segmentation_to_mask(comp, *SIZE, backend="numpy"))
    with pytest.raises(DataError, match="does not match"):
        segmentation_to_mask(comp, 10, 10)
    with pytest.raises(DataError, match="unsupported"):
        segmentation_to_mask({"polygon": []}, *SIZE)


# ------------------------------------------------------------------------- COCO dataset
@pytest.fixture(scope="module")
def coco_root(tmp_path_factory) -> Path:
    """Real COCO layout: synthetic scenes with non-contiguous category ids (listed in reverse),
    plus a crowd region (uncompressed RLE), a polygon and an annotation with no pixel."""
    root = tmp_path_factory.mktemp("coco")
    jp = write_coco(root / "val2017", root / "annotations" / "instances_val2017.json", n=4,
                    seed=3, size=SIZE)
    doc = json.loads(jp.read_text())
    for c in doc["categories"]:
        c["id"] = CAT_MAP[c["id"]]
    doc["categories"].reverse()
    for a in doc["annotations"]:
        a["category_id"] = CAT_MAP[a["category_id"]]
    crowd = np.zeros(SIZE, bool)
    crowd[:6, :10] = True
    extra = [
        {"image_id": 1, "category_id": 5, "iscrowd": 1,
         "segmentation": rle_encode(crowd, compressed=False), "area": 60.0, "bbox": [0, 0, 10, 6]},
        {"image_id": 2, "category_id": 90, "iscrowd": 0,
         "segmentation": [[3.2, 4.1, 30.7, 6.0, 20.5, 40.3, 8.0, 25.5]], "area": 1.0,
         "bbox": [3, 4, 28, 37]},
        {"image_id": 2, "category_id": 1, "iscrowd": 0,
         "segmentation": [[200.0, 200.0, 210.0, 200.0, 205.0, 210.0]], "area": 0.0,
         "bbox": [200, 200, 10, 10]},  # outside the image: no pixel, skipped
    ]
    for e in extra:
        e["id"] = len(doc["annotations"]) + 1
        doc["annotations"].append(e)
    jp.write_text(json.dumps(doc))
    return root


def _ann_to_masks(json_path, image_id):
    from pycocotools.coco import COCO

    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(json_path))
    anns = coco.loadAnns(coco.getAnnIds(imgIds=[image_id]))
    return [coco.annToMask(a).astype(bool) for a in anns]


def test_coco_root_layout_and_contents(coco_root):
    pytest.importorskip("pycocotools")
    ds = open_instance_dataset(f"coco:{coco_root}", "val")
    assert isinstance(ds, CocoInstanceDataset) and len(ds) == 4
    assert ds.classes == CLASSES[1:]  # sorted by category id, not by listing order
    assert ds.cat_ids == tuple(CAT_MAP[k] for k in range(1, 7))
    assert len(ds.palette) == 6
    for i in range(4):
        s = ds.sample(i)
        s.validate()
        ref = generate(i, 3, SIZE)
        n = len(ref.instance_classes)
        assert s.image_id == i + 1
        assert np.array_equal(s.masks[:n], ref.instance_masks)
        assert np.array_equal(s.class_ids[:n], ref.instance_classes - 1)
        assert np.array_equal(s.boxes, ref_masks_to_boxes(s.masks))
        assert np.abs(s.image.astype(int) - ref.image).mean() < 8  # JPEG
        # annToMask semantics: every kept mask equals pycocotools' (the empty one is skipped)
        coco_masks = [m for m in _ann_to_masks(ds.json_path, s.image_id) if m.any()]
        assert len(coco_masks) == len(s)
        for m, cm in zip(s.masks, coco_masks):
            assert np.array_equal(m, cm)
    s0, s1 = ds.sample(0), ds.sample(1)
    assert list(s0.iscrowd) == [False] * (len(s0) - 1) + [True]
    assert s0.class_ids[-1] == 1 and s0.masks[-1].sum() == 60  # category 5 -> class 1
    assert s1.class_ids[-1] == 5 and not s1.iscrowd.any()  # the polygon, category 90
    assert len(s0.drop_crowd()) == len(s0) - 1


def test_coco_numpy_fallback_equals_pycocotools(coco_root, monkeypatch):
    pytest.importorskip("pycocotools")
    spec = f"coco:{coco_root}"
    ref = [open_instance_dataset(spec, "val", mask_backend="pycocotools").sample(i)
           for i in range(4)]
    monkeypatch.setitem(sys.modules, "pycocotools", None)
    monkeypatch.setitem(sys.modules, "pycocotools.mask", None)
    ds = open_instance_dataset(spec, "val")  # auto: pycocotools is not importable now
    for i in range(4):
        s = ds.sample(i)
        assert np.array_equal(s.masks, ref[i].masks)
        assert np.array_equal(s.class_ids, ref[i].class_ids)
        assert np.array_equal(s.iscrowd, ref[i].iscrowd)
    with pytest.raises(DataError, match="pip install pycocotools"):
        open_instance_dataset(spec, "val", mask_backend="pycocotools").sample(0)


def test_coco_json_spec_finds_images(coco_root, tmp_path):
    # ROOT/annotations/instances_val2017.json -> ROOT/val2017
    ds = open_instance_dataset(f"coco:{coco_root / 'annotations' / 'instances_val2017.json'}")
    assert ds.image_dir == coco_root / "val2017" and len(ds) == 4
    # shapes.json -> sibling shapes/
    shutil.copy(coco_root / "annotations" / "instances_val2017.json", tmp_path / "shapes.json")
    with pytest.raises(DataError, match="image_dir"):
        open_instance_dataset(f"coco:{tmp_path / 'shapes.json'}")
    shutil.copytree(coco_root / "val2017", tmp_path / "shapes")
    assert open_instance_dataset(f"coco:{tmp_path / 'shapes.json'}").image_dir == \
        tmp_path / "shapes"
    ds = open_instance_dataset(f"coco:{tmp_path / 'shapes.json'}",
                               image_dir=coco_root / "val2017", drop_empty=True)
    assert ds.image_dir == coco_root / "val2017"
    assert ds.image_ids == [1, 2, 3, 4]


def test_coco_layout_errors(coco_root, tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        open_instance_dataset(f"coco:{tmp_path / 'nope'}")
    with pytest.raises(DataError, match=r"instances_train2017\.json.*instances_val2017\.json"):
        open_instance_dataset(f"coco:{coco_root}", "train")
    with pytest.raises(DataError, match="not found"):
        open_instance_dataset(f"coco:{tmp_path / 'missing.json'}")
    root = tmp_path / "r"
    (root / "annotations").mkdir(parents=True)
    shutil.copy(coco_root / "annotations" / "instances_val2017.json", root / "annotations")
    with pytest.raises(DataError, match="val2017"):
        open_instance_dataset(f"coco:{root}", "val")
    doc = json.loads((coco_root / "annotations" / "instances_val2017.json").read_text())
    img_dir = coco_root / "val2017"
    bad = tmp_path / "bad.json"
    for edit, match in [(lambda d: d["annotations"][0].update(category_id=77), "category 77"),
                        (lambda d: d["annotations"][0].pop("segmentation"), "box-only"),
                        (lambda d: d.pop("categories"), "categories")]:
        d = json.loads(json.dumps(doc))
        edit(d)
        bad.write_text(json.dumps(d))
        with pytest.raises(DataError, match=match):
            CocoInstanceDataset(bad, img_dir)
    d = json.loads(json.dumps(doc))
    d["images"][0]["width"] = 99
    bad.write_text(json.dumps(d))
    with pytest.raises(DataError, match="do not fit"):
        CocoInstanceDataset(bad, img_dir).sample(0)


# --------------------------------------------------------------------------------- VOC
@pytest.fixture(scope="module")
def voc_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("voc") / "VOC2012"
    write_voc(root, n_train=3, n_val=2, seed=4, size=SIZE)
    return root


def test_voc_instances(voc_root):
    ds = open_instance_dataset(f"voc:{voc_root}", "val")
    assert isinstance(ds, VOCInstances) and len(ds) == 2
    assert ds.classes == CLASSES[1:] and len(ds.palette) == 6 and ds.cat_ids == tuple(range(1, 7))
    for i in range(2):
        s = ds.sample(i)
        s.validate()
        ref = generate(i, 5, SIZE)  # val uses seed + 1
        assert np.array_equal(s.masks, ref.instance_masks)
        assert np.array_equal(s.class_ids, ref.instance_classes - 1)
        assert np.array_equal(s.boxes, ref_masks_to_boxes(s.masks)) and s.image_id == i + 1


def test_voc_boundary_pixels_are_in_no_object(tmp_path):
    write_voc(tmp_path, 1, 0, seed=0, size=SIZE, boundary=2)
    s = VOCInstances(tmp_path, "train").sample(0)
    from edgeseg.data._io import read_label

    obj = read_label(next((tmp_path / "SegmentationObject").glob("*.png")))
    assert (obj == 255).any() and not s.masks[:, obj == 255].any()
    ref = generate(0, 0, SIZE)
    assert np.array_equal(s.class_ids, ref.instance_classes - 1)
    assert np.array_equal(s.masks, ref.instance_masks & (obj != 255))


def test_voc_real_classes_and_missing_objects(tmp_path, voc_root):
    root = tmp_path / "VOC2012"
    shutil.copytree(voc_root, root)
    (root / "classes.txt").unlink()
    ds = VOCInstances(root, "train")
    assert ds.classes == VOC_CLASSES[1:] and len(ds.classes) == 20
    next((root / "SegmentationObject").glob("train_*.png")).unlink()
    with pytest.raises(DataError, match="without an instance label"):
        VOCInstances(root, "train")
    shutil.rmtree(root / "SegmentationObject")
    with pytest.raises(DataError, match="SegmentationObject"):
        VOCInstances(root, "train")


# ------------------------------------------------------------------------ augmentations
@SETTINGS
@given(h=st.integers(1, 23), w=st.integers(1, 23), oh=st.integers(1, 29), ow=st.integers(1, 29),
       sy=st.sampled_from([0.25, 0.5, 1.0, 4 / 3, 2.5, -1.0, -0.75]),
       sx=st.sampled_from([0.3, 1.0, 1.5, 3.0, -1.0, -2.0]),
       ty=st.integers(-10, 30), tx=st.integers(-10, 30), seed=st.integers(0, 2 ** 16))
def test_warp_masks_matches_full_frame_reference(h, w, oh, ow, sy, sx, ty, tx, seed):
    rng = np.random.default_rng(seed)
    masks = rng.random((3, h, w)) < rng.uniform(0.05, 0.6)
    masks[0] = False
    out, boxes = T.warp_masks(masks, (oh, ow), (sy, sx), (ty, tx))
    ref = ref_warp_masks(masks, (oh, ow), (sy, sx), (ty, tx))
    assert np.array_equal(out, ref)
    assert np.array_equal(boxes, ref_masks_to_boxes(ref))


def _coded_sample(seed=0, size=(60, 90)) -> InstanceSample:
    """A synthetic sample whose image encodes the instance: pixel value 40 * (k + 1)."""
    s = SyntheticInstances(1, seed=seed, size=size).sample(0)
    img = np.zeros_like(s.image)
    for k, m in enumerate(s.masks):
        img[m] = 40 * (k + 1)
    return InstanceSample(img, s.masks, s.class_ids, s.boxes, s.image_id, s.iscrowd)


def _assert_aligned(s: InstanceSample, codes):
    s.validate()
    assert np.array_equal(s.boxes, ref_masks_to_boxes(s.masks))
    for m, code in zip(s.masks, codes):
        vals = s.image[m][:, 0]
        assert np.median(vals) == code  # bilinear edges blend; the bulk keeps its code


def test_flip_and_resize_keep_alignment():
    s = _coded_sample()
    codes = [40 * (k + 1) for k in range(len(s))]
    f = T.hflip(s)
    _assert_aligned(f, codes)
    back = T.hflip(f)
    assert np.array_equal(back.masks, s.masks) and np.array_equal(back.boxes, s.boxes)
    assert np.array_equal(back.image, s.image)
    same = T.resize(s, s.hw)
    assert np.array_equal(same.masks, s.masks) and np.array_equal(same.image, s.image)
    for size in [(120, 180), (45, 67), (60, 30), (7, 9)]:
        r = T.resize(s, size)
        assert r.hw == size
        ref = ref_warp_masks(s.masks, size, (size[0] / 60, size[1] / 90), (0, 0))
        keep = ref.any((1, 2))
        assert np.array_equal(r.masks, ref[keep])
        if size[0] > 20:
            _assert_aligned(r, [c for c, k in zip(codes, keep) if k])


def test_letterbox_matches_inference_geometry():
    s = SyntheticInstances(1, seed=5, size=(60, 90)).sample(0)
    for size in [(64, 64), (100, 50), 48]:
        out, info = T.letterbox(s, size)
        assert info == ops.letterbox_info(s.hw, size)
        assert out.hw == info.dst_hw
        # the image equals ops.letterbox's (the inference path) up to rounding
        tensor, _ = ops.letterbox(s.image, size)
        rgb = tensor[0].transpose(1, 2, 0) * np.array(defaults.STD_RGB) + defaults.MEAN_RGB
        assert np.abs(rgb[..., ::-1] - out.image).max() <= 1.01
        (rh, rw), top, left = info.resized_hw, info.pad_top, info.pad_left
        ref = ref_warp_masks(s.masks, info.dst_hw, (rh / 60, rw / 90), (top, left))
        keep = ref.any((1, 2))
        assert np.array_equal(out.masks, ref[keep])
        # the mapping takes the boxes close to the new tight boxes (nearest sampling may drop
        # a thin edge row or column when shrinking)
        b = s.boxes[keep] * [rw / 90, rh / 60, rw / 90, rh / 60] + [left, top, left, top]
        assert np.abs(out.boxes - b).max() <= 1.5
        assert not out.masks[:, :top].any() and not out.masks[:, top + rh:].any()
        assert (out.image[:top] == defaults.PAD_VALUE).all()


def test_random_crop_keeps_or_drops_by_visible_area():
    base = _coded_sample(seed=7, size=(80, 120))
    h, w = base.hw
    yy, xx = np.mgrid[:h, :w]
    img = np.stack([yy, xx, np.zeros_like(yy)], -1).astype(np.uint8)  # pixel -> its position
    s = InstanceSample(img, base.masks, base.class_ids, base.boxes)
    crop = T.RandomCrop((40, 50), min_area_frac=0.3, min_pixels=4)
    rng = np.random.default_rng(0)
    areas = s.masks.sum((1, 2))
    seen_drop = False
    for _ in range(25):
        c = crop(s, rng)
        y, x = int(c.image[0, 0, 0]), int(c.image[0, 0, 1])
        vis = s.masks[:, y:y + 40, x:x + 50]
        keep = (vis.sum((1, 2)) >= 0.3 * areas) & (vis.sum((1, 2)) >= 4)
        seen_drop |= bool((~keep & vis.any((1, 2))).any())
        assert np.array_equal(c.masks, vis[keep])
        assert np.array_equal(c.class_ids, s.class_ids[keep])
        assert np.array_equal(c.boxes, ref_masks_to_boxes(c.masks))
    assert seen_drop  # some crops cut an instance down to a sliver
    # smaller than the crop: padded bottom/right with the pad value, masks untouched
    small = T.RandomCrop((100, 130))(s, np.random.default_rng(1))
    assert small.hw == (100, 130) and (small.image[80:] == defaults.PAD_VALUE).all()
    assert np.array_equal(small.masks[:, :80, :120], s.masks)


def test_pipelines_are_seeded_and_aligned():
    s = _coded_sample(seed=3, size=(90, 70))
    aug = T.Compose([T.Letterbox(96), T.RandomScale(0.6, 1.6), T.RandomCrop(96, min_area_frac=0.3),
                     T.RandomHorizontalFlip(0.5)])
    outs = []
    for seed in range(12):
        a = aug(s, np.random.default_rng(seed))
        b = aug(s, np.random.default_rng(seed))
        assert np.array_equal(a.image, b.image) and np.array_equal(a.masks, b.masks)
        assert a.hw == (96, 96)
        # every instance still sits on its own code in the image
        a.validate()
        assert np.array_equal(a.boxes, ref_masks_to_boxes(a.masks))
        for m in a.masks:
            vals, counts = np.unique(a.image[m][:, 0], return_counts=True)
            assert vals[counts.argmax()] in {40 * (k + 1) for k in range(len(s))}
        outs.append(a.image)
    assert not all(np.array_equal(outs[0], o) for o in outs[1:])


def test_color_jitter_and_train_pipeline():
    s = SyntheticInstances(2, seed=9, size=(72, 96)).sample(1)
    crowd = np.zeros(len(s), bool)
    crowd[0] = True
    s = InstanceSample(s.image, s.masks, s.class_ids, s.boxes, s.image_id, crowd)
    j = T.ColorJitter(0.4, 0.4, 0.4, 0.1)(s, np.random.default_rng(0))
    assert not np.array_equal(j.image, s.image) and j.masks is s.masks
    out = T.train_transforms(64)(s, np.random.default_rng(1))
    out.validate()
    assert out.hw == (64, 64) and not out.iscrowd.any()
    assert np.array_equal(out.boxes, ref_masks_to_boxes(out.masks))
    ev = T.eval_transforms(64)(s)
    assert ev.iscrowd.sum() == 1 and ev.hw == (64, 64)
    with pytest.raises(ArrayError):
        T.Compose([])(InstanceSample(s.image, s.masks[:, :10], s.class_ids, s.boxes))


@pytest.mark.parametrize("h, w, f", [(64, 64, 4), (37, 53, 4), (9, 10, 2), (5, 5, 1)])
def test_mask_downsample_matches_block_average(h, w, f):
    rng = np.random.default_rng(h * w)
    masks = rng.random((3, h, w)) < 0.5
    oh, ow = -(-h // f), -(-w // f)
    pad = np.zeros((3, oh * f, ow * f), np.float32)
    pad[:, :h, :w] = masks
    ref = np.stack([cv2.resize(p, (ow, oh), interpolation=cv2.INTER_AREA) for p in pad])
    soft = T.mask_downsample(masks, f, soft=True)
    assert soft.shape == (3, oh, ow) and soft.dtype == np.float32
    assert np.allclose(soft, ref, atol=1e-6)
    assert np.array_equal(T.mask_downsample(masks, f), ref >= 0.5 - 1e-6)
    with pytest.raises(ArrayError, match="bool"):
        T.mask_downsample(masks.astype(np.uint8), f)
