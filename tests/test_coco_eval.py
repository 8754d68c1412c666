"""COCO evaluation through pycocotools: analytically known AP values, crowd handling, errors."""
from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from edgeseg.data import open_instance_dataset
from edgeseg.errors import ArrayError, EdgesegError, InputFileError
from edgeseg.eval.coco import (STAT_NAMES, coco_gt_from_dataset, detections_to_coco,
                                     evaluate_coco)

pytest.importorskip("pycocotools")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:pycocotools.*")

H, W = 64, 80
N_RECALL = 101  # COCOeval interpolates precision at recall 0, 0.01, ..., 1


def _square(x0, y0, side=20, h=H, w=W) -> np.ndarray:
    m = np.zeros((h, w), bool)
    m[y0:y0 + side, x0:x0 + side] = True
    return m


class _Ds:
    """A tiny in-memory instance dataset: one image per entry of ``objects``."""

    classes = ("a", "b")
    cat_ids = (3, 7)  # deliberately not 1..n

    def __init__(self, objects):
        self.objects = objects  # list of [(mask, class_id, iscrowd), ...]

    def __len__(self):
        return len(self.objects)

    def sample(self, i):
        from edgeseg.data.instances import InstanceSample, masks_to_boxes

        objs = self.objects[i]
        masks = np.stack([o[0] for o in objs]) if objs else np.zeros((0, H, W), bool)
        return InstanceSample(np.zeros((H, W, 3), np.uint8), masks,
                              np.array([o[1] for o in objs], np.int64), masks_to_boxes(masks),
                              10 + i, np.array([o[2] for o in objs], bool))


def _det(image_id, mask, cat, score):
    return detections_to_coco(image_id, mask[None], [score], [cat], _Ds.cat_ids)[0]


def test_perfect_predictions_on_synthetic_give_ap_1():
    ds = open_instance_dataset("synthetic:6", "val", size=(96, 128))
    gt = coco_gt_from_dataset(ds)
    assert len(gt["images"]) == 6 and [c["id"] for c in gt["categories"]] == list(ds.cat_ids)
    assert min(a["id"] for a in gt["annotations"]) == 1
    dets = []
    for i in range(len(ds)):
        s = ds.sample(i)
        dets += detections_to_coco(s.image_id, s.masks, np.linspace(1, 0.5, len(s)), s.class_ids,
                                   ds.cat_ids)
    res = evaluate_coco(gt, dets)
    for t in ("segm", "bbox"):
        assert set(res[t]) == set(STAT_NAMES)
        for k in ("AP", "AP50", "AP75", "AR100"):
            assert res[t][k] == pytest.approx(1.0), (t, k)


@pytest.mark.parametrize("shift, ap", [(4, 0.4), (2, 0.7)])
def test_shifted_square_gives_the_known_ap(shift, ap):
    # 20x20 square shifted by `shift` px: IoU = 20 (20 - s) / (400 + 20 s); 4 -> 0.667 matches
    # at IoU 0.50..0.65 (4 of 10 thresholds), 2 -> 0.818 at 0.50..0.80 (7 of 10)
    gt = coco_gt_from_dataset(_Ds([[(_square(10, 10), 0, False)]]))
    res = evaluate_coco(gt, [_det(10, _square(10 + shift, 10), 0, 0.9)])
    for t in ("segm", "bbox"):
        assert res[t]["AP"] == pytest.approx(ap)
        assert res[t]["AP50"] == pytest.approx(1.0)
        assert res[t]["AP75"] == pytest.approx(1.0 if shift == 2 else 0.0)
        assert res[t]["APs"] == pytest.approx(ap)  # area 400 < 32^2: small
        assert res[t]["APm"] == -1 and res[t]["APl"] == -1  # no such objects in the gt


def test_false_positive_between_two_hits():
    # scores: hit 0.9, false positive 0.8, hit 0.7 -> precision 1 up to recall 0.5, then 2/3
    objs = [(_square(2, 2), 0, False), (_square(40, 30), 0, False)]
    gt = coco_gt_from_dataset(_Ds([objs]))
    dets = [_det(10, _square(2, 2), 0, 0.9), _det(10, _square(30, 2, side=8), 0, 0.8),
            _det(10, _square(40, 30), 0, 0.7)]
    expected = (51 * 1.0 + 50 * 2 / 3) / N_RECALL
    res = evaluate_coco(gt, dets)
    assert res["segm"]["AP"] == pytest.approx(expected)
    assert res["bbox"]["AP"] == pytest.approx(expected)
    # a wrong category is a miss for its class and a false positive for the other
    gt2 = coco_gt_from_dataset(_Ds([[(_square(2, 2), 1, False)]]))
    assert evaluate_coco(gt2, [_det(10, _square(2, 2), 0, 0.9)])["segm"]["AP"] == 0.0


