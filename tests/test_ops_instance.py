"""Instance post-processing (edgeseg.ops nms / select_detections / assemble_masks / paste_masks /
overlay_instances, edgeseg.masks.MaskSet) against the numpy references in reference.py."""
from __future__ import annotations


import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgeseg import ops
from edgeseg.errors import ArrayError
from edgeseg.masks import MaskSet

from kernel_modes import in_every_mode, threads
from reference import (detectron2_paste, ref_assemble_masks, ref_nms, ref_overlay_instances, ref_paste_masks,
                       ref_rle, ref_select_detections)

SETTINGS = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
FLOATS = [np.float32, np.float16]
LOGIT_TOL = 1e-4   # assemble: compare where |logit - threshold| > this (float32 vs float64 sums)
PROB_TOL = 1e-5    # paste: compare where |value - threshold| > this


def same_in_all_modes(fn):
    """Run fn under every (threads, simd) mode; all results (MaskSets) must be identical."""
    results = in_every_mode(fn)
    for r in results[1:]:
        np.testing.assert_array_equal(r.regions, results[0].regions)
        np.testing.assert_array_equal(r.offsets, results[0].offsets)
        np.testing.assert_array_equal(r.data, results[0].data)
    return results[0]


def random_boxes(rng, n, H, W, kind="mixed"):
    """xyxy float32 boxes: partly/fully outside the frame, degenerate, on pixel edges/centres."""
    x0 = rng.uniform(-0.4 * W, 1.2 * W, n)
    y0 = rng.uniform(-0.4 * H, 1.2 * H, n)
    bw = rng.uniform(0, 0.8 * W, n) * (rng.random(n) > 0.1)  # ~10 % zero width
    bh = rng.uniform(0, 0.8 * H, n) * (rng.random(n) > 0.1)
    b = np.stack([x0, y0, x0 + bw, y0 + bh], 1)
    if kind == "mixed":
        snap = rng.random(n) < 0.3  # exact pixel edges and centres
        b[snap] = np.round(b[snap] * 2) / 2
        flip = rng.random(n) < 0.05  # inverted
        b[flip] = b[flip][:, [2, 3, 0, 1]]
    return b.astype(np.float32)


# ---- nms ---------------------------------------------------------------------------------------


@SETTINGS
@given(n=st.integers(0, 60), n_cls=st.sampled_from([None, 1, 3]), ties=st.booleans(),
       iou=st.sampled_from([0.0, 0.3, 0.45, 0.5, 0.7, 1.0]),
       score_thr=st.sampled_from([-1.0, 0.0, 0.1, 0.25, 0.5]),
       max_cand=st.sampled_from([0, 1, 5, 1000]), max_det=st.sampled_from([0, 1, 3, 300]),
       agnostic=st.booleans(), dtype=st.sampled_from(FLOATS), transposed=st.booleans(),
       seed=st.integers(0, 2**31))
def test_nms_matches_reference(n, n_cls, ties, iou, score_thr, max_cand, max_det, agnostic,
                               dtype, transposed, seed):
    rng = np.random.default_rng(seed)
    if ties:  # integer grid: identical boxes, exact IoU ties, equal scores
        xy = rng.integers(0, 6, (n, 2))
        boxes = np.concatenate([xy, xy + rng.integers(0, 4, (n, 2))], 1).astype(dtype)
        scores = (rng.integers(0, 4, n) / 4).astype(np.float32)
    else:
        boxes = random_boxes(rng, n, 50, 50).astype(dtype)
        scores = rng.random(n).astype(np.float32)
    if transposed:
        boxes = np.ascontiguousarray(boxes.T).T
    cls = None if n_cls is None else rng.integers(0, n_cls, n)
    got = ops.nms(boxes, scores, cls, iou, score_thr, max_cand, max_det, agnostic)
    want = ref_nms(boxes, scores, cls, iou, score_thr, max_cand, max_det, agnostic)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, want)


