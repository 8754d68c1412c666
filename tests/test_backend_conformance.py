"""Every registered backend behaves alike on the same tiny semantic model: it opens its own
artefact on CPU, reports its specs and the ModelMeta stored at export, refuses unknown options,
and its outputs agree with ONNX Runtime's. Parametrised over the backend registry: a backend that
is not installed here is skipped, and a new backend without an artefact builder below is skipped
with a reminder to add one."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgeseg.cli import main
from edgeseg.data import synthetic
from edgeseg.errors import BackendError
from edgeseg.runtime.backends import available_backends, list_backends, open_backend
from edgeseg.runtime.base import preprocess

#: backend -> (export --format, output name) of the artefacts built through `edgeseg export`;
#: onnxruntime runs the exported ONNX itself and torch the checkpoint directory.
EXPORTS = {"openvino": ("openvino", "ir"), "litert": ("litert", "model.tflite"), "ncnn": ("ncnn", "ncnn"),
           "tensorrt": ("engine", "model.engine")}
#: backends whose export takes tens of seconds here: checked with -m slow (their own test files
#: export in the default run)
SLOW = {"litert", "ncnn"}


@pytest.fixture(scope="module")
def reference(semantic_onnx):
    """ONNX Runtime's logits for two synthetic frames, and the letterboxed inputs."""
    ort = open_backend(semantic_onnx, "onnxruntime", device="cpu")
    xs = [preprocess(synthetic.generate(i, size=(72, 96)).image, ort.meta, np.float32)[0] for i in range(2)]
    name = ort.input_specs[0].name
    return ort, xs, [ort.infer({name: x}) for x in xs]


def _artefact(name: str, semantic_ckpt: Path, semantic_onnx: Path, tmp_path_factory) -> Path:
    if name == "onnxruntime":
        return semantic_onnx
    if name == "torch":
        return semantic_ckpt
    if name not in EXPORTS:
        pytest.skip(f"no artefact builder for backend {name!r}: add one to EXPORTS in {Path(__file__).name}")
    fmt, out_name = EXPORTS[name]
    out = tmp_path_factory.mktemp(f"conformance_{name}") / out_name
    rc = main(["export", str(semantic_onnx), "--format", fmt, "--out", str(out), "--val-images", "2"])
    assert rc == 0, f"edgeseg export --format {fmt} failed"
    return out


def _model_facts(meta) -> dict:
    """The ModelMeta without the provenance each export adds (extra["export"])."""
    d = meta.to_dict()
    d["extra"] = {k: v for k, v in d.get("extra", {}).items() if k != "export"}
    return d


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n
                                  for n in list_backends()])
def test_backend_conformance(name, semantic_ckpt, semantic_onnx, reference, tmp_path_factory):
    if not available_backends()[name]:
        pytest.skip(f"backend {name!r} is not installed here")
    ort, xs, want = reference
    backend = open_backend(_artefact(name, semantic_ckpt, semantic_onnx, tmp_path_factory), name, device="cpu")

    assert backend.name == name and isinstance(backend.provider, str) and backend.device.startswith("cpu")
    assert backend.meta is not None and _model_facts(backend.meta) == _model_facts(ort.meta)
    assert [s.name for s in backend.input_specs] == [s.name for s in ort.input_specs]
    assert [s.name for s in backend.output_specs] == [s.name for s in ort.output_specs]
    json.dumps(backend.describe())

    in_name = backend.input_specs[0].name
    for x, ref in zip(xs, want):
        got = backend.infer({in_name: x})
        assert set(got) == set(ref)
        for k, r in ref.items():
            g = np.asarray(got[k])
            assert g.shape == r.shape and g.dtype == np.float32
            scale = max(float(np.abs(r).max()), 1.0)
            assert float(np.abs(g - r).max()) <= 1e-2 * scale, f"{name} output {k!r} differs from ONNX Runtime"
            assert (g[0].argmax(0) == r[0].argmax(0)).mean() > 0.98

    with pytest.raises(BackendError, match="does not take"):
        open_backend(backend.path, name, no_such_option=1)
