"""Property tests of edgeseg.ops (C++ kernels) against the numpy references in reference.py."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgeseg import _C, defaults, ops
from edgeseg.errors import ArrayError

from kernel_modes import in_every_mode, simd, threads
from reference import (ref_argmax, ref_letterbox, ref_letterbox_geometry, ref_overlay,
                       ref_upsample_argmax, ref_upsample_logits)

SETTINGS = settings(max_examples=30, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
FLOATS = [np.float32, np.float16]
MARGIN = 1e-4  # compare upsample_argmax with the float64 reference where top-2 margin > this


def run_all_modes(fn):
    results = in_every_mode(fn)
    for r in results[1:]:
        np.testing.assert_array_equal(r, results[0])
    return results[0]


def rand_logits(rng, shape, dtype, ties: bool):
    if ties:  # few distinct values -> many exact ties
        return rng.integers(0, 3, size=shape).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)


# ---- argmax -----------------------------------------------------------------------------------


@SETTINGS
@given(c=st.sampled_from([1, 2, 3, 19, 21, 255, 256, 300]), h=st.integers(1, 23),
       w=st.integers(1, 41), batch=st.sampled_from([None, 1, 2]),
       dtype=st.sampled_from(FLOATS), ties=st.booleans(), seed=st.integers(0, 2**31))
def test_argmax_matches_numpy(c, h, w, batch, dtype, ties, seed):
    rng = np.random.default_rng(seed)
    shape = (c, h, w) if batch is None else (batch, c, h, w)
    x = rand_logits(rng, shape, dtype, ties)
    got = ops.argmax(x)
    want = ref_argmax(x)
    assert got.dtype == (np.uint8 if c <= 255 else np.int32)
    assert got.shape == want.shape
    np.testing.assert_array_equal(got, want)


def test_argmax_nan_and_inf_like_numpy():
    x = np.zeros((4, 1, 6), np.float32)
    x[1, 0, 0] = np.nan
    x[3, 0, 0] = np.nan
    x[2, 0, 1] = np.inf
    x[0, 0, 2] = np.nan
    x[:, 0, 3] = -np.inf
    x[3, 0, 4] = np.nan
    x[1, 0, 5] = np.inf
    x[2, 0, 5] = np.nan
    for dt in FLOATS:
        xx = x.astype(dt)
        run_all_modes(lambda: np.testing.assert_array_equal(ops.argmax(xx), ref_argmax(xx)))


def test_argmax_threads_and_simd_identical():
    rng = np.random.default_rng(0)
    for dt in FLOATS:
        x = rand_logits(rng, (2, 21, 67, 129), dt, ties=False)
        np.testing.assert_array_equal(run_all_modes(lambda: ops.argmax(x)), ref_argmax(x))
        x = rand_logits(rng, (300, 9, 100), dt, ties=True)
        np.testing.assert_array_equal(run_all_modes(lambda: ops.argmax(x)), ref_argmax(x))


def test_argmax_half_every_pair_order():
    """float16 runs on integer order keys: every half value against a shuffled copy of all of
    them (so ordered pairs across signs, zeros, subnormals, infinities and NaN payloads), in
    both channel orders, matches numpy on every SIMD/thread mode."""
    h = np.arange(0, 1 << 16, dtype=np.uint32).astype(np.uint16).view(np.float16)
    perm = np.random.default_rng(3).permutation(h)
    for x in (np.stack([h, perm]), np.stack([perm, h]), np.stack([h, perm, -h])):
        x = np.ascontiguousarray(x.reshape(x.shape[0], 256, 256))
        run_all_modes(lambda: np.testing.assert_array_equal(ops.argmax(x), ref_argmax(x)))


@pytest.mark.parametrize("c", [65535, 65536, 65537])
def test_argmax_half_channel_count_limits(c):
    """Key path up to 65536 channels (uint16 indices), float path beyond."""
    rng = np.random.default_rng(c)
    for dt in FLOATS:
        x = rng.standard_normal((c, 1, 3)).astype(dt)
        x[c - 1, 0, 1] = 100  # the last channel wins here
        got = run_all_modes(lambda: ops.argmax(x))
        assert got.dtype == np.int32 and got[0, 1] == c - 1
        np.testing.assert_array_equal(got, ref_argmax(x))


# ---- upsample_argmax ----------------------------------------------------------------------------


def assert_agrees(got, logits, out_hw, letterbox=None):
    want, margin = ref_upsample_argmax(logits.astype(np.float64), out_hw, letterbox)
    assert got.shape == want.shape and got.dtype == want.dtype
    sure = margin > MARGIN
    bad = (got != want) & sure
    assert not bad.any(), f"{bad.sum()} of {sure.sum()} clear pixels disagree"


@SETTINGS
@given(c=st.sampled_from([1, 2, 5, 19, 300]), h=st.integers(1, 17), w=st.integers(1, 19),
       oh=st.integers(1, 70), ow=st.integers(1, 70), dtype=st.sampled_from(FLOATS),
       batched=st.booleans(), seed=st.integers(0, 2**31))
def test_upsample_argmax_matches_reference(c, h, w, oh, ow, dtype, batched, seed):
    rng = np.random.default_rng(seed)
    x = rand_logits(rng, (c, h, w), dtype, ties=False)
    got = ops.upsample_argmax(x[None] if batched else x, (oh, ow))
    assert_agrees(got, x, (oh, ow))


def blocky_logits(rng, c, h, w, dtype, block=4):
    """Segmentation-like logits: a label map of blocks (one-hot, scaled) plus noise, so most
    bilinear cells are label-uniform (the fast path) and the rest straddle a boundary."""
    lab = rng.integers(0, c, size=(-(-h // block), -(-w // block)))
    lab = np.kron(lab, np.ones((block, block), np.int64))[:h, :w]
    x = 4.0 * (np.arange(c)[:, None, None] == lab[None]) + rng.standard_normal((c, h, w))
    return x.astype(dtype)


@SETTINGS
@given(c=st.sampled_from([2, 7, 19, 300]), h=st.integers(1, 24), w=st.integers(1, 24),
       oh=st.integers(1, 120), ow=st.integers(1, 120), block=st.integers(1, 8),
       dtype=st.sampled_from(FLOATS), letterboxed=st.booleans(), seed=st.integers(0, 2**31))
def test_upsample_argmax_label_uniform_cells(c, h, w, oh, ow, block, dtype, letterboxed, seed):
    """Blocky logits (mostly label-uniform cells: labels filled without blending) agree with the
    float64 reference, identically across threads and SIMD/scalar."""
    rng = np.random.default_rng(seed)
    x = blocky_logits(rng, c, h, w, dtype, block)
    info = ops.letterbox_info((oh, ow), (h * 4, w * 4)) if letterboxed else None
    got = run_all_modes(lambda: ops.upsample_argmax(x, (oh, ow), letterbox=info))
    assert_agrees(got, x, (oh, ow), info)


def test_upsample_argmax_non_finite_logits_like_the_blend():
    """NaN/inf in a label-uniform region: those cells take the full blend (an infinity times a
    zero weight is NaN, which wins like numpy's argmax), exactly as the float64 reference does.
    The identity size has zero weights everywhere; the largest size prunes boundary channels."""
    rng = np.random.default_rng(7)
    for dt in FLOATS:
        x = blocky_logits(rng, 5, 12, 16, dt, block=6)
        x[2, 3, 4] = -np.inf
        x[4, 8, 9] = np.nan
        x[1, 1, 13] = np.inf
        for size in [(47, 61), (12, 16), (192, 256)]:  # (192, 256): cells of 256 px, pruned
            got = run_all_modes(lambda: ops.upsample_argmax(x, size))
            up = ref_upsample_logits(x.astype(np.float64), size)
            want, margin = ref_upsample_argmax(x.astype(np.float64), size)
            has_nan = np.isnan(up).any(axis=0)
            assert has_nan.any()
            np.testing.assert_array_equal(got[has_nan], want[has_nan])
            sure = ~has_nan & (margin > MARGIN)
            np.testing.assert_array_equal(got[sure], want[sure])


def test_upsample_argmax_exact_ties_first_index():
    x = np.ones((5, 3, 4), np.float32)  # every pixel ties -> class 0
    assert (ops.upsample_argmax(x, (9, 13)) == 0).all()
    x[3] = 2.0
    x[4] = 2.0
    assert (ops.upsample_argmax(x, (9, 13)) == 3).all()


def test_upsample_argmax_identity_size_equals_argmax():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((7, 13, 29)).astype(np.float32)
    np.testing.assert_array_equal(ops.upsample_argmax(x, (13, 29)), ops.argmax(x))


def test_upsample_argmax_threads_and_simd_identical():
    rng = np.random.default_rng(2)
    for dt in FLOATS:
        x = rand_logits(rng, (19, 16, 32), dt, ties=False)
        got = run_all_modes(lambda: ops.upsample_argmax(x, (128, 253)))
        assert_agrees(got, x, (128, 253))
    x = rand_logits(rng, (300, 5, 7), np.float32, ties=False)  # many classes: narrow tiles
    got = run_all_modes(lambda: ops.upsample_argmax(x, (33, 1030)))
    assert got.dtype == np.int32
    assert_agrees(got, x, (33, 1030))


def test_upsample_argmax_matches_torch():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(3)
    for (c, h, w, oh, ow) in [(19, 16, 32, 128, 256), (21, 8, 8, 64, 64), (3, 5, 7, 37, 23),
                              (4, 9, 11, 4, 5)]:
        x = rng.standard_normal((c, h, w)).astype(np.float32)
        up = F.interpolate(torch.from_numpy(x)[None], size=(oh, ow), mode="bilinear",
                           align_corners=False)[0]
        want = up.argmax(0).numpy()
        top2 = up.topk(2, dim=0).values.numpy() if c > 1 else None
        got = ops.upsample_argmax(x, (oh, ow))
        sure = (top2[0] - top2[1]) > MARGIN
        assert ((got == want) | ~sure).all()
        assert sure.mean() > 0.95


@SETTINGS
@given(H=st.integers(1, 60), W=st.integers(1, 60), size=st.sampled_from([8, 16, (16, 24), (24, 8)]),
       stride=st.sampled_from([1, 2, 4, 8]), c=st.sampled_from([2, 7, 19]),
       seed=st.integers(0, 2**31))
def test_upsample_argmax_letterbox_matches_reference(H, W, size, stride, c, seed):
    rng = np.random.default_rng(seed)
    info = ops.letterbox_info((H, W), size)
    h_in, w_in = info.dst_hw
    x = rng.standard_normal((c, max(1, h_in // stride), max(1, w_in // stride))).astype(np.float32)
    got = ops.upsample_argmax(x, letterbox=info)
    assert got.shape == (H, W)
    assert_agrees(got, x, (H, W), info)
    np.testing.assert_array_equal(ops.upsample_argmax(x, (H, W), letterbox=info), got)


def test_upsample_argmax_letterbox_recovers_frame_labels():
    """Logits that are the one-hot of the letterboxed label map give back the frame labels."""
    H, W = 90, 160
    frame_labels = np.zeros((H, W), np.uint8)
    frame_labels[:, 80:] = 1
    frame_labels[30:60, 20:50] = 2
    frame = np.zeros((H, W, 3), np.uint8)
    _, info = ops.letterbox(frame, 64)
    rh, rw = info.resized_hw
    net_labels = np.full((64, 64), 3, np.uint8)  # class 3 = padding
    net_labels[info.pad_top:info.pad_top + rh, info.pad_left:info.pad_left + rw] = cv2.resize(
        frame_labels, (rw, rh), interpolation=cv2.INTER_NEAREST)
    logits = (np.arange(4)[:, None, None] == net_labels[None]).astype(np.float32)
    got = ops.upsample_argmax(logits, letterbox=info)
    assert not (got == 3).any(), "padding leaked into frame labels"
    assert (got == frame_labels).mean() > 0.97


# ---- letterbox ----------------------------------------------------------------------------------


def unnormalise(t, mean=defaults.MEAN_RGB, std=defaults.STD_RGB):
    """(1,3,h,w) normalised RGB -> h x w x 3 BGR float pixels."""
    rgb = t[0].astype(np.float64).transpose(1, 2, 0) * np.asarray(std) + np.asarray(mean)
    return rgb[:, :, ::-1]


@SETTINGS
@given(H=st.integers(1, 90), W=st.integers(1, 90),
       size=st.sampled_from([1, 7, 32, 33, (40, 24), (17, 64)]),
       dtype=st.sampled_from(FLOATS), seed=st.integers(0, 2**31))
def test_letterbox_matches_reference_and_cv2(H, W, size, dtype, seed):
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, size=(H, W, 3), dtype=np.uint8)
    t, info = ops.letterbox(img, size, dtype=dtype)
    h, w = (size, size) if isinstance(size, int) else size
    rh, rw, top, left = ref_letterbox_geometry((H, W), (h, w))
    assert t.shape == (1, 3, h, w) and t.dtype == dtype
    assert info.src_hw == (H, W) and info.dst_hw == (h, w) and info.resized_hw == (rh, rw)
    assert (info.pad_top, info.pad_left) == (top, left)
    assert info.scale == pytest.approx(min(h / H, w / W))
    want = ref_letterbox(img, (h, w), defaults.MEAN_RGB, defaults.STD_RGB, defaults.PAD_VALUE)
    tol = 2e-3 if dtype == np.float16 else 2e-5
    np.testing.assert_allclose(t.astype(np.float64), want, atol=tol, rtol=0)
    # Within 1 uint8 step of OpenCV's INTER_LINEAR resize (fixed point, rounded) + border.
    cv = cv2.copyMakeBorder(cv2.resize(img, (rw, rh), interpolation=cv2.INTER_LINEAR),
                            top, h - rh - top, left, w - rw - left, cv2.BORDER_CONSTANT,
                            value=(defaults.PAD_VALUE,) * 3)
    assert np.abs(unnormalise(t) - cv.reshape(h, w, 3)).max() <= 1.0


def test_letterbox_large_frame_vs_cv2_and_f16():
    rng = np.random.default_rng(4)
    img = cv2.GaussianBlur(rng.integers(0, 256, size=(360, 641, 3), dtype=np.uint8), (5, 5), 2)
    t32 = run_all_modes(lambda: ops.letterbox(img, (256, 320))[0])
    t16 = run_all_modes(lambda: ops.letterbox(img, (256, 320), dtype=np.float16)[0])
    np.testing.assert_array_equal(t16, t32.astype(np.float16))  # same value, RNE to half
    info = ops.letterbox_info(img.shape[:2], (256, 320))
    rh, rw = info.resized_hw
    cv = cv2.resize(img, (rw, rh), interpolation=cv2.INTER_LINEAR)
    region = unnormalise(t32)[info.pad_top:info.pad_top + rh, info.pad_left:info.pad_left + rw]
    assert np.abs(region - cv).max() <= 1.0


def test_half_conversion_edge_cases_all_paths():
    """float16 in (argmax) and out (letterbox): subnormals, overflow to inf, ties-to-even."""
    bits = np.arange(0, 1 << 16, dtype=np.uint32).astype(np.uint16)  # every half value
    h = bits.view(np.float16).reshape(1, 256, 256)
    x = np.concatenate([h, np.zeros_like(h)], 0)  # argmax = 0 iff h > 0 or NaN
    run_all_modes(lambda: np.testing.assert_array_equal(ops.argmax(x), ref_argmax(x)))
    img = np.arange(256 * 3, dtype=np.int64).reshape(16, 16, 3) % 256
    img = img.astype(np.uint8)
    kw = dict(mean=(0.5, 0.0, 0.0), std=(1e6, 3e-3, 1.0))  # subnormal / overflow / normal
    t32 = ops.letterbox(img, (16, 16), **kw)[0]
    t16 = run_all_modes(lambda: ops.letterbox(img, (16, 16), dtype=np.float16, **kw)[0])
    with np.errstate(over="ignore"):
        want = t32.astype(np.float16)
    np.testing.assert_array_equal(t16.view(np.uint16), want.view(np.uint16))
    assert np.isinf(t16[0, 1]).any() and (np.abs(t16[0, 0]) < 6.1e-5).any()


def test_letterbox_padding_mean_std_and_out():
    img = np.full((10, 40, 3), (10, 20, 30), np.uint8)  # BGR
    mean, std = (1.0, 2.0, 3.0), (2.0, 4.0, 5.0)
    out = np.full((1, 3, 20, 20), np.nan, np.float32)
    t, info = ops.letterbox(img, 20, mean=mean, std=std, pad_value=(50, 60, 70), out=out)
    assert t is out
    assert info.resized_hw == (5, 20) and info.pad_top == 7 and info.pad_left == 0
    rgb = np.array([30, 20, 10], np.float64)
    inside = (rgb - mean) / std
    pad = (np.array([50, 60, 70]) - mean) / std
    for c in range(3):
        np.testing.assert_allclose(t[0, c, 7:12], inside[c], rtol=1e-6)
        np.testing.assert_allclose(t[0, c, :7], pad[c], rtol=1e-6)
        np.testing.assert_allclose(t[0, c, 12:], pad[c], rtol=1e-6)


@pytest.mark.parametrize("H,W,size", [(20, 37, (40, 37)), (33, 10, (32, 10)), (7, 9, (7, 9)), (1, 1, 1),
                                     (64, 64, 64), (5, 70, (5, 70))])
def test_letterbox_without_resize_along_an_axis(H, W, size):
    """Frames already at the network width (and height): the row copy / single-row shortcuts give
    the reference values, identically on every SIMD/thread mode, for f32 and f16."""
    rng = np.random.default_rng(H * 100 + W)
    img = rng.integers(0, 256, size=(H, W, 3), dtype=np.uint8)
    h, w = (size, size) if isinstance(size, int) else size
    want = ref_letterbox(img, (h, w), defaults.MEAN_RGB, defaults.STD_RGB, defaults.PAD_VALUE)
    for dt, tol in ((np.float32, 2e-5), (np.float16, 2e-3)):
        got = run_all_modes(lambda: ops.letterbox(img, size, dtype=dt)[0])
        np.testing.assert_allclose(got.astype(np.float64), want, atol=tol, rtol=0)


def test_letterbox_upscale_and_identity():
    rng = np.random.default_rng(5)
    img = rng.integers(0, 256, size=(12, 12, 3), dtype=np.uint8)
    t, info = ops.letterbox(img, 12, mean=(0, 0, 0), std=(1, 1, 1))
    np.testing.assert_array_equal(t[0].transpose(1, 2, 0)[:, :, ::-1], img.astype(np.float32))
    t, info = ops.letterbox(img, (30, 48))
    assert info.resized_hw == (30, 30) and info.pad_left == 9 and info.scale == 2.5


# ---- overlay ------------------------------------------------------------------------------------


@SETTINGS
@given(H=st.integers(1, 12), W=st.integers(1, 600), k=st.integers(1, 300),
       alpha=st.one_of(st.sampled_from([0.0, 0.25, 0.5, 0.7, 1.0, 1 / 65536, 32767 / 65536,
                                        32768 / 65536, 65535 / 65536]),
                       st.floats(0.0, 1.0)),
       ldt=st.sampled_from([np.uint8, np.int32]), seed=st.integers(0, 2**31))
def test_overlay_matches_reference(H, W, k, alpha, ldt, seed):
    """Every SIMD/thread mode equals the exact fixed-point reference; widths span the SIMD
    path's 8-pixel groups and 256-pixel chunks, alphas both halves of its 16-bit arithmetic."""
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, size=(H, W, 3), dtype=np.uint8)
    hi = 256 if ldt == np.uint8 else k + 20
    lab = rng.integers(-5 if ldt == np.int32 else 0, hi, size=(H, W)).astype(ldt)
    pal = rng.integers(0, 256, size=(k, 3), dtype=np.uint8)
    got = run_all_modes(lambda: ops.overlay(img, lab, pal, alpha))
    np.testing.assert_array_equal(got, ref_overlay(img, lab, pal, alpha))
    inplace = img.copy()
    with simd(_C.simd_supported()):
        ops.overlay(inplace, lab, pal, alpha, out=inplace)
    np.testing.assert_array_equal(inplace, got)