def test_nms_hand_example():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 10],
                      [0, 0, 10, 10]], np.float32)
    scores = np.array([0.9, 0.8, 0.7, 0.95, 0.9], np.float32)
    # 3 (0.95) suppresses 0, 4 (IoU 1) and 1 (IoU 0.68); 2 is far away.
    np.testing.assert_array_equal(ops.nms(boxes, scores, iou_threshold=0.5), [3, 2])
    # classes: 0 and 4 are of another class than 3 -> 0 kept (lower index first on the 0.9 tie)
    # and suppresses 4 and 1 (same class 1).
    cls = np.array([1, 1, 0, 0, 1])
    np.testing.assert_array_equal(ops.nms(boxes, scores, cls, 0.5), [3, 0, 2])
    np.testing.assert_array_equal(ops.nms(boxes, scores, cls, 0.5, class_agnostic=True), [3, 2])
    # IoU exactly at the threshold is kept (strict >): IoU(0, 1) = 81 / 119
    np.testing.assert_array_equal(ops.nms(boxes[:2], scores[:2], iou_threshold=81 / 119), [0, 1])
    np.testing.assert_array_equal(ops.nms(boxes[:2], scores[:2], iou_threshold=0.68), [0])
    # score filter is strict and NaN never passes
    s = np.array([0.5, np.nan, 0.25, 0.0, 1.0], np.float32)
    np.testing.assert_array_equal(ops.nms(boxes, s, iou_threshold=1.0, score_threshold=0.25),
                                  [4, 0])
    assert ops.nms(np.zeros((0, 4), np.float32), np.zeros(0, np.float32)).shape == (0,)


@SETTINGS
@given(a=st.integers(0, 300), c=st.sampled_from([1, 2, 7, 80]), dtype=st.sampled_from(FLOATS),
       layout=st.sampled_from(["C", "F", "view"]), nan=st.booleans(),
       score_thr=st.sampled_from([-1.0, 0.0, 0.1, 0.25, 0.6]),
       iou=st.sampled_from([0.3, 0.5, 0.7]),
       max_cand=st.sampled_from([1, 10, 1000]), max_det=st.sampled_from([1, 5, 100]),
       agnostic=st.booleans(), seed=st.integers(0, 2**31))
def test_select_detections_matches_reference(a, c, dtype, layout, nan, score_thr, iou, max_cand,
                                             max_det, agnostic, seed):
    rng = np.random.default_rng(seed)
    boxes = random_boxes(rng, a, 64, 64, kind="plain").astype(dtype)
    scores = (rng.random((a, c)) ** 3).astype(dtype)
    if c > 1:  # exact ties between classes 0 and 1 (the first wins) and across anchors
        tie = rng.random(a) < 0.2
        scores[tie, 0] = scores[tie, 1] = 0.5
    if nan and a:
        scores[rng.random((a, c)) < 0.05] = np.nan
    if layout == "F":
        boxes, scores = np.asfortranarray(boxes), np.asfortranarray(scores)
    elif layout == "view":  # YOLO head output (1, 4 + C, A) read in place
        out = np.ascontiguousarray(np.concatenate([boxes, scores], 1).T)[None]
        boxes, scores = out[0, :4].T, out[0, 4:].T
    got = ops.select_detections(boxes, scores, iou, score_thr, max_cand, max_det, agnostic)
    want = ref_select_detections(boxes, scores, iou, score_thr, max_cand, max_det, agnostic)
    assert [g.dtype for g in got] == [np.int64, np.int32, np.float32]
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


def test_select_detections_yolo_sized_head_and_batch_axis():
    rng = np.random.default_rng(3)
    A, C = 8400, 80
    xy = rng.uniform(0, 600, (A, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(4, 120, (A, 2))], 1).astype(np.float32)
    scores = (rng.random((A, C)) ** 8).astype(np.float32)
    got = ops.select_detections(boxes[None], scores[None])
    want = ref_select_detections(boxes, scores)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)
    assert 0 < len(got[0]) <= 100
    with threads(1):
        again = ops.select_detections(boxes, scores.astype(np.float16))
    want16 = ref_select_detections(boxes, scores.astype(np.float16))
    for g, w in zip(again, want16):
        np.testing.assert_array_equal(g, w)


