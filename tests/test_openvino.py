"""OpenVINO: IR export with ModelMeta in rt_info, the OpenVINO backend, parity and the accuracy
gate (real OpenVINO Runtime, tiny 64x64 models)."""
from __future__ import annotations

import json
import stat
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ov = pytest.importorskip("openvino")

from edgeseg import load  # noqa: E402
from edgeseg._io import FILE_MODE  # noqa: E402
from edgeseg.cli import main  # noqa: E402
from edgeseg.data import synthetic  # noqa: E402
from edgeseg.errors import BackendError, ExportError, ModelError  # noqa: E402
from edgeseg.export import check_parity  # noqa: E402
from edgeseg.export.openvino import export_openvino, rejected_ir  # noqa: E402
from edgeseg.meta import ModelMeta  # noqa: E402
from edgeseg.models import create_model, load_checkpoint  # noqa: E402
from edgeseg.runtime import InstancePredictor, SemanticPredictor  # noqa: E402
from edgeseg.runtime.backends import SUFFIXES, available_backends, open_backend, resolve_backend  # noqa: E402
from edgeseg.runtime.backends.openvino_backend import OpenVINOBackend  # noqa: E402

SIZE = (64, 64)
FAST = dict(val_images=4, parity_images=2, verbose=False)


@pytest.fixture(scope="module")
def ckpt(semantic_ckpt) -> Path:
    return semantic_ckpt


@pytest.fixture(scope="module")
def ir(ckpt, tmp_path_factory):
    return export_openvino(ckpt, tmp_path_factory.mktemp("ov") / "ir", **FAST)


def test_fp32_ir_carries_meta_and_passes_both_gates(ir, ckpt):
    out = ir.path.parent
    assert sorted(p.name for p in out.iterdir()) == ["model.bin", "model.parity.json", "model.xml"]
    assert {stat.S_IMODE(p.stat().st_mode) for p in out.iterdir()} == {FILE_MODE}  # not mkstemp's 0600
    stored = ov.Core().read_model(str(ir.path)).get_rt_info(["edgeseg", "meta"]).astype(str)
    meta = ModelMeta.from_json(stored)
    _, ck_meta, _ = load_checkpoint(ckpt)
    assert meta.classes == ck_meta.classes and meta.input_size == SIZE and meta.palette == ck_meta.palette
    assert meta.extra["export"]["format"] == "openvino" and meta.extra["export"]["precision"] == "fp32"
    assert ir.gate.parity_gated and ir.gate.parity.passed and ir.gate.parity.agreement >= 0.999
    assert ir.gate.parity.provider.startswith("openvino-CPU")
    acc = ir.gate.accuracy
    assert acc.passed and acc.metric == "mIoU" and abs(acc.drop) < 1e-3 and acc.agreement > 0.999
    report = json.loads((out / "model.parity.json").read_text())
    assert report["passed"] and report["format"] == "openvino" and report["precision"] == "fp32"
    assert report["accuracy"]["n_images"] == 4 and report["parity"]["n_images"] == 2


def test_load_ir_by_file_or_directory_matches_onnx_runtime(ir, semantic_onnx):
    frame = synthetic.generate(5, size=(90, 130)).image
    ref = load(semantic_onnx)(frame).labels
    for path in (ir.path, ir.path.parent):
        p = load(path, threads=1)
        assert isinstance(p, SemanticPredictor) and p.backend_name == "openvino"
        assert p.meta.classes == list(synthetic.CLASSES) and p.input_size == SIZE
        labels = p(frame).labels
        assert labels.shape == frame.shape[:2] and (labels == ref).mean() > 0.999
    assert resolve_backend(ir.path.parent) is OpenVINOBackend
    assert resolve_backend(ir.source).name == "torch"  # a checkpoint directory stays torch


def test_parity_takes_any_backend(ir):
    model, _, _ = load_checkpoint(ir.source)
    be = OpenVINOBackend(ir.path)
    rep = check_parity(model.eval(), be, ir.meta, n_images=2)
    assert rep.passed and rep.provider == be.provider
    other = create_model("liteseg_t", len(synthetic.CLASSES)).eval()  # different weights
    assert not check_parity(other, be, ir.meta, n_images=2).passed