def test_crowd_regions_are_ignored():
    crowd = np.zeros((H, W), bool)
    crowd[40:, :] = True
    objs = [(_square(5, 5), 0, False), (crowd, 0, True)]
    gt = coco_gt_from_dataset(_Ds([objs]))
    assert [a["iscrowd"] for a in gt["annotations"]] == [0, 1]
    hit = _det(10, _square(5, 5), 0, 0.5)
    on_crowd = _det(10, _square(30, 42, side=16), 0, 0.9)  # inside the crowd region
    elsewhere = _det(10, _square(50, 2, side=16), 0, 0.9)  # on background
    assert evaluate_coco(gt, [hit, on_crowd])["segm"]["AP"] == pytest.approx(1.0)
    assert evaluate_coco(gt, [hit, on_crowd])["bbox"]["AP"] == pytest.approx(1.0)
    assert evaluate_coco(gt, [hit, elsewhere])["segm"]["AP"] < 0.6
    # the crowd region itself is no object to find: recall is complete with the one hit
    assert evaluate_coco(gt, [hit])["segm"]["AR100"] == pytest.approx(1.0)


def test_empty_detections_and_gt_from_file(tmp_path):
    gt = coco_gt_from_dataset(_Ds([[(_square(1, 1), 0, False)], []]))
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(gt))
    res = evaluate_coco(path, [])
    assert res["segm"]["AP"] == 0.0 and res["bbox"]["AR100"] == 0.0
    assert set(evaluate_coco(str(path), [], iou_types=["bbox"])) == {"bbox"}
    # detections on the empty second image are false positives
    res = evaluate_coco(gt, [_det(10, _square(1, 1), 0, 0.5), _det(11, _square(1, 1), 0, 0.9)])
    assert 0 < res["segm"]["AP"] < 1


def test_uncompressed_and_compressed_rle_detections_agree():
    gt = coco_gt_from_dataset(_Ds([[(_square(10, 10), 0, False)]]))
    d = _det(10, _square(14, 10), 0, 0.9)
    from edgeseg.data.coco_rle import rle_encode

    d2 = dict(d, segmentation=rle_encode(_square(14, 10), compressed=False))
    assert evaluate_coco(gt, [d2]) == evaluate_coco(gt, [d])


def test_quiet_unless_verbose(capsys):
    gt = coco_gt_from_dataset(_Ds([[(_square(1, 1), 0, False)]]))
    evaluate_coco(gt, [_det(10, _square(1, 1), 0, 0.5)])
    assert capsys.readouterr().out == ""
    evaluate_coco(gt, [_det(10, _square(1, 1), 0, 0.5)], verbose=True)
    assert "Average Precision" in capsys.readouterr().out


def test_user_errors_are_clear(tmp_path):
    gt = coco_gt_from_dataset(_Ds([[(_square(1, 1), 0, False)]]))
    good = _det(10, _square(1, 1), 0, 0.5)
    with pytest.raises(EdgesegError, match="cat_ids"):
        evaluate_coco(gt, [dict(good, category_id=1)])
    with pytest.raises(EdgesegError, match="image_id 99"):
        evaluate_coco(gt, [dict(good, image_id=99)])
    with pytest.raises(EdgesegError, match="segmentation"):
        evaluate_coco(gt, [{k: v for k, v in good.items() if k != "segmentation"}])
    with pytest.raises(EdgesegError, match="iou_types"):
        evaluate_coco(gt, [good], iou_types=("keypoints",))
    with pytest.raises(InputFileError):
        evaluate_coco(tmp_path / "missing.json", [])
    with pytest.raises(EdgesegError, match="categories"):
        evaluate_coco({"images": [], "annotations": []}, [])
    with pytest.raises(ArrayError, match="class ids"):
        detections_to_coco(1, _square(1, 1)[None], [0.5], [2], (3, 7))
    with pytest.raises(ArrayError, match="masks"):
        detections_to_coco(1, _square(1, 1)[None].astype(np.uint8), [0.5], [0], (3, 7))


def test_gt_matches_pycocotools_areas_and_boxes():
    from pycocotools import mask as mask_util

    gt = coco_gt_from_dataset(open_instance_dataset("synthetic:3", "val", size=(64, 96)), n=2)
    assert len(gt["images"]) == 2
    for a in gt["annotations"]:
        rle = dict(a["segmentation"], counts=a["segmentation"]["counts"].encode())
        assert mask_util.area(rle) == a["area"]
        assert np.allclose(mask_util.toBbox(rle), a["bbox"])


def test_missing_pycocotools_is_a_clear_error(monkeypatch):
    for name in ("pycocotools", "pycocotools.mask", "pycocotools.coco", "pycocotools.cocoeval"):
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(EdgesegError, match="pip install pycocotools"):
        evaluate_coco({"images": [], "annotations": [], "categories": []}, [])


def test_module_does_not_import_torch():
    import subprocess

    code = ("import sys, edgeseg.eval.coco, edgeseg.data.instance_transforms; "
            "sys.exit('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