def test_overlay_vs_cv2_addweighted_inplace_and_ignore():
    rng = np.random.default_rng(6)
    img = rng.integers(0, 256, size=(37, 61, 3), dtype=np.uint8)
    lab = rng.integers(0, 4, size=(37, 61)).astype(np.uint8)
    lab[0] = 255  # ignore
    pal = rng.integers(0, 256, size=(4, 3), dtype=np.uint8)
    got = run_all_modes(lambda: ops.overlay(img, lab, pal, 0.4))
    colour = pal[np.minimum(lab, 3)]
    cv = cv2.addWeighted(img, 0.6, colour, 0.4, 0.0)
    valid = lab < 4
    assert np.abs(got.astype(int) - cv.astype(int))[valid].max() <= 1
    np.testing.assert_array_equal(got[~valid], img[~valid])
    inplace = img.copy()
    assert ops.overlay(inplace, lab, pal, 0.4, out=inplace) is inplace
    np.testing.assert_array_equal(inplace, got)
    # other integer label dtypes and list palettes are accepted
    np.testing.assert_array_equal(ops.overlay(img, lab.astype(np.int64), pal.tolist(), 0.4), got)


# ---- bad inputs ---------------------------------------------------------------------------------


def expect_array_error(fn, *parts):
    with pytest.raises(ArrayError) as e:
        fn()
    assert isinstance(e.value, ValueError)
    for p in parts:
        assert p in str(e.value), str(e.value)


