"""Output conventions: models from other tools recognised from the file and decoded as their own
tools decode them. Small graphs built with onnx.helper run in real ONNX Runtime sessions; every
decoding is compared with a plain numpy reference of the origin tool's documented behaviour."""
from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

import edgeseg  # noqa: E402
from edgeseg import ModelError, ops  # noqa: E402
from edgeseg.cli import main  # noqa: E402
from reference import ref_upsample_logits  # noqa: E402

RNG = np.random.default_rng(0)


def _save(path, nodes, inputs, outputs, inits=(), props=None):
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(inits))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    for k, v in (props or {}).items():
        model.metadata_props.add(key=k, value=v)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def _conv_net(path, out_ch, *, size=(64, 96), stride=4, final=None, nhwc=False, uint8=False, labels=None):
    """image -> Conv(k=stride, s=stride) -> [final op] ; optional NHWC / uint8 input."""
    h, w = size
    shape_in = [1, h, w, 3] if nhwc else [1, 3, h, w]
    dt_in = TensorProto.UINT8 if uint8 else TensorProto.FLOAT
    wgt = numpy_helper.from_array(RNG.normal(0, 0.3 / stride, (out_ch, 3, stride, stride)).astype(np.float32), "W")
    bias = numpy_helper.from_array(np.zeros(out_ch, np.float32), "B")
    nodes, cur = [], "images"
    if uint8:
        nodes.append(helper.make_node("Cast", [cur], ["f"], to=TensorProto.FLOAT))
        cur = "f"
    if nhwc:
        nodes.append(helper.make_node("Transpose", [cur], ["t"], perm=[0, 3, 1, 2]))
        cur = "t"
    nodes.append(helper.make_node("Conv", [cur, "W", "B"], ["c"], kernel_shape=[stride, stride],
                                  strides=[stride, stride]))
    cur, oh, ow = "c", h // stride, w // stride
    out_shape, dt_out = [1, out_ch, oh, ow], TensorProto.FLOAT
    if final == "sigmoid":
        nodes.append(helper.make_node("Sigmoid", [cur], ["s"]))
        cur = "s"
    if nhwc:
        nodes.append(helper.make_node("Transpose", [cur], ["o"], perm=[0, 2, 3, 1]))
        cur, out_shape = "o", [1, oh, ow, out_ch]
    if labels == "int64":  # mmdeploy: (N, 1, H, W) int64
        nodes.append(helper.make_node("ArgMax", [cur], ["o"], axis=1, keepdims=1))
        cur, out_shape, dt_out = "o", [1, 1, oh, ow], TensorProto.INT64
    elif labels == "int32":  # PaddleSeg: (N, H, W) int32
        nodes += [helper.make_node("ArgMax", [cur], ["a"], axis=1, keepdims=0),
                  helper.make_node("Cast", ["a"], ["o"], to=TensorProto.INT32)]
        cur, out_shape, dt_out = "o", [1, oh, ow], TensorProto.INT32
    nodes.append(helper.make_node("Identity", [cur], ["output"]))
    return _save(path, nodes, [helper.make_tensor_value_info("images", dt_in, shape_in)],
                 [helper.make_tensor_value_info("output", dt_out, out_shape)], [wgt, bias])


def _frame(h=120, w=160):
    return RNG.integers(0, 256, (h, w, 3), np.uint8)


def _ref_input(frame, size, mean, std):
    x, info = ops.letterbox(frame, size, mean=mean, std=std)
    return x, info


IMAGENET = dict(mean=(123.675, 116.28, 103.53), std=(58.395, 57.12, 57.375))


# ------------------------------------------------------------------------------------ binary


@pytest.mark.parametrize("final", [None, "sigmoid"])
def test_binary_logits_and_probabilities(tmp_path, final):
    path = _conv_net(tmp_path / "bin.onnx", 1, final=final)
    p = edgeseg.load(path, **IMAGENET)
    assert p.meta.classes == ["background", "foreground"]
    assert p.meta.extra["binary_output"] == ("probabilities" if final else "logits")
    frame = _frame()
    labels = p(frame).labels
    # reference: raw model output through ORT, sigmoid, bilinear upsample through the letterbox, > 0.5
    import onnxruntime as ort

    x, info = _ref_input(frame, (64, 96), **IMAGENET)
    raw = ort.InferenceSession(str(path)).run(None, {"images": x})[0][0, 0]
    # torch/smp decode: interpolate what the model outputs, then probability > 0.5 (logit > 0)
    up = ref_upsample_logits(raw[None].astype(np.float64), info.src_hw, info)[0]
    want = (up > (0.5 if final else 0.0)).astype(np.uint8)
    assert labels.dtype == np.uint8 and labels.shape == frame.shape[:2]
    assert (labels == 1).any() and (labels == 0).any(), "fixture should have both classes"
    assert np.mean(labels == want) > 0.999


