"""The numpy references in foreign_reference.py reproduce what the origin tools output.

The expected outputs were written by the tools themselves (Ultralytics predict with retina masks,
torch upsample + argmax) by tools/make_foreign_fixtures.py; here only numpy, OpenCV and ONNX
Runtime run.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

import foreign_reference as R

ort = pytest.importorskip("onnxruntime")

FIXTURES = Path(__file__).parent / "fixtures" / "foreign"
MANIFEST = json.loads((FIXTURES / "manifest.json").read_text())
FRAMES = [cv2.imread(str(FIXTURES / f)) for f in MANIFEST["frames"]["files"]]


def _by_task(task: str) -> list[str]:
    return sorted(k for k, v in MANIFEST["fixtures"].items() if v["task"] == task)


def _session(name: str):
    return ort.InferenceSession(str(FIXTURES / MANIFEST["fixtures"][name]["file"]), providers=["CPUExecutionProvider"])


def test_manifest_lists_existing_small_files():
    assert MANIFEST["fixtures"], "no fixtures"
    for name, fx in MANIFEST["fixtures"].items():
        path = FIXTURES / fx["file"]
        assert path.stat().st_size < 1_000_000, name
        assert (FIXTURES / fx["expected"]).exists(), name
        sess = _session(name)
        assert [i.name for i in sess.get_inputs()] == [i["name"] for i in fx["inputs"]]
        assert [o.name for o in sess.get_outputs()] == [o["name"] for o in fx["outputs"]]
    assert all(f is not None for f in FRAMES)


@pytest.mark.parametrize("name", _by_task("instance"))
def test_ultralytics_reference_matches_ultralytics(name):
    fx = MANIFEST["fixtures"][name]
    style = "end2end" if fx["convention"] == "ultralytics-end2end" else "v8"
    expected = np.load(FIXTURES / fx["expected"])
    sess = _session(name)
    total = 0
    for i, frame in enumerate(FRAMES):
        det = R.ultralytics_predict(sess, frame, style, nc=len(fx["classes"]))
        want_masks = R.unpack_masks(expected[f"masks_{i}"], expected[f"mask_shape_{i}"])
        n = len(expected[f"scores_{i}"])
        total += n
        assert len(det.scores) == n, f"frame {i}: {len(det.scores)} detections, Ultralytics gave {n}"
        np.testing.assert_array_equal(det.classes, expected[f"classes_{i}"])
        np.testing.assert_allclose(det.scores, expected[f"scores_{i}"], atol=1e-4)
        np.testing.assert_allclose(det.boxes, expected[f"boxes_{i}"], atol=1e-2)
        for got, want in zip(det.masks, want_masks):
            assert R.mask_iou(got, want) >= 0.995
    assert total >= 2, "fixture has too few detections to test anything"


def _stretched_labels(sess, fx, expected, frame, i, input_kw):
    """Frame resized to the model size -> (labels at frame size, the tool's labels)."""
    conv = fx["convention"]
    inp = sess.get_inputs()[0]
    y = sess.run(None, {inp.name: R.semantic_input(frame, tuple(fx["input_size_hw"]), **input_kw)})[0]
    hw = frame.shape[:2]
    if conv == "labels":
        model_labels = y.reshape(y.shape[-2:])
        np.testing.assert_array_equal(model_labels, expected[f"labels_model_{i}"])
        got = R.nearest_labels(model_labels, hw)
    elif conv == "channels-last":
        got = R.semantic_labels(y[0].transpose(2, 0, 1), hw)
    elif conv.startswith("binary"):
        got = R.binary_labels(y[0], hw, probabilities=conv == "binary-probabilities")
    else:
        got = R.semantic_labels(y[0], hw)
    return got, expected[f"labels_{i}"]


def _letterboxed_labels(sess, fx, expected, frame, i, input_kw):
    """Frame letterboxed into the model size -> (labels at frame size, the tool's labels)."""
    conv = fx["convention"]
    inp = sess.get_inputs()[0]
    size = tuple(fx["input_size_hw"])
    x, (top, left, nh, nw) = R.semantic_input_letterbox(frame, size, **input_kw)
    y = sess.run(None, {inp.name: x})[0]
    hw = frame.shape[:2]
    if conv == "labels":
        model_labels = y.reshape(y.shape[-2:])
        np.testing.assert_array_equal(model_labels, expected[f"labels_model_letterbox_{i}"])
        got = R.nearest_labels(model_labels[top:top + nh, left:left + nw], hw)
    else:
        logits = y[0].transpose(2, 0, 1) if conv == "channels-last" else y[0]
        up = R.letterbox_logits_to_frame(logits, (top, left, nh, nw), size, hw)
        if conv.startswith("binary"):
            got = (up[0] > (0.5 if conv == "binary-probabilities" else 0.0)).astype(np.uint8)
        else:
            got = up.argmax(0).astype(np.uint8)
    return got, expected[f"labels_letterbox_{i}"]


@pytest.mark.parametrize("labels_of", [_stretched_labels, _letterboxed_labels], ids=["stretched", "letterboxed"])
@pytest.mark.parametrize("name", _by_task("semantic"))
def test_semantic_reference_matches_torch(name, labels_of):
    fx = MANIFEST["fixtures"][name]
    norm = fx["normalisation"]
    expected = np.load(FIXTURES / fx["expected"])
    sess = _session(name)
    input_kw = dict(mean=norm.get("mean"), std=norm.get("std"), uint8=sess.get_inputs()[0].type == "tensor(uint8)",
                    channels_last=fx["convention"] == "channels-last")
    for i, frame in enumerate(FRAMES):
        got, want = labels_of(sess, fx, expected, frame, i, input_kw)
        assert got.shape == want.shape
        assert (got == want).mean() >= 0.999, f"frame {i}: {(got != want).sum()} pixels differ"


def test_letterbox_geometry_and_padding():
    frame = np.full((300, 200, 3), 7, np.uint8)
    x, lb = R.letterbox(frame, (160, 160))
    assert x.shape == (1, 3, 160, 160) and x.dtype == np.float32
    assert (lb.new_w, lb.new_h, lb.left, lb.top) == (107, 160, 26, 0)
    assert np.allclose(x[0, :, :, :26], 114 / 255) and np.allclose(x[0, :, :, 26 + 107:], 114 / 255)
    assert np.allclose(x[0, :, :, 26:26 + 107], 7 / 255)


def test_nms_is_greedy_and_class_aware():
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [0, 0, 10, 10], [50, 50, 60, 60]], np.float32)
    scores = np.array([0.9, 0.8, 0.7, 0.6], np.float32)
    assert R.nms(boxes, scores, 0.7).tolist() == [0, 3]
    # the same overlap in two classes survives class-aware selection
    out = np.zeros((1, 4 + 2 + 32, 2), np.float32)
    out[0, :4, 0] = out[0, :4, 1] = [5, 5, 10, 10]
    out[0, 4, 0], out[0, 5, 1] = 0.9, 0.8
    b, s, c, _ = R.decode_yolov8(out, nc=2)
    assert c.tolist() == [0, 1] and np.allclose(b[0], [0, 0, 10, 10])