# ---- assemble_masks ----------------------------------------------------------------------------


def check_assemble(ms, coeffs, protos, boxes, hw, letterbox=None, input_hw=None, threshold=0.5,
                   mode="exact"):
    want, margin = ref_assemble_masks(coeffs, protos, boxes, hw, letterbox, input_hw, threshold,
                                      mode)
    assert isinstance(ms, MaskSet) and len(ms) == len(coeffs) and ms.image_hw == tuple(hw)
    got = ms.to_dense()
    bad = (got != want) & (margin > LOGIT_TOL)
    assert not bad.any(), f"{bad.sum()} of {got.size} pixels disagree"
    # nothing outside the region, and the region is where pixel centres are inside the box
    H, W = hw
    for k, (x0, y0, x1, y1) in enumerate(ms.regions):
        b = boxes[k].astype(np.float64)
        cx, cy = np.arange(W) + 0.5, np.arange(H) + 0.5
        ix = np.flatnonzero((b[0] <= cx) & (cx < b[2]))
        iy = np.flatnonzero((b[1] <= cy) & (cy < b[3]))
        if ix.size and iy.size:
            assert (x0, y0, x1, y1) == (ix[0], iy[0], ix[-1] + 1, iy[-1] + 1)
        else:
            assert (x0, y0, x1, y1) == (0, 0, 0, 0)


@SETTINGS
@given(H=st.integers(1, 40), W=st.integers(1, 40), hp=st.integers(1, 12), wp=st.integers(1, 12),
       m=st.integers(1, 6), k=st.integers(0, 6),
       geometry=st.sampled_from(["none", "lb_square", "lb_wide", "lb_tall", "stretch"]),
       dtype=st.sampled_from(FLOATS), threshold=st.sampled_from([0.0, 0.3, 0.5, 0.9, 1.0]),
       mode=st.sampled_from(["exact", "fast"]), seed=st.integers(0, 2**31))
def test_assemble_masks_matches_reference(H, W, hp, wp, m, k, geometry, dtype, threshold, mode,
                                          seed):
    rng = np.random.default_rng(seed)
    protos = rng.standard_normal((m, hp, wp)).astype(dtype)
    coeffs = rng.standard_normal((k, m)).astype(np.float32)
    boxes = random_boxes(rng, k, H, W)
    info, input_hw = None, None
    if geometry.startswith("lb"):  # padding on either axis
        size = {"lb_square": 32, "lb_wide": (16, 40), "lb_tall": (40, 16)}[geometry]
        info = ops.letterbox_info((H, W), size)
    elif geometry == "stretch":
        input_hw = (int(rng.integers(1, 50)), int(rng.integers(1, 50)))
    ms = ops.assemble_masks(coeffs, protos, boxes, (H, W), letterbox=info, input_hw=input_hw,
                            threshold=threshold, mode=mode)
    check_assemble(ms, coeffs, protos, boxes, (H, W), info, input_hw, threshold, mode)


def test_assemble_masks_1x1_and_identity_geometry():
    # 1x1 prototypes: every pixel sees the same logit.
    protos = np.array([[[2.0]], [[-1.0]]], np.float32)
    coeffs = np.array([[1.0, 1.0], [1.0, 3.0]], np.float32)  # logits 1.0 and -1.0
    boxes = np.array([[0, 0, 5, 3], [1, 1, 2, 2]], np.float32)
    ms = ops.assemble_masks(coeffs, protos, boxes, (3, 5))
    np.testing.assert_array_equal(ms.to_dense()[0], np.ones((3, 5), bool))
    assert ms.areas().tolist() == [15, 0] and ms.regions[1].tolist() == [1, 1, 2, 2]
    # frame == input == prototypes: the mask is the thresholded logit map inside the box.
    rng = np.random.default_rng(0)
    P = rng.standard_normal((3, 9, 11)).astype(np.float32)
    c = rng.standard_normal((1, 3)).astype(np.float32)
    ms = ops.assemble_masks(c, P, np.array([[2, 1, 9.5, 8]], np.float32), (9, 11))
    logit = np.tensordot(c[0].astype(np.float64), P.astype(np.float64), axes=1)
    want = np.zeros((9, 11), bool)
    want[1:8, 2:9] = logit[1:8, 2:9] > 0
    np.testing.assert_array_equal(ms.to_dense()[0], want)