def test_binary_needs_to_know_logits_or_probabilities(tmp_path):
    path = _conv_net(tmp_path / "bin.onnx", 1)
    p = edgeseg.load(path, binary_output="probabilities", binary_threshold=0.3, **IMAGENET)
    assert p.meta.extra["binary_output"] == "probabilities" and p.meta.extra["binary_threshold"] == 0.3
    with pytest.raises(ModelError, match="binary_threshold"):
        edgeseg.load(path, binary_threshold=1.5, **IMAGENET)
    with pytest.raises(ModelError, match="2 classes"):
        edgeseg.load(path, num_classes=3, **IMAGENET)


# ----------------------------------------------------------------------------- layouts, dtypes


def test_channels_last_and_uint8_inputs(tmp_path):
    nchw = _conv_net(tmp_path / "a.onnx", 5, stride=8)
    RNG2 = np.random.default_rng(0)
    global RNG
    saved, RNG = RNG, RNG2
    try:
        nhwc = _conv_net(tmp_path / "b.onnx", 5, stride=8, nhwc=True)
    finally:
        RNG = saved
    a = edgeseg.load(nchw, **IMAGENET)
    b = edgeseg.load(nhwc, **IMAGENET)
    assert b.meta.layout == "NHWC" and b.meta.extra["output_layout"] == "NHWC" and b.meta.num_classes == 5
    u = edgeseg.load(_conv_net(tmp_path / "u.onnx", 4, stride=8, uint8=True))  # raw pixels: no mean/std needed
    assert u.meta.extra["input_dtype"] == "uint8" and u.meta.mean == (0.0, 0.0, 0.0)
    frame = _frame()
    assert u(frame).labels.shape == frame.shape[:2]
    # same weights, NCHW vs NHWC graph: same labels (RNG2 restarted the weights for b)
    RNG3 = np.random.default_rng(0)
    saved, RNG = RNG, RNG3
    try:
        a = edgeseg.load(_conv_net(tmp_path / "a2.onnx", 5, stride=8), **IMAGENET)
    finally:
        RNG = saved
    assert np.array_equal(a(frame).labels, b(frame).labels)


def test_bgr_models_get_bgr(tmp_path):
    path = _conv_net(tmp_path / "m.onnx", 3, stride=8)
    rgb = edgeseg.load(path, **IMAGENET)
    bgr = edgeseg.load(path, channel_order="BGR", **IMAGENET)
    x_rgb, _ = rgb.pre(_frame())
    frame = _frame()
    x_rgb, _ = rgb.pre(frame)
    x_bgr, _ = bgr.pre(frame)
    assert np.array_equal(x_rgb[:, ::-1], x_bgr)


@pytest.mark.parametrize("kind", ["int64", "int32"])
def test_argmax_label_outputs(tmp_path, kind):
    path = _conv_net(tmp_path / f"{kind}.onnx", 6, stride=1, labels=kind)
    with pytest.raises(ModelError, match="- classes"):
        edgeseg.load(path, **IMAGENET)
    p = edgeseg.load(path, num_classes=6, **IMAGENET)
    assert p.meta.extra["convention"] == "labels"
    frame = _frame()
    labels = p(frame).labels
    logits_path = _conv_net(tmp_path / "l.onnx", 6, stride=1)  # different weights: compare with ORT + numpy instead
    del logits_path
    import onnxruntime as ort

    x, info = _ref_input(frame, (64, 96), **IMAGENET)
    raw = np.squeeze(ort.InferenceSession(str(path)).run(None, {"images": x})[0])
    # nearest-neighbour un-letterbox of the network-resolution labels
    H, W = frame.shape[:2]
    rh, rw = info.resized_hw
    ys = np.clip((np.arange(H) * rh / H + info.pad_top).astype(int), 0, 63)  # floor, as cv2 INTER_NEAREST
    xs = np.clip((np.arange(W) * rw / W + info.pad_left).astype(int), 0, 95)
    assert np.array_equal(labels, raw[ys[:, None], xs[None, :]])


def test_full_resolution_logits_read_the_class_count(tmp_path):
    p = edgeseg.load(_conv_net(tmp_path / "f.onnx", 4, stride=1), **IMAGENET)
    assert p.meta.num_classes == 4 and p.meta.output_stride == 1 and p.meta.extra["convention"] == "semantic-logits"
    with pytest.raises(ModelError, match="mean/std"):
        edgeseg.load(tmp_path / "f.onnx")


def test_unknown_layout_is_refused_with_what_was_seen(tmp_path):
    nodes = [helper.make_node("ReduceMean", ["images"], ["output"], axes=[2, 3], keepdims=0)]
    path = _save(tmp_path / "x.onnx", nodes, [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 8, 8])],
                 [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 3])])
    with pytest.raises(ModelError, match="(?s)matches no output convention.*Seen: inputs.*Known conventions"):
        edgeseg.load(path, **IMAGENET)


# ---------------------------------------------------------------------------------- CLI


