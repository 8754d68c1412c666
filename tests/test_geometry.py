"""edgeseg.geometry: sizes, box IoU and the letterbox mapping, against the naive references."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeseg import ops
from edgeseg.errors import ArrayError, DataError
from edgeseg.geometry import LetterboxInfo, box_iou, letterbox_info, parse_size

from reference import ref_iou, ref_letterbox_geometry

SETTINGS = settings(max_examples=40, deadline=None)


def test_parse_size_forms_and_errors():
    assert parse_size(64) == (64, 64) and parse_size(np.int64(7)) == (7, 7)
    assert parse_size((48, 64)) == parse_size([48, 64]) == parse_size("48x64") == parse_size("48,64") == (48, 64)
    assert parse_size("256") == (256, 256) and parse_size("8X9") == (8, 9)
    for bad in ("abc", "720x", "1x2x3", True, (1, 2, 3), None, 2.5j):
        with pytest.raises(ArrayError, match="size must be"):
            parse_size(bad)
    with pytest.raises(ArrayError, match=r"size must be positive, got \(0, 5\)"):
        parse_size((0, 5))
    with pytest.raises(DataError, match=r"image size must be at least 16x16, got \(8, 8\)"):
        parse_size(8, "image size", DataError, minimum=16)
    assert ops.LetterboxInfo is LetterboxInfo and ops.letterbox_info is letterbox_info


boxes = st.lists(st.tuples(*[st.integers(-20, 60)] * 4), min_size=0, max_size=6).map(
    lambda v: np.array([(min(a, c), min(b, d), max(a, c), max(b, d)) for a, b, c, d in v], np.float64).reshape(-1, 4))


@SETTINGS
@given(a=boxes, b=boxes)
def test_box_iou_matches_the_reference(a, b):
    got = box_iou(a, b)
    assert got.shape == (len(a), len(b)) and got.dtype == np.float64
    want = np.array([[ref_iou(x, y) for y in b] for x in a]).reshape(len(a), len(b))
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=0)
    if len(a) == len(b):
        np.testing.assert_allclose(box_iou(a, b, paired=True), np.diag(want).reshape(-1), rtol=1e-12, atol=0)


def test_box_iou_crowd_rule_and_paired_mismatch():
    det = np.array([[0, 0, 10, 10]], np.float32)
    gt = np.array([[0, 0, 10, 5], [0, 0, 40, 40]], np.float32)
    # a crowd ground truth divides by the detection's area: 100 / 100 for the big one
    np.testing.assert_allclose(box_iou(det, gt, crowd=[False, True]), [[0.5, 1.0]])
    with pytest.raises(ArrayError, match="as many boxes"):
        box_iou(det, gt, paired=True)


@SETTINGS
@given(H=st.integers(1, 300), W=st.integers(1, 300), h=st.integers(1, 128), w=st.integers(1, 128))
def test_letterbox_info_and_box_mapping(H, W, h, w):
    info = letterbox_info((H, W), (h, w))
    rh, rw, top, left = ref_letterbox_geometry((H, W), (h, w))
    assert info.resized_hw == (rh, rw) and (info.pad_top, info.pad_left) == (top, left)
    frame = np.array([[0, 0, W, H], [W / 4, H / 3, W / 2, H / 2]], np.float32)
    net = info.to_network(frame)
    np.testing.assert_allclose(net[0], [left, top, left + rw, top + rh], rtol=1e-6, atol=1e-4)
    np.testing.assert_allclose(info.to_frame(net), frame, rtol=1e-5, atol=1e-3)
    outside = np.array([[-50, -50, 2 * w + 50, 2 * h + 50]], np.float32)
    np.testing.assert_array_equal(info.to_frame(outside), [[0, 0, W, H]])
    assert (info.to_frame(outside, clip=False)[0, :2] < 0).all()