def test_yolov5_reference_agrees_with_v8_when_objectness_is_one():
    rng = np.random.default_rng(0)
    a, nc = 200, 3
    v8 = np.zeros((1, 4 + nc + 32, a), np.float32)
    v8[0, :2] = rng.uniform(0, 160, (2, a))
    v8[0, 2:4] = rng.uniform(5, 60, (2, a))
    v8[0, 4:4 + nc] = rng.uniform(0, 1, (nc, a))
    v8[0, 4 + nc:] = rng.normal(size=(32, a))
    v5 = np.concatenate([v8[0, :4], np.ones((1, a), np.float32), v8[0, 4:]], 0).T[None]
    for got, want in zip(R.decode_yolov5(v5, nc, iou=0.7), R.decode_yolov8(v8, nc)):
        np.testing.assert_array_equal(got, want)
    # objectness multiplies the class score
    v5[0, :, 4] = 0.5
    _, s5, _, _ = R.decode_yolov5(v5, nc, conf=0.0, iou=1.0)
    _, s8, _, _ = R.decode_yolov8(v8, nc, conf=0.0, iou=1.0)
    np.testing.assert_allclose(np.sort(s5), np.sort(s8) * 0.5, rtol=1e-6)


def test_bilinear_reference_matches_opencv():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(3, 13, 17)).astype(np.float32)
    for hw in ((13, 17), (40, 51), (7, 9), (100, 31)):
        ours = R.bilinear_resize_chw(x, hw)
        cv = np.stack([cv2.resize(c, (hw[1], hw[0]), interpolation=cv2.INTER_LINEAR) for c in x])
        np.testing.assert_allclose(ours, cv, atol=1e-4)
