"""ONNX export: checker, embedded ModelMeta, parity report, atomic write / rejection."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")

from edgeseg import defaults  # noqa: E402
from edgeseg.data import synthetic  # noqa: E402
from edgeseg.errors import ExportError, ModelError  # noqa: E402
from edgeseg.export import check_parity, export_onnx, parity_path, rejected_path  # noqa: E402
from edgeseg.meta import ModelMeta  # noqa: E402
from edgeseg.models import create_model, register_model  # noqa: E402
from edgeseg.runtime import load  # noqa: E402
from edgeseg.runtime.backends.onnxruntime_backend import OnnxRuntimeBackend  # noqa: E402

try:  # tests/ may or may not be a package
    from .factories import semantic_checkpoint, smallest_semantic_model, vary_weights
except ImportError:
    from factories import semantic_checkpoint, smallest_semantic_model, vary_weights

INPUT = (96, 128)


def make_checkpoint(d: Path, name: str, seed: int = 0) -> Path:
    return semantic_checkpoint(d, name, INPUT, seed, zero_bias=True)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("ckpt"), smallest_semantic_model())


@pytest.fixture(scope="module")
def static_export(ckpt, tmp_path_factory):
    out = tmp_path_factory.mktemp("static") / "model.onnx"
    return export_onnx(ckpt, out, verbose=False)


def test_static_export_is_valid_onnx_with_meta(static_export, ckpt):
    out = static_export.onnx_path
    proto = onnx.load(str(out))
    onnx.checker.check_model(proto, full_check=True)
    assert {o.domain: o.version for o in proto.opset_import}.get("", None) == defaults.ONNX_OPSET
    props = {p.key: p.value for p in proto.metadata_props}
    meta = ModelMeta.from_json(props[defaults.META_KEY])
    assert meta.classes == list(synthetic.CLASSES)
    assert meta.input_size == INPUT and meta.dynamic is False and meta.output_stride == 8
    assert [i.name for i in proto.graph.input] == [meta.input_name]
    dims = [d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 3, *INPUT]
    # the temp file was renamed, not left behind; no rejected model
    assert sorted(p.name for p in out.parent.iterdir()) == ["model.onnx", "model.parity.json"]
    assert static_export.exporter == "torchscript"


def test_parity_report_json(static_export):
    rep = static_export.parity
    assert rep is not None and rep.passed
    data = json.loads(parity_path(static_export.onnx_path).read_text())
    assert data["passed"] is True and data["n_images"] == rep.n_images == 4
    assert data["agreement_logits"] >= defaults.PARITY_MIN_AGREEMENT
    assert data["agreement_frame"] >= defaults.PARITY_MIN_AGREEMENT
    assert data["max_abs_diff"] < 1e-3
    assert len(data["images"]) == 4 and {tuple(i["frame_hw"]) for i in data["images"]} > {(240, 320)}


def test_dynamic_export_runs_at_other_sizes(ckpt, tmp_path):
    rep = export_onnx(ckpt, tmp_path / "dyn.onnx", dynamic=True, parity_images=2, verbose=False)
    assert rep.meta.dynamic and rep.parity.passed
    # parity covered a second network size
    assert {tuple(i["input_hw"]) for i in rep.parity.images} == {INPUT, (INPUT[0] + 32, INPUT[1] + 64)}
    be = OnnxRuntimeBackend(rep.onnx_path)
    assert [isinstance(d, int) for d in be.input_specs[0].shape] == [False, True, False, False]
    out = be.infer({"images": np.zeros((2, 3, 64, 96), np.float32)})["logits"]
    assert out.shape == (2, len(synthetic.CLASSES), 8, 12)


def test_parity_detects_a_different_model(static_export, ckpt):
    other = vary_weights(create_model(static_export.meta.arch, len(synthetic.CLASSES)), seed=1, zero_bias=True)
    rep = check_parity(other, static_export.onnx_path, static_export.meta, n_images=2)
    assert not rep.passed
    assert rep.agreement < 0.9 and rep.max_abs_diff > 1e-2


class _TraceDivergent(torch.nn.Module):
    """Computes something else while being traced: stands in for any trace-vs-eager divergence
    (e.g. data-dependent Python control flow frozen by the tracer)."""

    output_stride = 2

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, num_classes, 3, stride=2, padding=1)

    def forward(self, x):
        y = self.conv(x)
        return -y if torch.jit.is_tracing() else y


register_model("_test_trace_divergent")(lambda num_classes, **kw: _TraceDivergent(num_classes))


def test_failed_parity_rejects_model_and_keeps_old_file(tmp_path):
    ck = make_checkpoint(tmp_path / "ck", "_test_trace_divergent")
    out = tmp_path / "m.onnx"
    out.write_bytes(b"previous good model")
    with pytest.raises(ExportError) as e:
        export_onnx(ck, out, parity_images=2, verbose=False)
    msg = str(e.value)
    assert "NOT written" in msg and str(rejected_path(out)) in msg
    assert out.read_bytes() == b"previous good model"
    assert rejected_path(out).is_file()
    rep = json.loads(parity_path(out).read_text())
    assert rep["passed"] is False and rep["agreement"] < defaults.PARITY_MIN_AGREEMENT
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_export_errors(ckpt, tmp_path):
    with pytest.raises(ExportError, match=r"\.onnx"):
        export_onnx(ckpt, tmp_path / "model.pt", verbose=False)
    with pytest.raises(ModelError, match="does not exist"):
        export_onnx(tmp_path / "nope", tmp_path / "m.onnx", verbose=False)
    with pytest.raises(ExportError, match="exporter"):
        export_onnx(ckpt, tmp_path / "m.onnx", exporter="tflite", verbose=False)
    assert not (tmp_path / "m.onnx").exists()


def test_exported_model_runs_in_runtime_with_stored_meta(static_export):
    p = load(static_export.onnx_path)
    assert p.meta.to_dict() == static_export.meta.to_dict()
    frame = synthetic.generate(3, size=(180, 240)).image
    r = p(frame)
    assert r.labels.shape == (180, 240) and r.labels.dtype == np.uint8