def test_bad_inputs_raise_array_error():
    x = np.zeros((3, 8, 8), np.float32)
    img = np.zeros((8, 8, 3), np.uint8)
    lab = np.zeros((8, 8), np.uint8)
    pal = np.zeros((3, 3), np.uint8)
    expect_array_error(lambda: ops.argmax(x.astype(np.float64)), "float32 or float16", "float64")
    expect_array_error(lambda: ops.argmax(x[0]), "(C, H, W)", "(8, 8)")
    expect_array_error(lambda: ops.argmax(x[:, :, ::2]), "C-contiguous", "ascontiguousarray")
    expect_array_error(lambda: ops.argmax(x.tolist()), "numpy.ndarray", "list")
    expect_array_error(lambda: ops.upsample_argmax(x.astype(np.int32), (4, 4)), "float32", "int32")
    expect_array_error(lambda: ops.upsample_argmax(x[None].repeat(2, 0), (4, 4)), "(1, C, h, w)")
    expect_array_error(lambda: ops.upsample_argmax(x.transpose(0, 2, 1), (4, 4)), "C-contiguous")
    expect_array_error(lambda: ops.upsample_argmax(x), "out_hw")
    info = ops.letterbox_info((8, 8), 8)
    expect_array_error(lambda: ops.upsample_argmax(x, (5, 5), letterbox=info), "(8, 8)", "(5, 5)")
    expect_array_error(lambda: ops.letterbox(img.astype(np.float32), 8), "uint8", "float32")
    expect_array_error(lambda: ops.letterbox(img[:, :, :2].copy(), 8), "(H, W, 3)", "(8, 8, 2)")
    expect_array_error(lambda: ops.letterbox(img[:, :, 0], 8), "(H, W, 3)", "(8, 8)")
    expect_array_error(lambda: ops.letterbox(img[:, ::2], 8), "C-contiguous")
    expect_array_error(lambda: ops.letterbox(img, 8, dtype=np.float64), "float32 or float16")
    expect_array_error(lambda: ops.letterbox(img, 8, out=np.zeros((1, 3, 8, 9), np.float32)),
                       "(1, 3, 8, 8)", "(1, 3, 8, 9)")
    expect_array_error(lambda: ops.letterbox(img, 8, out=np.zeros((1, 3, 8, 8), np.float16)),
                       "float32", "float16")
    expect_array_error(lambda: ops.letterbox(img, 0), "positive")
    expect_array_error(lambda: ops.letterbox(img, 8, std=(1, 0, 1)), "std")
    expect_array_error(lambda: ops.overlay(img, lab.astype(np.float32), pal), "uint8 or int32",
                       "float32")
    expect_array_error(lambda: ops.overlay(img, lab[:4], pal), "(8, 8)", "(4, 8)")
    expect_array_error(lambda: ops.overlay(img, lab, pal[:, :2].copy()), "(K, 3)", "(3, 2)")
    expect_array_error(lambda: ops.overlay(img, lab, pal, alpha=1.5), "alpha")
    expect_array_error(lambda: ops.overlay(img, lab, pal, out=np.zeros((8, 8, 3), np.float32)),
                       "uint8", "float32")
    expect_array_error(lambda: ops.overlay(img, lab, pal, out=img[::-1]), "overlaps")
    ro = img.copy()
    ro.flags.writeable = False
    expect_array_error(lambda: ops.overlay(img, lab, pal, out=ro), "read-only")


