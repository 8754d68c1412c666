"""Tracking kernels (edgeseg.ops.mask_iou, edgeseg.ops.linear_assignment) against the numpy
references in reference.py."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgeseg import ops
from edgeseg.errors import ArrayError
from edgeseg.masks import MaskSet

try:  # tests/ may or may not be a package
    from .reference import ref_assignment_cost, ref_linear_assignment_cost, ref_mask_iou
except ImportError:
    from reference import ref_assignment_cost, ref_linear_assignment_cost, ref_mask_iou

SETTINGS = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@st.composite
def mask_sets(draw, hw=None):
    H = hw[0] if hw else draw(st.integers(1, 19))
    W = hw[1] if hw else draw(st.integers(1, 37))
    K = draw(st.integers(0, 4))
    seed = draw(st.integers(0, 2 ** 31))
    rng = np.random.default_rng(seed)
    dense = np.zeros((K, H, W), bool)
    for k in range(K):  # random rectangles of random density (some empty)
        x0, x1 = sorted(rng.integers(0, W + 1, 2))
        y0, y1 = sorted(rng.integers(0, H + 1, 2))
        dense[k, y0:y1, x0:x1] = rng.random((y1 - y0, x1 - x0)) < rng.uniform(0.2, 1.0)
    return dense


@SETTINGS
@given(st.data())
def test_mask_iou_matches_reference(data):
    a = data.draw(mask_sets())
    b = data.draw(mask_sets(hw=a.shape[1:]))
    shift = None
    if data.draw(st.booleans()):
        shift = np.asarray(data.draw(st.lists(st.tuples(st.integers(-40, 40), st.integers(-20, 20)),
                                              min_size=len(a), max_size=len(a))), np.int64).reshape(-1, 2)
    got = ops.mask_iou(MaskSet.from_dense(a), MaskSet.from_dense(b), shift)
    assert got.dtype == np.float32 and got.shape == (len(a), len(b))
    np.testing.assert_allclose(got, ref_mask_iou(a, b, shift), atol=1e-6)


def test_mask_iou_is_symmetric_and_one_on_itself():
    rng = np.random.default_rng(0)
    dense = rng.random((5, 31, 45)) < 0.3
    m = MaskSet.from_dense(dense)
    iou = ops.mask_iou(m, m)
    np.testing.assert_allclose(iou, iou.T, atol=1e-7)
    np.testing.assert_allclose(np.diag(iou), 1.0)


def test_mask_iou_rejects_bad_input():
    m = MaskSet.from_dense(np.ones((2, 4, 4), bool))
    with pytest.raises(ArrayError, match="different frames"):
        ops.mask_iou(m, MaskSet.from_dense(np.ones((1, 5, 4), bool)))
    with pytest.raises(ArrayError, match="shift"):
        ops.mask_iou(m, m, np.zeros((3, 2), np.int32))
    with pytest.raises(ArrayError, match="MaskSet"):
        ops.mask_iou(np.ones((2, 4, 4)), m)


@SETTINGS
@given(st.integers(0, 4), st.integers(0, 4), st.integers(0, 2 ** 31), st.sampled_from([0.3, 0.8, 2.0]))
def test_linear_assignment_is_optimal(n, m, seed, limit):
    rng = np.random.default_rng(seed)
    cost = rng.random((n, m)) * 1.5
    if n and m:  # ties and forbidden entries
        cost[rng.random((n, m)) < 0.2] = np.inf
        cost[rng.random((n, m)) < 0.2] = 0.5
    rows, cols = ops.linear_assignment(cost, limit)
    assert len(set(rows.tolist())) == len(rows) and len(set(cols.tolist())) == len(cols)
    assert np.all(cost[rows, cols] <= limit)
    assert ref_assignment_cost(cost, limit, rows, cols) == pytest.approx(
        ref_linear_assignment_cost(cost, limit), abs=1e-9)


def test_linear_assignment_larger_matches_scipy_when_all_pairs_allowed():
    scipy_opt = pytest.importorskip("scipy.optimize")
    rng = np.random.default_rng(1)
    for n, m in [(30, 30), (17, 40), (40, 9)]:
        cost = rng.random((n, m))
        rows, cols = ops.linear_assignment(cost, limit=10.0)  # every pair is worth matching
        r, c = scipy_opt.linear_sum_assignment(cost)
        assert len(rows) == min(n, m)
        assert cost[rows, cols].sum() == pytest.approx(cost[r, c].sum(), abs=1e-9)


def test_linear_assignment_rejects_bad_input():
    with pytest.raises(ArrayError, match="finite"):
        ops.linear_assignment(np.zeros((2, 2)), np.inf)
    with pytest.raises(ArrayError, match="shape"):
        ops.linear_assignment(np.zeros(3), 1.0)
    with pytest.raises(ArrayError, match="-inf"):
        ops.linear_assignment(np.full((1, 1), -np.inf), 1.0)
    assert ops.linear_assignment(np.zeros((0, 3)), 1.0)[0].size == 0


@SETTINGS
@given(st.integers(1, 9), st.integers(1, 37), st.integers(1, 6), st.integers(0, 2 ** 31),
       st.floats(0.0, 1.0), st.sampled_from([np.uint8, np.int32]))
def test_overlay_skip_leaves_those_labels_untinted(h, w, k, seed, alpha, dtype):
    try:
        from .reference import ref_overlay
    except ImportError:
        from reference import ref_overlay
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    labels = rng.integers(0, k + 2, (h, w)).astype(dtype)  # some labels >= K (ignore)
    palette = rng.integers(0, 256, (k, 3), dtype=np.uint8)
    skip = sorted(set(rng.integers(0, k, rng.integers(0, k + 1)).tolist()))
    got = ops.overlay(image, labels, palette, alpha=alpha, skip=skip)
    # reference: a skipped label behaves like a label outside the palette
    moved = np.where(np.isin(labels, skip), k + 5, labels.astype(np.int64))
    assert np.array_equal(got, ref_overlay(image, moved, palette, alpha))


def test_overlay_skip_rejects_bad_labels():
    img = np.zeros((2, 2, 3), np.uint8)
    with pytest.raises(ArrayError, match="skip"):
        ops.overlay(img, np.zeros((2, 2), np.uint8), np.zeros((3, 3), np.uint8), skip=[3])