def test_assemble_masks_threads_simd_and_f16_identical():
    rng = np.random.default_rng(1)
    H, W = 181, 317
    info = ops.letterbox_info((H, W), 160)
    protos = rng.standard_normal((8, 40, 40)).astype(np.float32)
    coeffs = rng.standard_normal((12, 8)).astype(np.float32)
    boxes = random_boxes(rng, 12, H, W, kind="plain")
    for mode in ("exact", "fast"):
        ms = same_in_all_modes(lambda: ops.assemble_masks(coeffs, protos, boxes, (H, W), info,
                                                          mode=mode))
        check_assemble(ms, coeffs, protos, boxes, (H, W), info, mode=mode)
    p16 = protos.astype(np.float16)
    ms = ops.assemble_masks(coeffs.astype(np.float16), p16[None], boxes, (H, W), info)
    check_assemble(ms, coeffs.astype(np.float16).astype(np.float32), p16, boxes, (H, W), info)


# ---- paste_masks -------------------------------------------------------------------------------


@SETTINGS
@given(H=st.integers(1, 40), W=st.integers(1, 40), mh=st.integers(1, 9), mw=st.integers(1, 9),
       n=st.integers(0, 6), dtype=st.sampled_from(FLOATS),
       threshold=st.sampled_from([0.0, 0.2, 0.5, 0.8, 1.0]), seed=st.integers(0, 2**31))
def test_paste_masks_matches_reference(H, W, mh, mw, n, dtype, threshold, seed):
    rng = np.random.default_rng(seed)
    masks = rng.random((n, mh, mw)).astype(dtype)
    if n:
        masks[0] = np.round(masks[0])  # hard 0/1 masks hit exact values at the threshold
    boxes = random_boxes(rng, n, H, W)
    ms = ops.paste_masks(masks, boxes, (H, W), threshold)
    want, margin = ref_paste_masks(masks, boxes, (H, W), threshold)
    got = ms.to_dense()
    bad = (got != want) & (margin > PROB_TOL)
    assert not bad.any(), f"{bad.sum()} pixels disagree"
    for i, (x0, y0, x1, y1) in enumerate(ms.regions):  # detectron2's integer-expanded box
        b = boxes[i].astype(np.float64)
        if b[2] > b[0] and b[3] > b[1]:
            ex = (np.clip(np.floor(b[0]) - 1, 0, W), np.clip(np.floor(b[1]) - 1, 0, H),
                  np.clip(np.ceil(b[2]) + 1, 0, W), np.clip(np.ceil(b[3]) + 1, 0, H))
            if ex[2] > ex[0] and ex[3] > ex[1]:
                assert (x0, y0, x1, y1) == ex
                continue
        assert (x0, y0, x1, y1) == (0, 0, 0, 0)


@settings(max_examples=15, deadline=None)
@given(H=st.integers(1, 50), W=st.integers(1, 50), mh=st.integers(1, 14),
       n=st.integers(1, 5), seed=st.integers(0, 2**31))
