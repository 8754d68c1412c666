"""ncnn: model.ncnn.param/.bin export through pnnx with the ModelMeta in a side file, the ncnn
backend, and the accuracy gate (real pnnx conversion and ncnn runtime, tiny 64x64 models)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("ncnn")
pytest.importorskip("pnnx")

from converter_checks import (FAST, assert_maskrcnn_refused, assert_semantic_backend_matches_onnx_runtime,  # noqa: E402
                              export_instance_model, export_with_cli)
from edgeseg import load  # noqa: E402
from edgeseg.cli import main  # noqa: E402
from edgeseg.data import synthetic  # noqa: E402
from edgeseg.errors import ExportError, ModelError  # noqa: E402
from edgeseg.export import export_onnx  # noqa: E402
from edgeseg.export.ncnn import export_ncnn  # noqa: E402
from edgeseg.meta import ModelMeta  # noqa: E402
from edgeseg.runtime import InstancePredictor  # noqa: E402
from edgeseg.runtime.backends import resolve_backend  # noqa: E402
from edgeseg.runtime.backends.ncnn_backend import NcnnBackend  # noqa: E402
from factories import SIZE, semantic_checkpoint  # noqa: E402


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return semantic_checkpoint(tmp_path_factory.mktemp("ncnn") / "ckpt")


@pytest.fixture(scope="module")
def onnx_model(ckpt) -> Path:
    return export_onnx(ckpt, ckpt.parent / "m.onnx", parity_images=0, verbose=False).onnx_path


@pytest.fixture(scope="module")
def exported(onnx_model) -> Path:
    return export_with_cli(onnx_model, "ncnn", onnx_model.parent / "m_ncnn")


def test_export_writes_param_bin_side_file_and_passes_both_gates(exported):
    names = sorted(p.name for p in exported.iterdir())
    assert names == ["model.ncnn.bin", "model.ncnn.json", "model.ncnn.param", "model.parity.json"]
    side = json.loads((exported / "model.ncnn.json").read_text())
    meta = ModelMeta.from_dict(side["meta"])
    assert meta.classes == list(synthetic.CLASSES) and meta.extra["export"]["format"] == "ncnn"
    assert side["io"]["outputs"] == ["logits"] and side["io"]["output_shapes"] == [[1, 7, 8, 8]]
    report = json.loads((exported / "model.parity.json").read_text())
    assert report["passed"] and report["parity_gated"] and report["parity"]["agreement"] >= 0.999
    assert report["accuracy"]["candidate"].startswith("ncnn/ncnn-cpu-fp32")


def test_backend_and_load_match_onnx_runtime(exported, onnx_model):
    assert resolve_backend(exported) is NcnnBackend  # the export directory resolves to ncnn
    be = NcnnBackend(exported / "model.ncnn.param", threads=1)
    assert_semantic_backend_matches_onnx_runtime("ncnn", be, exported, onnx_model, wrong_size="takes one")


def test_bench_and_eval_commands(exported, tmp_path):
    rep = tmp_path / "eval.json"
    assert main(["eval", str(exported), "--data", "synthetic:4", "--split", "val", "--json", str(rep), "--quiet"]) == 0
    assert 0.0 <= json.loads(rep.read_text())["miou"] <= 1.0
    out = tmp_path / "bench"
    assert main(["bench", str(exported), "--runs", "3", "--warmup", "1", "--threads", "1", "--out", str(out),
                 "--quiet"]) == 0
    assert "ncnn" in (out / "bench.json").read_text()


def test_instance_model(tmp_path):
    _, output_names = export_instance_model(export_ncnn, tmp_path, "inst_ncnn")
    be = NcnnBackend(tmp_path / "inst_ncnn")
    assert [s.name for s in be.output_specs] == output_names
    assert be.output_specs[-1].shape[:2] == (1, 32)  # prototypes (1, K, h, w)
    p = load(tmp_path / "inst_ncnn")
    assert isinstance(p, InstancePredictor) and len(p(synthetic.generate(3, size=SIZE).image).scores) > 0


def test_int8_uses_ncnn_int8_layers_and_is_gated(onnx_model, exported, tmp_path):
    out = tmp_path / "int8"
    assert main(["export", str(onnx_model), "--format", "ncnn", "--int8", "--calib-images", "4", "--out", str(out),
                 "--val-images", "4", "--accept-drop", "0.05"]) == 0
    param = (out / "model.ncnn.param").read_text().splitlines()
    convs = [ln.split() for ln in param[2:] if ln.split()[0] in ("Convolution", "ConvolutionDepthWise")]
    first = [c for c in convs if c[4] == "in0"]
    assert first and all("8=2" not in c and "8=1" not in c for c in first)  # the first conv stays float
    assert sum(("8=2" in c) or ("8=1" in c) for c in convs) == len(convs) - len(first)
    assert (out / "model.ncnn.bin").stat().st_size < 0.5 * (exported / "model.ncnn.bin").stat().st_size
    be = NcnnBackend(out)
    assert be.provider == "ncnn-cpu-int8" and be.meta.extra["export"]["precision"] == "int8"
    x = np.random.default_rng(1).normal(size=(1, 3, 64, 64)).astype(np.float32)
    y, ref = be.infer({"images": x})["logits"], NcnnBackend(exported).infer({"images": x})["logits"]
    assert y.shape == ref.shape and 0 < np.abs(y - ref).max() < 0.25 * np.abs(ref).max()
    report = json.loads((out / "model.parity.json").read_text())
    assert report["precision"] == "int8" and report["accuracy"]["passed"] and report["details"]["quantised_layers"] > 0


def test_int8_refuses_weight_layouts_it_does_not_read(tmp_path):
    from edgeseg.export.ncnn_int8 import quantize

    (tmp_path / "m.param").write_text("7767517\n2 2\nInput in0 0 1 in0\nDeconvolution d 1 1 in0 out0 0=4 1=3 5=1 6=108\n")
    (tmp_path / "m.bin").write_bytes(b"\0" * (4 + 108 * 4 + 16))
    with pytest.raises(ExportError, match="Deconvolution"):
        quantize(tmp_path / "m.param", tmp_path / "m.bin", tmp_path / "q.param", tmp_path / "q.bin", "in0", [])


def test_refusals_and_damaged_files(exported, ckpt, tmp_path, capsys):
    assert main(["export", str(ckpt), "--format", "ncnn", "--fp16"]) == 2
    with pytest.raises(ExportError, match="static"):
        export_ncnn(ckpt, tmp_path / "d", dynamic=True, **FAST)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model.ncnn.param").write_text((exported / "model.ncnn.param").read_text())
    with pytest.raises(ModelError, match="no weights file"):
        load(broken)
    (broken / "model.ncnn.bin").write_bytes(b"\0" * 16)
    (broken / "model.ncnn.json").write_text("{not json")
    with pytest.raises(ModelError, match="not valid JSON"):
        load(broken)


@pytest.mark.slow
def test_maskrcnn_is_refused_with_the_op_named(tmp_path, capsys):
    """As in test_litert (same converter check, run there by default)."""
    assert_maskrcnn_refused(tmp_path, capsys, "ncnn", "--out", str(tmp_path / "out"))
    assert not (tmp_path / "out" / "model.ncnn.param").exists()
