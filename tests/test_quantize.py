"""ONNX Runtime INT8 (static QDQ) and the accuracy gate: the trained zoo model must stay within
one mIoU point, a badly calibrated one must be rejected; float layers, calibration data, the
instance gate and the CLI."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")

from edgeseg import load  # noqa: E402
from edgeseg.cli import main  # noqa: E402
from edgeseg.data import synthetic  # noqa: E402
from edgeseg.errors import ExportError  # noqa: E402
from edgeseg.export import export_onnx, parity_path, rejected_path  # noqa: E402
from edgeseg.eval.matching import match_detections  # noqa: E402
from edgeseg.export.accuracy import accuracy_gate  # noqa: E402
from edgeseg.export.quantize import (DEFAULT_OP_TYPES, avgpools_to_depthwise, calibration_frames, export_onnx_int8, first_weighted_nodes,  # noqa: E402
                                     head_weighted_nodes, resolve_keep_float, resolve_op_types)

try:  # tests/ may or may not be a package
    from .factories import onnx_export, semantic_checkpoint
except ImportError:
    from factories import onnx_export, semantic_checkpoint

ZOO = Path(__file__).resolve().parent.parent / "tools" / "zoo" / "semantic_default" / "checkpoint"
needs_zoo = pytest.mark.skipif(not (ZOO / "config.json").is_file(), reason="the zoo checkpoint is not in this tree")
FAST = dict(calib_images=12, val_images=16, parity_images=1, verbose=False)


@pytest.fixture(scope="module")
def zoo_onnx(tmp_path_factory) -> Path:
    return export_onnx(ZOO, tmp_path_factory.mktemp("zoo") / "zoo.onnx", parity_images=0, verbose=False).onnx_path


@pytest.fixture(scope="module")
def zoo_int8(tmp_path_factory):
    # at its training size (256); below it (e.g. 192) the model is weaker and INT8 costs ~1.5 points
    return export_onnx_int8(ZOO, tmp_path_factory.mktemp("int8") / "zoo.int8.onnx", **FAST)


def _ops(path: Path) -> Counter:
    return Counter(n.op_type for n in onnx.load(str(path)).graph.node)


@needs_zoo
def test_trained_model_int8_within_one_point(zoo_int8):
    rep = zoo_int8
    acc = rep.gate.accuracy
    assert rep.passed and acc.passed and acc.metric == "mIoU"
    assert acc.reference_score > 0.5  # a real model: the drop is measured on real segmentation
    assert acc.drop <= 0.01 and acc.agreement > 0.97
    assert acc.reference.startswith("torch/") and acc.candidate.startswith("onnxruntime/")
    ops = _ops(rep.path)
    assert ops["QuantizeLinear"] > 10 and ops["DequantizeLinear"] > 10
    q = rep.details["quantization"]
    assert q["op_types"] == list(DEFAULT_OP_TYPES)  # convolutions + fused activations by default
    assert ops["Relu"] <= 1  # folded into the quantised convolutions (the float first conv keeps its own)
    assert q["kept_float"] == ["/encoder/stem/stem.0/stem.0.0/Conv"] and q["calibration_images"] == 12
    # the STDC skip pools and the context pools became INT8 depthwise convolutions
    assert len(q["avgpool_as_depthwise_conv"]) == 5 and ops["AveragePool"] == 0
    assert rep.path.stat().st_size < 0.5 * ZOO.joinpath("model.safetensors").stat().st_size
    report = json.loads(parity_path(rep.path).read_text())
    assert report["passed"] and report["precision"] == "int8" and report["parity_gated"] is False
    assert report["accuracy"]["drop"] == pytest.approx(acc.drop)


@needs_zoo
def test_int8_model_keeps_metadata_and_runs(zoo_int8):
    p = load(zoo_int8.path)
    assert p.backend_name == "onnxruntime" and p.input_size == (256, 256)
    assert p.meta.classes == list(synthetic.CLASSES) and p.meta.extra["export"]["precision"] == "int8"
    assert p.meta.extra["export"]["quantization"]["weights"].startswith("int8 symmetric per-channel")
    frame = synthetic.generate(3, seed=1_000_003, size=(200, 260)).image
    labels = p(frame).labels
    assert labels.shape == (200, 260) and len(np.unique(labels)) > 1
    # the first conv stayed float: its weight is a float initializer, not a DequantizeLinear output
    g = onnx.load(str(zoo_int8.path)).graph
    first = next(n for n in g.node if n.name == "/encoder/stem/stem.0/stem.0.0/Conv")
    inits = {t.name: t for t in g.initializer}
    assert first.input[1] in inits and inits[first.input[1]].data_type == onnx.TensorProto.FLOAT


@needs_zoo
def test_unrepresentative_calibration_is_rejected_then_accepted(zoo_onnx, tmp_path):
    """Calibrating on flat grey frames clips real activations: the gate must catch the drop
    (here against the FP32 ONNX run by ONNX Runtime, the reference of an ONNX source)."""
    import cv2

    grey = tmp_path / "grey"
    grey.mkdir()
    for i in range(3):
        cv2.imwrite(str(grey / f"{i}.png"), np.full((120, 160, 3), 114, np.uint8))
    out = tmp_path / "bad.int8.onnx"
    with pytest.raises(ExportError) as e:
        export_onnx_int8(zoo_onnx, out, calib=grey, **FAST)
    assert "NOT written" in str(e.value) and "--calib" in str(e.value)
    assert not out.exists() and rejected_path(out).is_file()
    report = json.loads(parity_path(out).read_text())
    assert report["passed"] is False and report["accuracy"]["drop"] > 0.01
    assert report["accuracy"]["reference"].startswith("onnxruntime/") and report["source"] == str(zoo_onnx)
    assert report["details"]["quantization"]["calibration_images"] == 3
    # the user may accept the drop explicitly (CLI), and then gets the model
    assert main(["export", str(zoo_onnx), "--format", "onnx", "--int8", "--calib", str(grey),
                 "--val-images", "8", "--accept-drop", "0.9", "--out", str(out)]) == 0
    assert out.is_file() and json.loads(parity_path(out).read_text())["passed"]


@pytest.fixture(scope="module")
def sem_onnx(tmp_path_factory) -> Path:
    """liteseg_t as initialised (not varied), exported."""
    d = tmp_path_factory.mktemp("sem")
    return onnx_export(semantic_checkpoint(d / "liteseg_t", vary=False), d / "liteseg_t.onnx")


@pytest.fixture(scope="module")
def inst(instance_ckpt, instance_onnx) -> tuple[Path, Path]:
    return instance_ckpt, instance_onnx


def test_keep_float_resolution(sem_onnx, inst):
    m = onnx.load(str(sem_onnx))
    assert first_weighted_nodes(m.graph) == ["/encoder/stem/stem.0/stem.0.0/Conv"]
    assert head_weighted_nodes(m.graph) == ["/head/cls/Conv"]
    assert resolve_keep_float(m, "head,first") == ["/head/cls/Conv", "/encoder/stem/stem.0/stem.0.0/Conv"]
    assert resolve_keep_float(m, ["none"]) == [] and resolve_keep_float(m, None) == []
    assert resolve_keep_float(m, "/head/cls/Conv") == ["/head/cls/Conv"]
    with pytest.raises(ExportError, match="neither one of"):
        resolve_keep_float(m, "first,/no/such/Conv")
    with pytest.raises(ExportError, match="cannot be combined"):
        resolve_keep_float(m, "none,head")
    # instance heads: every output (boxes, scores, coeffs, protos) traced back to its convs
    heads = head_weighted_nodes(onnx.load(str(inst[1])).graph)
    kinds = {h.split("/")[2].split(".")[0] if h.startswith("/heads.") else h.split("/")[1] for h in heads}
    assert {"box", "cls", "coef", "proto"} <= kinds, heads


def test_calibration_frames(tmp_path):
    frames = list(calibration_frames("synthetic", 5))
    assert len(frames) == 5 and all(f.dtype == np.uint8 and f.shape[2] == 3 for f in frames)
    assert len({f.shape for f in frames}) > 1  # several frame sizes: letterboxing pads both ways
    assert len(list(calibration_frames("synthetic:3", 50))) == 3
    import cv2

    (tmp_path / "sub").mkdir()
    cv2.imwrite(str(tmp_path / "sub" / "a.png"), np.zeros((10, 12, 3), np.uint8))
    cv2.imwrite(str(tmp_path / "b.jpg"), np.zeros((8, 8, 3), np.uint8))
    (tmp_path / "notes.txt").write_text("not an image")
    assert [f.shape for f in calibration_frames(tmp_path, 10)] == [(8, 8, 3), (10, 12, 3)]
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ExportError, match="no images"):
        list(calibration_frames(empty))
    with pytest.raises(ExportError, match="neither 'synthetic' nor a folder"):
        list(calibration_frames(tmp_path / "missing"))
    with pytest.raises(ExportError, match="synthetic:N"):
        list(calibration_frames("synthetic:many"))


def test_match_detections():
    ref = {"boxes": np.array([[0, 0, 10, 10], [20, 20, 30, 30], [50, 50, 60, 60]], np.float32),
           "scores": np.array([0.9, 0.8, 0.7]), "class_ids": np.array([0, 1, 2])}
    got = {"boxes": np.array([[21, 21, 30, 30], [0, 0, 10, 11], [50, 50, 60, 60]], np.float32),
           "scores": np.array([0.8, 0.9, 0.7]), "class_ids": np.array([1, 0, 1])}  # last: wrong class
    assert len(match_detections(ref, got)) == 2
    assert len(match_detections(ref, {k: v[:0] for k, v in got.items()})) == 0
    far = {**got, "boxes": got["boxes"] + 100}
    assert len(match_detections(ref, far)) == 0


def test_instance_int8_gate_and_data_mismatch(inst, tmp_path):
    ck, inst_onnx = inst
    rep = export_onnx_int8(ck, tmp_path / "inst.int8.onnx", keep_float="head,first", calib_images=4,
                           val_images=4, parity_images=1, verbose=False)
    acc = rep.gate.accuracy
    assert acc.task == "instance" and acc.metric == "mask AP" and acc.passed
    assert acc.details["detections_reference"] > 0 and 0.0 <= acc.agreement <= 1.0
    assert len(rep.details["quantization"]["kept_float"]) >= 5
    assert load(rep.path).meta.task == "instance"
    # a gate on data with other classes cannot score the model: say so
    meta = load(inst_onnx).meta.replace(classes=["a", "b"], palette=[])
    with pytest.raises(ExportError, match="labelled images of the model's 2 classes"):
        accuracy_gate(inst_onnx, inst_onnx, meta, n_images=1)


def test_op_types_resolution():
    assert resolve_op_types(None) is None and resolve_op_types("all") is None
    assert resolve_op_types("Conv, Relu") == ["Conv", "Relu"] and resolve_op_types(("MaxPool",)) == ["MaxPool"]
    for bad in ("", "conv", "Conv;Relu"):
        with pytest.raises(ExportError, match="op"):
            resolve_op_types(bad)


def test_cli_int8_errors(tmp_path):
    assert main(["export", str(tmp_path), "--format", "onnx", "--int8-ops", "Conv"]) == 2  # without --int8
    assert main(["export", str(tmp_path), "--format", "onnx", "--keep-float", "head"]) == 2
    assert main(["export", str(tmp_path), "--format", "onnx", "--int8", "--fp16"]) == 2
    assert main(["export", str(tmp_path / "missing"), "--format", "onnx", "--int8"]) == 2


def test_avgpools_to_depthwise_equal_in_float():
    """Full-window AveragePools (padding counted, or none) become depthwise convolutions with the
    same float outputs; one whose padded windows divide by the valid count is left alone."""
    import onnxruntime as ort
    from onnx import TensorProto, helper

    def pool(name, src, k, s, p, count_pad):
        return helper.make_node("AveragePool", [src], [name], name=name, kernel_shape=[k, k],
                                strides=[s, s], pads=[p] * 4, count_include_pad=count_pad)

    nodes = [pool("a", "x", 3, 2, 1, 1), pool("b", "x", 5, 2, 2, 1), pool("c", "x", 2, 2, 0, 0),
             pool("d", "x", 3, 1, 1, 0),
             helper.make_node("Concat", ["x", "x"], ["x2"], axis=1), pool("e", "x2", 9, 4, 4, 1)]
    outs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in "abcde"]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 6, 17, 23])], outs)
    model = onnx.shape_inference.infer_shapes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
    x = np.random.default_rng(0).standard_normal((1, 6, 17, 23)).astype(np.float32)

    def run(m):
        return ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})

    want = run(model)
    assert avgpools_to_depthwise(model) == ["a", "b", "c", "e"]
    assert [n.op_type for n in model.graph.node].count("AveragePool") == 1  # "d" stays
    conv = next(n for n in model.graph.node if n.name == "e_depthwise")
    assert {a.name: helper.get_attribute_value(a) for a in conv.attribute}["group"] == 12
    for got, ref in zip(run(model), want):
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)