def test_reference_paste_agrees_with_torch_grid_sample(H, W, mh, n, seed):
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    rng = np.random.default_rng(seed)
    masks = rng.random((n, mh, mh)).astype(np.float32)  # detectron2: square masks
    xy = rng.uniform(-0.3 * W, 1.1 * W, (n, 2))
    wh = rng.uniform(0.3, 0.9 * max(H, W), (n, 2))  # non-degenerate boxes
    boxes = np.concatenate([xy, xy + wh], 1).astype(np.float32)
    vals = detectron2_paste(torch.from_numpy(masks), torch.from_numpy(boxes), (H, W)).numpy()
    want, margin = ref_paste_masks(masks, boxes, (H, W), 0.5)
    ref_vals = np.where(np.isinf(margin), 0.0, 0.5 + np.where(want, 1, -1) * margin)
    np.testing.assert_allclose(vals, ref_vals, atol=1e-5)
    got = ops.paste_masks(masks, boxes, (H, W), 0.5).to_dense()
    sure = np.abs(vals - 0.5) > PROB_TOL
    np.testing.assert_array_equal(got[sure], (vals >= 0.5)[sure])


def test_paste_masks_threads_simd_and_shapes():
    rng = np.random.default_rng(2)
    H, W = 97, 143
    masks = rng.random((20, 28, 28)).astype(np.float32)
    boxes = random_boxes(rng, 20, H, W)
    ms = same_in_all_modes(lambda: ops.paste_masks(masks, boxes, (H, W)))
    want, margin = ref_paste_masks(masks, boxes, (H, W))
    assert not ((ms.to_dense() != want) & (margin > PROB_TOL)).any()
    # (N, 1, M, M) like a Mask R-CNN head, float16, and rectangular masks
    ms16 = ops.paste_masks(masks[:, None].astype(np.float16), boxes, (H, W))
    want16, margin16 = ref_paste_masks(masks.astype(np.float16), boxes, (H, W))
    assert not ((ms16.to_dense() != want16) & (margin16 > PROB_TOL)).any()
    rect = rng.random((3, 5, 9)).astype(np.float32)
    msr = ops.paste_masks(rect, boxes[:3], (H, W), 0.4)
    wr, mr = ref_paste_masks(rect, boxes[:3], (H, W), 0.4)
    assert not ((msr.to_dense() != wr) & (mr > PROB_TOL)).any()


# ---- MaskSet -----------------------------------------------------------------------------------


@SETTINGS
@given(H=st.integers(1, 30), W=st.integers(1, 30), k=st.integers(0, 5),
       density=st.sampled_from([0.0, 0.1, 0.5, 0.9, 1.0]), seed=st.integers(0, 2**31))
def test_maskset_rle_areas_dense_match_pycocotools(H, W, k, density, seed):
    pytest.importorskip("pycocotools")
    rng = np.random.default_rng(seed)
    dense = rng.random((k, H, W)) < density
    if k:  # one blob-like mask so runs are long
        yy, xx = np.mgrid[:H, :W]
        dense[0] = (yy - H / 2) ** 2 + (xx - W / 3) ** 2 < (min(H, W) / 3) ** 2
    ms = MaskSet.from_dense(dense)
    assert len(ms) == k
    np.testing.assert_array_equal(ms.to_dense(), dense)
    np.testing.assert_array_equal(ms.areas(), dense.sum((1, 2)))
    assert ms.to_rle() == [ref_rle(d) for d in dense]
    # a loose region (with zeros around the mask inside it) gives the same RLE
    pad = ops.paste_masks(dense.astype(np.float32), np.tile([[0, 0, W, H]], (k, 1)).astype(
        np.float32), (H, W), 0.5)
    assert pad.to_rle() == [ref_rle(d) for d in pad.to_dense()]