# ---- threads, env, fork -------------------------------------------------------------------------


def test_set_get_num_threads():
    with threads(3):
        assert ops.get_num_threads() == 3
    with pytest.raises(ValueError):
        ops.set_num_threads(0)


def run_py(code: str, **env) -> str:
    e = dict(os.environ, **env)
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=e, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def test_env_threads_and_force_scalar():
    out = run_py("from edgeseg import ops, _C; print(ops.get_num_threads(), _C.get_simd())",
                 EDGESEG_NUM_THREADS="3", EDGESEG_FORCE_SCALAR="1")
    assert out == "3 False"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_pool_survives_fork():
    out = run_py("""
        import multiprocessing as mp, numpy as np
        from edgeseg import ops
        ops.set_num_threads(2)
        x = np.random.default_rng(0).standard_normal((5, 64, 64)).astype(np.float32)
        ops.argmax(x)  # start the parent's workers
        def child(q):
            q.put(bool((ops.argmax(x) == x.argmax(0)).all()))
        ctx = mp.get_context("fork")
        q = ctx.Queue()
        p = ctx.Process(target=child, args=(q,))
        p.start()
        print(q.get(timeout=30))
        p.join(30)
    """)
    assert out == "True"


def test_ops_does_not_import_torch():
    out = run_py("import sys, edgeseg.ops; print('torch' in sys.modules)")
    assert out == "False"
