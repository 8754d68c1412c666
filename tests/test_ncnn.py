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

from edgeseg import load  # noqa: E402
from edgeseg.cli import main  # noqa: E402
from edgeseg.data import synthetic  # noqa: E402
from edgeseg.errors import BackendError, ExportError, ModelError  # noqa: E402
from edgeseg.export import export_onnx  # noqa: E402
from edgeseg.export.ncnn import export_ncnn  # noqa: E402
from edgeseg.meta import ModelMeta  # noqa: E402
from edgeseg.models import create_model, save_checkpoint  # noqa: E402
from edgeseg.runtime import InstancePredictor, SemanticPredictor  # noqa: E402
from edgeseg.runtime.backends import open_backend, resolve_backend  # noqa: E402
from edgeseg.runtime.backends.ncnn_backend import NcnnBackend  # noqa: E402

SIZE = (64, 64)
FAST = dict(val_images=4, parity_images=2, verbose=False)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    g = torch.Generator().manual_seed(0)
    model = create_model("liteseg_t", len(synthetic.CLASSES))
    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(m.weight, nonlinearity="relu", generator=g)
    meta = ModelMeta(task="semantic", classes=list(synthetic.CLASSES), input_size=SIZE, arch="liteseg_t",
                     palette=synthetic.PALETTE, output_stride=8)
    return save_checkpoint(tmp_path_factory.mktemp("ncnn") / "ckpt", model.eval(), meta)


@pytest.fixture(scope="module")
def onnx_model(ckpt) -> Path:
    return export_onnx(ckpt, ckpt.parent / "m.onnx", parity_images=0, verbose=False).onnx_path


@pytest.fixture(scope="module")
def exported(onnx_model) -> Path:
    out = onnx_model.parent / "m_ncnn"
    assert main(["export", str(onnx_model), "--format", "ncnn", "--out", str(out), "--val-images", "4",
                 "--threads", "1"]) == 0
    return out


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
    assert be.input_specs[0].shape == (1, 3, 64, 64) and be.output_specs[0].shape == (1, 7, 8, 8)
    x = np.random.default_rng(0).normal(size=(1, 3, 64, 64)).astype(np.float32)
    ref = open_backend(onnx_model).infer({"images": x})["logits"]
    got = be.infer({"images": x})["logits"]
    assert got.shape == ref.shape and np.abs(got - ref).max() < 1e-3
    frame = synthetic.generate(5, size=(90, 130)).image
    p = load(exported, threads=1)
    assert isinstance(p, SemanticPredictor) and p.backend_name == "ncnn"
    assert (p(frame).labels == load(onnx_model)(frame).labels).mean() > 0.999
    with pytest.raises(BackendError, match="takes one"):
        be.infer({"images": np.zeros((1, 3, 32, 32), np.float32)})
    with pytest.raises(BackendError, match="does not take option"):
        open_backend(exported, precision="f16")


def test_bench_and_eval_commands(exported, tmp_path):
    rep = tmp_path / "eval.json"
    assert main(["eval", str(exported), "--data", "synthetic:4", "--split", "val", "--json", str(rep), "--quiet"]) == 0
    assert 0.0 <= json.loads(rep.read_text())["miou"] <= 1.0
    out = tmp_path / "bench"
    assert main(["bench", str(exported), "--runs", "3", "--warmup", "1", "--threads", "1", "--out", str(out),
                 "--quiet"]) == 0
    assert "ncnn" in (out / "bench.json").read_text()


def test_instance_model(tmp_path):
    torch.manual_seed(0)
    model = create_model("yoloseg_n", len(synthetic.CLASSES) - 1).eval()
    with torch.no_grad():
        for head in model.heads:  # many detections above the thresholds
            head.cls[-1].bias.fill_(-1.5)
    meta = ModelMeta(task="instance", classes=list(synthetic.CLASSES[1:]), input_size=SIZE, arch="yoloseg_n",
                     output_stride=4, output_names=list(model.output_names), extra={"score_threshold": 0.1})
    ck = save_checkpoint(tmp_path / "inst", model, meta)
    rep = export_ncnn(ck, tmp_path / "inst_ncnn", **FAST)
    assert rep.passed and rep.gate.accuracy.metric == "mask AP" and rep.gate.parity.passed
    be = NcnnBackend(tmp_path / "inst_ncnn")
    assert [s.name for s in be.output_specs] == list(model.output_names)
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
    torch.manual_seed(0)
    model = create_model("maskrcnn", len(synthetic.CLASSES) - 1).eval()
    meta = ModelMeta(task="instance", classes=list(synthetic.CLASSES[1:]), input_size=SIZE, arch="maskrcnn",
                     output_stride=4, output_names=list(model.output_names), extra=dict(model.meta_extra()))
    ck = save_checkpoint(tmp_path / "mrcnn", model, meta)
    onnx_path = export_onnx(ck, tmp_path / "mrcnn.onnx", parity_images=0, verbose=False).onnx_path
    assert main(["export", str(onnx_path), "--format", "ncnn", "--out", str(tmp_path / "out"),
                 "--val-images", "1"]) == 2
    err = capsys.readouterr().err
    assert "RoiAlign" in err and "no equivalent" in err
    assert not (tmp_path / "out" / "model.ncnn.param").exists()