def test_maskset_api():
    rng = np.random.default_rng(5)
    dense = np.zeros((4, 6, 8), bool)
    dense[0, 1:3, 2:5] = True
    dense[2, 5, 7] = True
    dense[3] = rng.random((6, 8)) < 0.5
    ms = MaskSet.from_dense(dense)
    assert len(ms) == 4 and ms.image_hw == (6, 8)
    assert ms.regions.dtype == np.int32 and ms.regions.shape == (4, 4)
    assert ms.regions[0].tolist() == [2, 1, 5, 3] and ms.regions[1].tolist() == [0, 0, 0, 0]
    assert ms.bitmap(0).shape == (2, 3) and ms.bitmap(0).all() and ms.bitmap(1).shape == (0, 0)
    np.testing.assert_array_equal(ms.mask(-1), dense[3])
    np.testing.assert_array_equal(ms.to_dense([2, 0]), dense[[2, 0]])
    np.testing.assert_array_equal(ms.boxes()[0], [2, 1, 5, 3])
    np.testing.assert_array_equal(ms.boxes()[1], [0, 0, 0, 0])
    for idx in ([3, 0], np.array([True, False, True, False]), slice(1, 3), 2, []):
        sel = ms.select(idx)
        want = dense[np.arange(4)[idx] if not isinstance(idx, int) else [idx]]
        np.testing.assert_array_equal(sel.to_dense(), want.reshape(-1, 6, 8))
    with pytest.raises(IndexError):
        ms.bitmap(4)
    with pytest.raises(IndexError):
        ms.select([5])
    with pytest.raises(ValueError):
        ms.regions[0, 0] = 1  # read-only
    e = MaskSet.empty((3, 4))
    assert len(e) == 0 and e.to_dense().shape == (0, 3, 4) and e.to_rle() == []
    assert e.areas().shape == (0,)
    # inconsistent arrays are refused with a clear message
    with pytest.raises(ArrayError, match="offsets do not match"):
        MaskSet(np.zeros(6, np.uint8), [0, 5], [[0, 0, 2, 3]], (4, 4))
    with pytest.raises(ArrayError, match="not inside"):
        MaskSet(np.zeros(6, np.uint8), [0, 6], [[3, 0, 5, 3]], (4, 4))
    with pytest.raises(ArrayError, match="bytes"):
        MaskSet(np.zeros(7, np.uint8), [0, 6], [[0, 0, 2, 3]], (4, 4))
    ok = MaskSet(np.ones(6, bool), [0, 6], [[0, 0, 2, 3]], (4, 4))
    assert ok.areas().tolist() == [6]


# ---- overlay_instances -------------------------------------------------------------------------


@SETTINGS
@given(H=st.integers(1, 30), W=st.integers(1, 30), k=st.integers(0, 5),
       alpha=st.sampled_from([0.0, 0.3, 0.5, 1.0]), outline=st.booleans(),
       inplace=st.booleans(), seed=st.integers(0, 2**31))
def test_overlay_instances_matches_reference(H, W, k, alpha, outline, inplace, seed):
    rng = np.random.default_rng(seed)
    masks = rng.random((k, 7, 7)).astype(np.float32)
    ms = ops.paste_masks(masks, random_boxes(rng, k, H, W), (H, W))
    img = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    colors = rng.integers(0, 256, (k, 3), dtype=np.uint8)
    want = ref_overlay_instances(img, ms.to_dense(), colors, alpha, outline)
    if inplace:
        buf = img.copy()
        got = ops.overlay_instances(buf, ms, colors, alpha, outline, out=buf)
        assert got is buf
    else:
        got = ops.overlay_instances(img, ms, [tuple(int(v) for v in c) for c in colors], alpha,
                                    outline)
    np.testing.assert_array_equal(got, want)


# ---- errors, empty inputs ----------------------------------------------------------------------


def test_empty_inputs():
    z4, z = np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
    assert ops.nms(z4, z).shape == (0,)
    idx, cls, sc = ops.select_detections(z4, np.zeros((0, 80), np.float32))
    assert idx.shape == cls.shape == sc.shape == (0,)
    ms = ops.assemble_masks(np.zeros((0, 32), np.float32), np.zeros((32, 8, 8), np.float32), z4,
                            (10, 12))
    assert len(ms) == 0 and ms.to_dense().shape == (0, 10, 12)
    ms = ops.paste_masks(np.zeros((0, 28, 28), np.float32), z4, (10, 12))
    assert len(ms) == 0 and ms.to_rle() == []
    img = np.full((10, 12, 3), 7, np.uint8)
    np.testing.assert_array_equal(ops.overlay_instances(img, ms, np.zeros((0, 3), np.uint8)), img)