def test_fp16_dynamic_through_cli(ckpt, ir, tmp_path):
    out = tmp_path / "ir16"
    assert main(["export", str(ckpt), "--format", "openvino", "--fp16", "--dynamic", "--out", str(out),
                 "--val-images", "4"]) == 0
    fp16_bin = (out / "model.bin").stat().st_size
    be = OpenVINOBackend(out)
    assert be.meta.extra["export"]["precision"] == "fp16" and be.meta.dynamic
    assert [d is None for d in be.input_specs[0].shape] == [True, False, True, True]
    y = be.infer({"images": np.zeros((2, 3, 96, 64), np.float32)})["logits"]
    assert y.shape == (2, len(synthetic.CLASSES), 12, 8) and y.dtype == np.float32
    report = json.loads((out / "model.parity.json").read_text())
    assert report["passed"] and report["parity_gated"] is False and report["accuracy"]["passed"]
    assert fp16_bin < 0.6 * ir.path.with_suffix(".bin").stat().st_size  # FP16 weights: about half


def test_onnx_source_and_rejection(semantic_onnx, tmp_path):
    onnx_path = semantic_onnx
    with pytest.raises(ExportError, match="already exported with input size"):
        export_openvino(onnx_path, tmp_path / "x", input_size=96, **FAST)
    # An impossible threshold (the export must beat its reference by 100 points) rejects it.
    out = tmp_path / "rej"
    with pytest.raises(ExportError) as e:
        export_openvino(onnx_path, out, max_drop=-1.0, **FAST)
    assert "NOT written" in str(e.value) and "--accept-drop" in str(e.value)
    assert not (out / "model.xml").exists()
    rej_xml, rej_bin = rejected_ir(out / "model.xml")
    assert rej_xml.is_file() and rej_bin.is_file()
    report = json.loads((out / "model.parity.json").read_text())
    assert report["passed"] is False and report["accuracy"]["reference"].startswith("onnxruntime/")
    assert report["parity"]["passed"]  # the IR itself is faithful; only the threshold failed
    with pytest.raises(ModelError, match="holds no OpenVINO model"):
        load(out)  # only a rejected IR there
    assert OpenVINOBackend(rej_xml).meta is not None  # still inspectable


def test_instance_model(instance_ckpt, tmp_path):
    rep = export_openvino(instance_ckpt, tmp_path / "inst_ir", **FAST)
    assert rep.gate.parity.task == "instance" and rep.gate.parity.passed
    acc = rep.gate.accuracy
    assert acc.metric == "mask AP" and acc.passed and abs(acc.drop) < 1e-3
    assert acc.details["detections_reference"] > 0 and acc.agreement > 0.8
    p = load(rep.path)
    assert isinstance(p, InstancePredictor) and p.thresholds.score == pytest.approx(0.1)
    r = p(synthetic.generate(2, size=(80, 120)).image)
    assert len(r) > 0 and r.masks.image_hw == (80, 120)


def test_backend_registry_and_errors(ir, tmp_path):
    assert SUFFIXES[".xml"] == "openvino" and available_backends()["openvino"]
    with pytest.raises(BackendError, match="not CUDA"):
        open_backend(ir.path, device="cuda")
    with pytest.raises(BackendError, match="not available here"):
        open_backend(ir.path, device="npu:7")
    with pytest.raises(BackendError, match="does not take"):
        open_backend(ir.path, providers=["CPUExecutionProvider"])
    with pytest.raises(BackendError, match="precision must be"):
        OpenVINOBackend(ir.path, precision="int4")
    lonely = tmp_path / "lonely.xml"
    lonely.write_text(ir.path.read_text())
    with pytest.raises(ModelError, match="no weights file"):
        OpenVINOBackend(lonely)
    broken = tmp_path / "b"
    broken.mkdir()
    (broken / "model.xml").write_text("<net>not an IR")
    (broken / "model.bin").write_bytes(b"")
    with pytest.raises(ModelError, match="could not read"):
        load(broken)
    be = OpenVINOBackend(ir.path, fp16=True)  # f16 where the CPU has it, else what it computes in
    assert be.provider.startswith("openvino-CPU-")
    with pytest.raises(BackendError, match="needs input"):
        be.infer({"nope": np.zeros((1, 3, *SIZE), np.float32)})
    with pytest.raises(BackendError, match="failed to run"):
        be.infer({"images": np.zeros((1, 3, 32, 32), np.float32)})  # static IR: wrong size