def test_info_explains_a_foreign_model_and_the_missing_flags(tmp_path, capsys):
    path = _conv_net(tmp_path / "seg.onnx", 4, stride=1)
    assert main(["info", str(path)]) == 2
    err = capsys.readouterr().err
    assert "seen" in err and "--mean R,G,B --std R,G,B" in err
    assert main(["info", str(path), "--mean", "0,0,0", "--std", "255,255,255"]) == 0
    out = capsys.readouterr().out
    assert "recognised  semantic-logits" in out and "classes     4" in out


def test_export_stores_the_facts_inside_a_foreign_model(tmp_path, capsys):
    path = _conv_net(tmp_path / "bin.onnx", 1, final="sigmoid")
    out = tmp_path / "stored.onnx"
    assert main(["export", str(path), "--mean", "0,0,0", "--std", "255,255,255", "--out", str(out)]) == 0
    assert "parity PASS" in capsys.readouterr().out and out.with_suffix(".parity.json").exists()
    p = edgeseg.load(out)  # no facts needed any more
    assert p.meta.extra["convention"] == "binary" and p.meta.mean == (0.0, 0.0, 0.0)
    frame = _frame()
    assert np.array_equal(p(frame).labels, edgeseg.load(path, mean=(0, 0, 0), std=(255, 255, 255))(frame).labels)
    assert main(["export", str(out), "--mean", "1,1,1", "--std", "2,2,2", "--out", str(tmp_path / "x.onnx")]) == 2
    assert "already carries edgeseg metadata" in capsys.readouterr().err


def test_stored_metadata_that_contradicts_the_graph_is_refused(tmp_path):
    path = _conv_net(tmp_path / "m.onnx", 4, stride=8)
    good = edgeseg.load(path, **IMAGENET).meta
    for change, match in (({"classes": ["a", "b", "c"]}, "3 classes but the graph outputs 4"),
                          ({"input_size": [32, 32]}, "input height 32 but the graph's input is fixed at 64"),
                          ({"output_names": ["nope"]}, "outputs \\['nope'\\]")):
        model = onnx.load(str(path))
        model.metadata_props.add(key="edgeseg.meta", value=good.replace(extra={}, **change).to_json())
        bad = tmp_path / "bad.onnx"
        onnx.save(model, str(bad))
        with pytest.raises(ModelError, match=match):
            edgeseg.load(bad)


@pytest.mark.parametrize("fmt", [["--format", "onnx", "--int8", "--calib-images", "4"], ["--format", "openvino"]])
def test_int8_and_openvino_exports_of_a_foreign_model(tmp_path, capsys, fmt):
    """A model from elsewhere (here the shipped semantic model with its metadata stripped, so that
    the synthetic validation data has its classes) exports to INT8 / OpenVINO with the facts given
    once, gated like every export; the result needs no facts."""
    if fmt[1] == "openvino":
        pytest.importorskip("openvino")
    src = edgeseg.load()  # the shipped model, for its facts
    m = onnx.load(str(src.path))
    del m.metadata_props[:]
    foreign = tmp_path / "foreign.onnx"
    onnx.save(m, str(foreign))
    facts = ["--classes", ",".join(src.meta.classes), "--mean", ",".join(map(str, src.meta.mean)),
             "--std", ",".join(map(str, src.meta.std))]
    out = tmp_path / ("m.int8.onnx" if fmt[1] == "onnx" else "m_ov")
    assert main(["export", str(foreign), *fmt, *facts, "--val-images", "4", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "report:" in printed and not list(tmp_path.glob("edgeseg_foreign_*"))
    p = edgeseg.load(out)
    assert p.meta.classes == src.meta.classes and p.meta.mean == src.meta.mean
    frame = np.random.default_rng(1).integers(0, 255, (96, 128, 3), np.uint8)
    assert np.mean(p(frame).labels == src(frame).labels) > 0.9


def test_a_refused_foreign_export_leaves_nothing(tmp_path, capsys):
    import glob
    import tempfile

    before = set(glob.glob(f"{tempfile.gettempdir()}/edgeseg_foreign_*"))
    path = _conv_net(tmp_path / "seg.onnx", 4, stride=1)
    out = tmp_path / "seg_ov"
    assert main(["export", str(path), "--format", "openvino", "--mean", "0,0,0", "--std", "255,255,255",
                 "--out", str(out)]) == 2
    assert "labelled images" in capsys.readouterr().err
    assert not out.exists() and set(glob.glob(f"{tempfile.gettempdir()}/edgeseg_foreign_*")) == before


def test_ultralytics_models_of_other_tasks_are_refused_by_name(tmp_path):
    shape = numpy_helper.from_array(np.array([1, 84, 84], np.int64), "shape")
    nodes = [helper.make_node("ReduceMean", ["images"], ["r"], keepdims=1),
             helper.make_node("Expand", ["r", "shape"], ["output0"])]
    path = _save(tmp_path / "yolo11n.onnx", nodes,
                 [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 64, 64])],
                 [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 84, 84])], [shape],
                 props={"author": "Ultralytics", "task": "detect", "names": "{0: 'a'}", "imgsz": "[64, 64]"})
    with pytest.raises(ModelError, match="Ultralytics 'detect' model; edgeseg runs segmentation"):
        edgeseg.load(path)