def test_bad_inputs_raise_array_error():
    b = np.zeros((3, 4), np.float32)
    s = np.zeros(3, np.float32)
    with pytest.raises(ArrayError, match=r"boxes must have shape \(N, 4\).*\(3, 5\)"):
        ops.nms(np.zeros((3, 5), np.float32), s)
    with pytest.raises(ArrayError, match="float32 or float16, got float64"):
        ops.nms(b.astype(np.float64), s)
    with pytest.raises(ArrayError, match=r"scores must have shape \(3,\)"):
        ops.nms(b, np.zeros(4, np.float32))
    with pytest.raises(ArrayError, match="class_ids must be integers"):
        ops.nms(b, s, np.zeros(3, np.float32))
    with pytest.raises(ArrayError, match="max_candidates"):
        ops.nms(b, s, max_candidates=-1)
    with pytest.raises(ArrayError, match=r"scores must have shape \(3, C\)"):
        ops.select_detections(b, np.zeros((4, 2), np.float32))
    with pytest.raises(ArrayError, match="negative or unaligned strides"):
        ops.select_detections(b, np.zeros((3, 2), np.float32)[::-1])
    P = np.zeros((4, 8, 8), np.float32)
    with pytest.raises(ArrayError, match=r"protos must have shape \(3, Hp, Wp\)"):
        ops.assemble_masks(np.zeros((3, 3), np.float32), P, b, (10, 10))
    with pytest.raises(ArrayError, match=r"boxes must have shape \(2, 4\)"):
        ops.assemble_masks(np.zeros((2, 4), np.float32), P, b, (10, 10))
    with pytest.raises(ArrayError, match="boxes must be float32.*float64"):
        ops.assemble_masks(np.zeros((3, 4), np.float32), P, b.astype(np.float64), (10, 10))
    with pytest.raises(ArrayError, match="C-contiguous"):
        ops.assemble_masks(np.zeros((3, 4), np.float32), np.zeros((4, 8, 16), np.float32)[..., ::2],
                           b, (10, 10))
    with pytest.raises(ArrayError, match="letterbox.src_hw"):
        ops.assemble_masks(np.zeros((3, 4), np.float32), P, b, (10, 10),
                           letterbox=ops.letterbox_info((20, 10), 32))
    with pytest.raises(ArrayError, match="mode"):
        ops.assemble_masks(np.zeros((3, 4), np.float32), P, b, (10, 10), mode="nearest")
    with pytest.raises(ArrayError, match="threshold"):
        ops.assemble_masks(np.zeros((3, 4), np.float32), P, b, (10, 10), threshold=1.5)
    with pytest.raises(ArrayError, match=r"\(N, 1, Mh, Mw\)"):
        ops.paste_masks(np.zeros((3, 2, 5, 5), np.float32), b, (10, 10))
    with pytest.raises(ArrayError, match=r"boxes must have shape \(2, 4\)"):
        ops.paste_masks(np.zeros((2, 5, 5), np.float32), b, (10, 10))
    with pytest.raises(ArrayError, match="image_hw|size"):
        ops.paste_masks(np.zeros((3, 5, 5), np.float32), b, (0, 10))
    bb = b.copy()
    bb[:, 2:] = 3
    ms = ops.paste_masks(np.ones((3, 5, 5), np.float32), bb, (10, 10))
    img = np.zeros((10, 10, 3), np.uint8)
    with pytest.raises(ArrayError, match=r"colors must have shape \(3, 3\)"):
        ops.overlay_instances(img, ms, np.zeros((2, 3), np.uint8))
    with pytest.raises(ArrayError, match="9x10"):
        ops.overlay_instances(np.zeros((9, 10, 3), np.uint8), ms, np.zeros((3, 3), np.uint8))
    with pytest.raises(ArrayError, match="MaskSet"):
        ops.overlay_instances(img, ms.to_dense(), np.zeros((3, 3), np.uint8))
    with pytest.raises(ArrayError, match="alpha"):
        ops.overlay_instances(img, ms, np.zeros((3, 3), np.uint8), alpha=2)
