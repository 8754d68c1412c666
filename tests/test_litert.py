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

from converter_checks import (FAST, assert_maskrcnn_refused, assert_semantic_backend_matches_onnx_runtime,  # noqa: E402
                              export_instance_model, export_with_cli)
from edgeseg import defaults, load  # noqa: E402
from edgeseg.cli import main  # noqa: E402
from edgeseg.data import synthetic  # noqa: E402
from edgeseg.errors import ExportError  # noqa: E402
from edgeseg.export import export_onnx  # noqa: E402
from edgeseg.export.litert import export_litert  # noqa: E402
from edgeseg.meta import ModelMeta  # noqa: E402
from edgeseg.runtime import InstancePredictor  # noqa: E402
from edgeseg.runtime.backends import resolve_backend  # noqa: E402
from edgeseg.runtime.backends.litert_backend import IO_KEY, LiteRTBackend, read_metadata  # noqa: E402
from factories import SIZE, semantic_checkpoint  # noqa: E402


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return semantic_checkpoint(tmp_path_factory.mktemp("litert") / "ckpt")


@pytest.fixture(scope="module")
def fp32(ckpt) -> Path:
    return export_with_cli(ckpt, "litert", ckpt.parent / "model.tflite")


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
    assert_semantic_backend_matches_onnx_runtime("litert", be, fp32, onnx_path, wrong_size="static shapes")


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
    rep, output_names = export_instance_model(export_litert, tmp_path, "inst.tflite")
    be = LiteRTBackend(rep.path)
    io = json.loads(read_metadata(rep.path.read_bytes())[IO_KEY])
    assert io["outputs"] == output_names and io["nhwc"] == [False, False, False, True]
    assert [s.name for s in be.output_specs] == output_names
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
    assert_maskrcnn_refused(tmp_path, capsys, "litert")
    assert not list(tmp_path.glob("*.tflite"))
