"""Models made by other tools (tests/fixtures/foreign, exported by Ultralytics, smp and torch's own
code: see tools/make_foreign_fixtures.py) load with edgeseg.load(path) and the facts the file
cannot hold, and decode to what their tools give: compared with the numpy references of
foreign_reference.py (themselves checked against the tools' stored outputs in
test_foreign_reference.py) and, for Ultralytics, with the stored output of its own predict."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

import edgeseg
import foreign_reference as R
from edgeseg.cli import main

ort = pytest.importorskip("onnxruntime")

FIXTURES = Path(__file__).parent / "fixtures" / "foreign"
MANIFEST = json.loads((FIXTURES / "manifest.json").read_text())
FRAMES = [cv2.imread(str(FIXTURES / f)) for f in MANIFEST["frames"]["files"]]
#: The manifest's convention -> (edgeseg convention, extra meta that must be recognised).
RECOGNISED = {
    "ultralytics-yolo-seg": ("ultralytics", {"variant": "v8"}),
    "ultralytics-end2end": ("ultralytics", {"variant": "end2end"}),
    "semantic-logits": ("semantic-logits", {}),
    "channels-last": ("semantic-logits", {"output_layout": "NHWC"}),
    "binary-logits": ("binary", {"binary_output": "logits"}),
    "binary-probabilities": ("binary", {"binary_output": "probabilities"}),
    "labels": ("labels", {}),
}


def _names(task: str) -> list[str]:
    return sorted(k for k, v in MANIFEST["fixtures"].items() if v["task"] == task)


def _facts(fx: dict) -> dict:
    """The facts a user gives for this file: what the manifest says the file cannot hold."""
    norm, facts = fx.get("normalisation", {}), {}
    if fx["task"] == "semantic" and norm.get("scale") == "0..1":
        mean, std = np.asarray(norm.get("mean", (0, 0, 0))), np.asarray(norm.get("std", (1, 1, 1)))
        facts.update(mean=tuple(mean * 255), std=tuple(std * 255))  # edgeseg's are on the 0..255 scale
    if fx["convention"] == "labels":
        facts["classes"] = fx["classes"]
    return facts


@pytest.mark.parametrize("name", sorted(MANIFEST["fixtures"]))
def test_every_fixture_is_recognised_from_the_file(name):
    fx = MANIFEST["fixtures"][name]
    p = edgeseg.load(FIXTURES / fx["file"], **_facts(fx))
    conv, extra = RECOGNISED[fx["convention"]]
    assert p.convention.name == conv
    assert {k: p.meta.extra.get(k) for k in extra} == extra
    assert p.meta.input_size == tuple(fx["input_size_hw"])
    if fx["task"] == "instance" or fx["convention"] not in ("labels", "binary-logits", "binary-probabilities"):
        assert len(p.meta.classes) == len(fx["classes"])
    if fx["task"] == "instance":  # Ultralytics: everything from its metadata, nothing given
        assert p.meta.classes == fx["classes"] and p.meta.mean == (0, 0, 0) and p.meta.std == (255,) * 3
        assert (p.thresholds.score, p.thresholds.iou, p.thresholds.max_detections) == (0.25, 0.7, 300)


def _match(got, want_boxes, want_classes):
    """Greedy one-to-one matching by class and box IoU >= 0.9 (reference order)."""
    pairs, used = [], set()
    for j in range(len(want_classes)):
        best, bi = 0.9, -1
        for i in range(len(got.scores)):
            if i in used or got.class_ids[i] != want_classes[j]:
                continue
            iou = R.iou_matrix(got.boxes[i:i + 1].astype(np.float64), want_boxes[j:j + 1].astype(np.float64))[0, 0]
            if iou >= best:
                best, bi = iou, i
        if bi >= 0:
            used.add(bi)
            pairs.append((bi, j))
    return pairs


@pytest.mark.parametrize("name", _names("instance"))
@pytest.mark.parametrize("conf", [0.25, 0.05])
def test_ultralytics_masks_match_ultralytics(name, conf):
    """Same detections as Ultralytics' predict (retina masks), masks IoU >= 0.99 on average."""
    fx = MANIFEST["fixtures"][name]
    p = edgeseg.load(FIXTURES / fx["file"])
    p.thresholds.score = conf
    style = p.meta.extra["variant"]
    sess = ort.InferenceSession(str(FIXTURES / fx["file"]), providers=["CPUExecutionProvider"])
    ious, n_ref, n_matched = [], 0, 0
    for frame in FRAMES + [cv2.resize(FRAMES[0], (1280, 720))]:
        ref = R.ultralytics_predict(sess, frame, style, nc=len(fx["classes"]), conf=conf)
        got = p(frame)
        pairs = _match(got, ref.boxes, ref.classes)
        n_ref += len(ref.scores)
        n_matched += len(pairs)
        assert len(got) <= len(ref.scores) + max(1, len(ref.scores) // 20)
        dense = got.masks.to_dense()
        for i, j in pairs:
            ious.append(R.mask_iou(dense[i], ref.masks[j]))
            assert abs(float(got.scores[i]) - float(ref.scores[j])) < 1e-3
    if n_ref == 0:
        pytest.skip(f"{name} gives no detections at conf {conf} on the fixture frames")
    assert n_matched >= 0.95 * n_ref, f"{n_matched} of {n_ref} Ultralytics detections matched"
    assert np.mean(ious) >= 0.99, f"mean mask IoU {np.mean(ious):.4f}"


@pytest.mark.parametrize("name", _names("instance"))
def test_ultralytics_stored_predictions(name):
    """At Ultralytics' defaults, against what Ultralytics itself returned (stored by the fixture tool)."""
    fx = MANIFEST["fixtures"][name]
    expected = np.load(FIXTURES / fx["expected"])
    p = edgeseg.load(FIXTURES / fx["file"])
    for i, frame in enumerate(FRAMES):
        got = p(frame)
        want_boxes, want_classes = expected[f"boxes_{i}"], expected[f"classes_{i}"]
        want = R.unpack_masks(expected[f"masks_{i}"], expected[f"mask_shape_{i}"])
        assert abs(len(got) - len(want_classes)) <= max(1, len(want_classes) // 20)
        pairs = _match(got, want_boxes, want_classes)
        assert len(pairs) >= 0.95 * len(want_classes)
        dense = got.masks.to_dense()
        if pairs:
            assert np.mean([R.mask_iou(dense[a], want[b]) for a, b in pairs]) >= 0.99


@pytest.mark.parametrize("name", _names("semantic"))
def test_semantic_decoding_matches_the_origin_tool(name):
    """A frame at the model's input size (letterbox and the tools' resize are then both the
    identity): edgeseg's labels equal the reference decode of the raw output (torch bilinear
    upsample + argmax, probability > 0.5, nearest for argmax graphs)."""
    fx = MANIFEST["fixtures"][name]
    conv, norm = fx["convention"], fx.get("normalisation", {})
    p = edgeseg.load(FIXTURES / fx["file"], **_facts(fx))
    sess = ort.InferenceSession(str(FIXTURES / fx["file"]), providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    size = tuple(fx["input_size_hw"])
    for frame in FRAMES:
        f = cv2.resize(frame, (size[1], size[0]), interpolation=cv2.INTER_AREA)
        x = R.semantic_input(f, size, norm.get("mean"), norm.get("std"), uint8=inp.type == "tensor(uint8)",
                             channels_last=conv == "channels-last")
        y = sess.run(None, {inp.name: x})[0]
        if conv == "channels-last":
            y = y.transpose(0, 3, 1, 2)
        if conv == "labels":
            want = R.nearest_labels(np.squeeze(y).astype(np.uint8), size)
        elif conv.startswith("binary"):
            want = R.binary_labels(y[0], size, conv == "binary-probabilities")
        else:
            want = R.semantic_labels(y[0], size)
        got = p(f).labels
        assert got.shape == want.shape
        agree = float(np.mean(got == want))
        assert agree >= 0.999, f"{name}: {agree:.4%} of pixels agree"


def test_info_and_export_of_an_ultralytics_file(tmp_path, capsys):
    path = FIXTURES / MANIFEST["fixtures"]["yolo11t-seg"]["file"]
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "recognised  ultralytics" in out and "variant v8" in out and "circle, square, triangle" in out
    assert "score 0.25, IoU 0.7" in out
    stored = tmp_path / "yolo.onnx"
    assert main(["export", str(path), "--out", str(stored)]) == 0
    a, b = edgeseg.load(path), edgeseg.load(stored)
    assert b.backend.meta is not None and b.meta.extra["convention"] == "ultralytics"
    for frame in FRAMES:
        ra, rb = a(frame), b(frame)
        assert np.array_equal(ra.boxes, rb.boxes) and np.array_equal(ra.masks.to_dense(), rb.masks.to_dense())


def test_commands_take_foreign_models(tmp_path):
    path = FIXTURES / MANIFEST["fixtures"]["yolov8t-seg"]["file"]
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    for i, f in enumerate(FRAMES):
        cv2.imwrite(str(imgs / f"f{i}.png"), f)
    assert main(["predict", str(path), str(imgs), "--out", str(tmp_path / "p"), "--quiet", "--conf", "0.05"]) == 0
    assert (tmp_path / "p" / "detections.json").exists() and (tmp_path / "p" / "f0_overlay.jpg").exists()
    assert main(["run", "--model", str(path), "--source", str(imgs), "--json", str(tmp_path / "r.jsonl"),
                 "--quiet"]) == 0
    assert len((tmp_path / "r.jsonl").read_text().splitlines()) == 2
    unet = FIXTURES / MANIFEST["fixtures"]["smp-unet-binary-sigmoid"]["file"]
    assert main(["predict", str(unet), str(imgs), "--out", str(tmp_path / "u"), "--quiet",
                 "--mean", "123.675,116.28,103.53", "--std", "58.395,57.12,57.375"]) == 0
    labels = cv2.imread(str(tmp_path / "u" / "f0_labels.png"), cv2.IMREAD_UNCHANGED)
    assert labels.shape == FRAMES[0].shape[:2] and set(np.unique(labels)) <= {0, 1}


def test_yolov5_objectness_layout_matches_the_reference(tmp_path):
    """YOLOv5-seg (ultralytics/yolov5's own export, which today's Ultralytics package cannot build):
    output0 (1, A, 5 + nc + 32) with objectness, A = 3 anchors per cell. A graph returning such
    outputs (made with onnx.helper) decodes like the reference: objectness x class score."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    nc, m, size = 3, 32, 64
    a = 3 * sum((size // s) ** 2 for s in (8, 16, 32))
    rng = np.random.default_rng(5)
    out0 = np.zeros((1, a, 5 + nc + m), np.float32)
    out0[0, :, :2] = rng.uniform(8, 56, (a, 2))
    out0[0, :, 2:4] = rng.uniform(6, 30, (a, 2))
    out0[0, :, 4] = rng.uniform(0, 1, a) ** 4  # a few confident rows
    out0[0, :, 5:5 + nc] = rng.uniform(0, 1, (a, nc))
    out0[0, :, 5 + nc:] = rng.normal(0, 1, (a, m))
    coarse = rng.normal(0, 1, (m, 4, 4)).astype(np.float32)  # smooth prototypes, as trained models have
    protos = np.stack([cv2.resize(c, (size // 4, size // 4), interpolation=cv2.INTER_CUBIC) for c in coarse])[None]
    nodes = [helper.make_node("Constant", [], ["output0"], value=numpy_helper.from_array(out0, "c0")),
             helper.make_node("Constant", [], ["p"], value=numpy_helper.from_array(protos, "c1")),
             helper.make_node("ReduceMean", ["images"], ["r"], keepdims=1),  # uses the input
             helper.make_node("Mul", ["p", "r"], ["q"]),
             helper.make_node("Sub", ["p", "q"], ["t"]),
             helper.make_node("Add", ["t", "q"], ["output1"])]
    g = helper.make_graph(nodes, "v5", [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, size, size])],
                          [helper.make_tensor_value_info("output0", TensorProto.FLOAT, list(out0.shape)),
                           helper.make_tensor_value_info("output1", TensorProto.FLOAT, list(protos.shape))])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    for k, v in {"stride": "32", "names": "{0: 'a', 1: 'b', 2: 'c'}"}.items():  # what yolov5's export stores
        model.metadata_props.add(key=k, value=v)
    path = tmp_path / "yolov5s-seg.onnx"
    onnx.save(model, str(path))
    p = edgeseg.load(path, input_size=size)
    assert p.meta.extra["variant"] == "v5" and p.meta.classes == ["a", "b", "c"]
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    frame = FRAMES[0]
    ref = R.ultralytics_predict(sess, frame, "v5", nc=nc, conf=0.25, iou=0.7)
    got = p(frame)
    assert len(ref.scores) >= 3
    pairs = _match(got, ref.boxes, ref.classes)
    assert len(pairs) == len(ref.scores) == len(got)
    for i, j in pairs:
        assert abs(float(got.scores[i]) - float(ref.scores[j])) < 1e-4  # objectness x class score
    dense = got.masks.to_dense()
    # random coefficients over random prototypes draw ragged masks, where the one-step sampling
    # and Ultralytics' two-step resize differ most; trained models' masks are smooth (>= 0.99 above)
    assert np.mean([R.mask_iou(dense[i], ref.masks[j]) for i, j in pairs]) >= 0.98


def test_demo_and_bench_take_facts_for_foreign_models(tmp_path):
    unet = str(FIXTURES / MANIFEST["fixtures"]["smp-unet-multiclass"]["file"])
    facts = ["--mean", "123.675,116.28,103.53", "--std", "58.395,57.12,57.375"]
    assert main(["demo", "--model", unet, *facts, "--frames", "4", "--size", "96x128", "--quiet",
                 "--out", str(tmp_path / "d")]) == 0
    assert (tmp_path / "d" / "overlay.mp4").exists()
    assert main(["bench", unet, *facts, "--runs", "3", "--warmup", "1", "--pipeline-frames", "0",
                 "--imgsz", "96x128", "--quiet", "--out", str(tmp_path / "b")]) == 0
    assert (tmp_path / "b" / "bench.json").exists()
    assert main(["bench", unet, "--runs", "3", "--quiet", "--out", str(tmp_path / "c")]) == 2  # facts missing
