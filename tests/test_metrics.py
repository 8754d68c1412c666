"""ConfusionMatrix against hand-computed numbers (numpy only; no torch needed)."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from edgeseg.errors import ArrayError
from edgeseg.eval.confusion import ConfusionMatrix

# 3 classes, one ignored pixel (255).
TARGET = np.array([[0, 0, 1, 1],
                   [0, 2, 1, 255]], dtype=np.uint8)
PRED = np.array([[0, 1, 1, 1],
                 [0, 2, 2, 0]], dtype=np.uint8)


def test_hand_computed_example():
    cm = ConfusionMatrix(3).update(PRED, TARGET)
    # rows = target, cols = pred; the ignored pixel is not counted
    np.testing.assert_array_equal(cm.matrix, [[2, 1, 0],
                                              [0, 2, 1],
                                              [0, 0, 1]])
    assert cm.total == 7
    # IoU: c0 = 2/(2+0+1) ; c1 = 2/(2+1+1) ; c2 = 1/(1+1+0)
    np.testing.assert_allclose(cm.iou(), [2 / 3, 2 / 4, 1 / 2])
    assert cm.miou() == pytest.approx((2 / 3 + 1 / 2 + 1 / 2) / 3)
    assert cm.pixel_accuracy() == pytest.approx(5 / 7)
    np.testing.assert_allclose(cm.class_accuracy(), [2 / 3, 2 / 3, 1.0])


def test_absent_class_is_nan_and_excluded_from_mean():
    cm = ConfusionMatrix(4).update(PRED, TARGET)
    iou = cm.iou()
    assert np.isnan(iou[3])
    assert cm.miou() == pytest.approx((2 / 3 + 1 / 2 + 1 / 2) / 3)
    assert cm.summary(["a", "b", "c", "d"])["per_class_iou"]["d"] is None


def test_predicted_but_absent_class_scores_zero():
    cm = ConfusionMatrix(2).update(np.array([1, 1]), np.array([0, 0]))
    np.testing.assert_allclose(cm.iou(), [0.0, 0.0])
    assert cm.miou() == 0.0


def test_accumulates_and_matches_reference_on_random_data():
    rng = np.random.default_rng(0)
    cm = ConfusionMatrix(6)
    ref = np.zeros((6, 6), np.int64)
    for _ in range(3):
        t = rng.integers(0, 6, (2, 17, 23)).astype(np.uint8)
        t[rng.random(t.shape) < 0.1] = 255
        p = rng.integers(0, 6, t.shape)
        cm.update(p, t)
        for a, b in zip(t.ravel(), p.ravel()):
            if a != 255:
                ref[a, b] += 1
    np.testing.assert_array_equal(cm.matrix, ref)
    other = ConfusionMatrix(6).merge(cm)
    np.testing.assert_array_equal(other.matrix, ref)
    cm.reset()
    assert cm.total == 0 and np.isnan(cm.miou()) and np.isnan(cm.pixel_accuracy())


def test_perfect_prediction():
    cm = ConfusionMatrix(3).update(TARGET.copy(), TARGET)
    assert cm.miou() == 1.0 and cm.pixel_accuracy() == 1.0


@pytest.mark.parametrize("pred,target,msg", [
    (np.zeros((2, 3), np.uint8), np.zeros((3, 2), np.uint8), "same shape"),
    (np.zeros(4, np.float32), np.zeros(4, np.uint8), "integer"),
    (np.array([0, 1]), np.array([0, 7]), "target labels"),
    (np.array([0, 9]), np.array([0, 1]), "predicted labels"),
])
def test_bad_input_raises_array_error(pred, target, msg):
    with pytest.raises(ArrayError, match=msg):
        ConfusionMatrix(3).update(pred, target)


def test_metrics_module_does_not_import_torch():
    code = ("import sys, edgeseg.train, edgeseg.eval, edgeseg.eval.confusion; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
