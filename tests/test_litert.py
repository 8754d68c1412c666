"""LiteRT: .tflite export (FP32 / FP16 / full-integer INT8) with ModelMeta in the flatbuffer, the
litert backend, and the accuracy gate (real litert-torch conversion and LiteRT interpreter, tiny
64x64 models)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("ai_edge_litert")
pytest.importorskip("litert_torch")

from edgeseg import defaults, load  # noqa: E402
from edgeseg.cli import main  # noqa: E402
from edgeseg.data import synthetic  # noqa: E402
from edgeseg.errors import BackendError, ExportError  # noqa: E402
from edgeseg.export import export_onnx  # noqa: E402
from edgeseg.export.litert import export_litert  # noqa: E402
from edgeseg.meta import ModelMeta  # noqa: E402
from edgeseg.models import create_model, save_checkpoint  # noqa: E402
from edgeseg.runtime import InstancePredictor, SemanticPredictor  # noqa: E402
from edgeseg.runtime.backends import open_backend, resolve_backend  # noqa: E402
from edgeseg.runtime.backends.litert_backend import IO_KEY, LiteRTBackend, read_metadata  # noqa: E402

SIZE = (64, 64)
FAST = dict(val_images=4, parity_images=2, verbose=False)


def semantic_checkpoint(d: Path) -> Path:
    g = torch.Generator().manual_seed(0)
    model = create_model("liteseg_t", len(synthetic.CLASSES))
    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(m.weight, nonlinearity="relu", generator=g)
    meta = ModelMeta(task="semantic", classes=list(synthetic.CLASSES), input_size=SIZE, arch="liteseg_t",
                     palette=synthetic.PALETTE, output_stride=8)
    return save_checkpoint(d, model.eval(), meta)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return semantic_checkpoint(tmp_path_factory.mktemp("litert") / "ckpt")


@pytest.fixture(scope="module")
def fp32(ckpt) -> Path:
    out = ckpt.parent / "model.tflite"
    assert main(["export", str(ckpt), "--format", "litert", "--out", str(out), "--val-images", "4",
                 "--threads", "1"]) == 0
    return out


def test_fp32_export_carries_meta_nhwc_and_passes_both_gates(fp32, ckpt):
    entries = read_metadata(fp32.read_bytes())
    meta = ModelMeta.from_json(entries[defaults.META_KEY].decode())
    assert meta.classes == list(synthetic.CLASSES) and meta.input_size == SIZE
    assert meta.extra["export"]["format"] == "litert" and meta.extra["export"]["graph_layout"] == "NHWC"
    io = json.loads(entries[IO_KEY])
    assert io["outputs"] == ["logits"] and io["nhwc"] == [True]
    from ai_edge_litert.interpreter import Interpreter

    raw = Interpreter(model_path=str(fp32))
    assert list(raw.get_input_details()[0]["shape"]) == [1, 64, 64, 3]  # channels-last graph
    assert list(raw.get_output_details()[0]["shape"]) == [1, 8, 8, len(synthetic.CLASSES)]
    report = json.loads(fp32.with_suffix(".parity.json").read_text())
    assert report["passed"] and report["parity_gated"] and report["parity"]["agreement"] >= 0.999
    assert report["accuracy"]["candidate"].startswith("litert/") and abs(report["accuracy"]["drop"]) < 1e-3


def test_backend_and_load_match_onnx_runtime(fp32, ckpt, tmp_path):
    onnx_path = export_onnx(ckpt, tmp_path / "m.onnx", parity_images=0, verbose=False).onnx_path
    be = LiteRTBackend(fp32, threads=1)
    assert resolve_backend(fp32) is LiteRTBackend and be.provider == "litert-xnnpack-float"
    assert be.input_specs[0].shape == (1, 3, 64, 64) and be.output_specs[0].shape == (1, 7, 8, 8)
    x = np.random.default_rng(0).normal(size=(1, 3, 64, 64)).astype(np.float32)
    ref = open_backend(onnx_path).infer({"images": x})["logits"]
    got = be.infer({"images": x})["logits"]
    assert got.shape == ref.shape and np.abs(got - ref).max() < 1e-3
    frame = synthetic.generate(5, size=(90, 130)).image
    p = load(fp32, threads=1)
    assert isinstance(p, SemanticPredictor) and p.backend_name == "litert"
    assert (p(frame).labels == load(onnx_path)(frame).labels).mean() > 0.999
    with pytest.raises(BackendError, match="static shapes"):
        be.infer({"images": np.zeros((1, 3, 32, 32), np.float32)})
    with pytest.raises(BackendError, match="does not take option"):
        open_backend(fp32, precision="f16")


@pytest.mark.slow
def test_int8_is_full_integer_and_gated(ckpt, fp32, tmp_path):
    """A second litert-torch conversion (~15 s idle): slow suite; ncnn INT8 runs by default."""
    out = tmp_path / "model.int8.tflite"
    assert main(["export", str(ckpt), "--format", "litert", "--int8", "--calib-images", "4", "--out", str(out),
                 "--val-images", "4", "--accept-drop", "0.05"]) == 0
    from ai_edge_litert.interpreter import Interpreter

    raw = Interpreter(model_path=str(out))
    assert raw.get_input_details()[0]["dtype"] == np.int8  # full integer: int8 in and out
    assert raw.get_output_details()[0]["dtype"] == np.int8
    be = LiteRTBackend(out)
    assert be.provider == "litert-xnnpack-int8"
    y = be.infer({"images": np.zeros((1, 3, 64, 64), np.float32)})["logits"]
    assert y.dtype == np.float32 and y.shape == (1, 7, 8, 8)  # dequantised, channels-first again
    report = json.loads(out.with_suffix(".parity.json").read_text())
    assert report["precision"] == "int8" and report["accuracy"]["passed"] and report["parity_gated"] is False
    assert out.stat().st_size < 0.5 * fp32.stat().st_size  # int8 weights: about a quarter


@pytest.mark.slow
def test_instance_model_and_eval(tmp_path):
    """Single-stage instance model: 3-D outputs stay as they are, prototypes come back NCHW."""
    torch.manual_seed(0)
    model = create_model("yoloseg_n", len(synthetic.CLASSES) - 1).eval()
    with torch.no_grad():
        for head in model.heads:  # many detections above the thresholds
            head.cls[-1].bias.fill_(-1.5)
    meta = ModelMeta(task="instance", classes=list(synthetic.CLASSES[1:]), input_size=SIZE, arch="yoloseg_n",
                     output_stride=4, output_names=list(model.output_names), extra={"score_threshold": 0.1})
    ck = save_checkpoint(tmp_path / "inst", model, meta)
    rep = export_litert(ck, tmp_path / "inst.tflite", **FAST)
    assert rep.passed and rep.gate.accuracy.metric == "mask AP" and rep.gate.parity.passed
    be = LiteRTBackend(rep.path)
    io = json.loads(read_metadata(rep.path.read_bytes())[IO_KEY])
    assert io["outputs"] == list(model.output_names) and io["nhwc"] == [False, False, False, True]
    assert [s.name for s in be.output_specs] == list(model.output_names)
    p = load(rep.path)
    assert isinstance(p, InstancePredictor)
    res = p(synthetic.generate(3, size=SIZE).image)
    assert len(res.scores) > 0
    rj = tmp_path / "eval.json"
    assert main(["eval", str(rep.path), "--data", "synthetic:4", "--split", "val", "--json", str(rj), "--quiet"]) == 0


def test_refusals(ckpt, tmp_path):
    with pytest.raises(ExportError, match="static shapes"):
        export_litert(ckpt, tmp_path / "d.tflite", dynamic=True, **FAST)
    with pytest.raises(ExportError, match=".tflite"):
        export_litert(ckpt, tmp_path / "d.onnx", **FAST)
    assert main(["export", str(ckpt), "--format", "litert", "--keep-float", "head", "--int8"]) == 2


def test_maskrcnn_is_refused_with_the_op_named(tmp_path, capsys):
    torch.manual_seed(0)
    model = create_model("maskrcnn", len(synthetic.CLASSES) - 1).eval()
    meta = ModelMeta(task="instance", classes=list(synthetic.CLASSES[1:]), input_size=SIZE, arch="maskrcnn",
                     output_stride=4, output_names=list(model.output_names), extra=dict(model.meta_extra()))
    ck = save_checkpoint(tmp_path / "mrcnn", model, meta)
    onnx_path = export_onnx(ck, tmp_path / "mrcnn.onnx", parity_images=0, verbose=False).onnx_path
    assert main(["export", str(onnx_path), "--format", "litert", "--val-images", "1"]) == 2
    err = capsys.readouterr().err
    assert "RoiAlign" in err and "no equivalent" in err
    assert not list(tmp_path.glob("*.tflite"))
