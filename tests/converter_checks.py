"""Checks shared by the tests of the exporters that convert through PyTorch (LiteRT through
litert-torch, ncnn through pnnx): both export the same tiny models (tests/factories.py) and are
held to the same standard."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

from edgeseg import load
from edgeseg.cli import main
from edgeseg.data import synthetic
from edgeseg.errors import BackendError
from edgeseg.runtime import SemanticPredictor
from edgeseg.runtime.backends import open_backend
from factories import instance_checkpoint, onnx_export

#: Gate settings that keep an export test quick.
FAST = dict(val_images=4, parity_images=2, verbose=False)


def export_with_cli(source: Path, fmt: str, out: Path) -> Path:
    """``edgeseg export SOURCE --format FMT --out OUT`` gated on 4 validation images, with one
    runtime thread; asserts that it succeeded. Returns ``out``."""
    assert main(["export", str(source), "--format", fmt, "--out", str(out), "--val-images", "4",
                 "--threads", "1"]) == 0
    return out


def assert_semantic_backend_matches_onnx_runtime(name: str, backend: Any, artefact: Path, onnx_path: Path,
                                                 wrong_size: str) -> None:
    """``backend`` (opened on ``artefact``, the tiny semantic model at 64x64) reports the model's
    NCHW specs and matches ONNX Runtime on raw logits; ``edgeseg.load`` runs ``artefact`` on the
    backend ``name`` with ONNX Runtime's labels at frame resolution; the backend refuses another
    input size (``wrong_size``: its message) and unknown options."""
    assert backend.input_specs[0].shape == (1, 3, 64, 64) and backend.output_specs[0].shape == (1, 7, 8, 8)
    x = np.random.default_rng(0).normal(size=(1, 3, 64, 64)).astype(np.float32)
    ref = open_backend(onnx_path).infer({"images": x})["logits"]
    got = backend.infer({"images": x})["logits"]
    assert got.shape == ref.shape and np.abs(got - ref).max() < 1e-3
    frame = synthetic.generate(5, size=(90, 130)).image
    p = load(artefact, threads=1)
    assert isinstance(p, SemanticPredictor) and p.backend_name == name
    assert (p(frame).labels == load(onnx_path)(frame).labels).mean() > 0.999
    with pytest.raises(BackendError, match=wrong_size):
        backend.infer({"images": np.zeros((1, 3, 32, 32), np.float32)})
    with pytest.raises(BackendError, match="does not take option"):
        open_backend(artefact, precision="f16")


def export_instance_model(export: Callable[..., Any], tmp_path: Path, out_name: str) -> tuple[Any, list[str]]:
    """The tiny single-stage instance model exported by ``export`` (e.g. ``export_litert``) to
    ``tmp_path/out_name``; asserts that it passed both gates, scored by mask AP. Returns the
    report and the model's output names in graph order."""
    from edgeseg.models import create_model

    ck = instance_checkpoint(tmp_path / "inst")
    rep = export(ck, tmp_path / out_name, **FAST)
    assert rep.passed and rep.gate.accuracy.metric == "mask AP" and rep.gate.parity.passed
    return rep, list(create_model("yoloseg_n", len(synthetic.CLASSES) - 1).output_names)


def assert_maskrcnn_refused(tmp_path: Path, capsys: Any, fmt: str, *args: str) -> None:
    """``edgeseg export MRCNN.onnx --format fmt *args`` fails (exit 2) naming RoiAlign, the op
    without an equivalent in the converter."""
    import torch

    from edgeseg.meta import ModelMeta
    from edgeseg.models import create_model, save_checkpoint

    torch.manual_seed(0)
    model = create_model("maskrcnn", len(synthetic.CLASSES) - 1).eval()
    meta = ModelMeta(task="instance", classes=list(synthetic.CLASSES[1:]), input_size=(64, 64), arch="maskrcnn",
                     output_stride=4, output_names=list(model.output_names), extra=dict(model.meta_extra()))
    ck = save_checkpoint(tmp_path / "mrcnn", model, meta)
    onnx_path = onnx_export(ck, tmp_path / "mrcnn.onnx")
    assert main(["export", str(onnx_path), "--format", fmt, *args, "--val-images", "1"]) == 2
    err = capsys.readouterr().err
    assert "RoiAlign" in err and "no equivalent" in err
