"""Shared fixtures: tiny models per task, built once per test session (see tests/factories.py)."""
from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A liteseg_t trained for 3 iterations at 64 px through the CLI: the run directory
    (``best/`` and ``last/`` checkpoints, history.json, curve.png)."""
    pytest.importorskip("torch")
    from edgeseg.cli import main

    out = tmp_path_factory.mktemp("tiny_run")
    rc = main(["train", "--model", "liteseg_t", "--data", "synthetic:16", "--imgsz", "64", "--epochs", "1",
               "--batch-size", "4", "--iters-per-epoch", "3", "--val-limit", "4", "--workers", "0",
               "--loss", "ce", "--out", str(out)])
    assert rc == 0
    return out


@pytest.fixture(scope="session")
def tiny_onnx(tiny_checkpoint) -> Path:
    """``tiny_checkpoint`` exported to ONNX with edgeseg metadata (64x64 input)."""
    from edgeseg.cli import main

    out = tiny_checkpoint / "model.onnx"
    assert main(["export", str(tiny_checkpoint / "best"), "--format", "onnx", "--out", str(out),
                 "--min-agreement", "0.99"]) == 0
    return out


def _build(tmp_path_factory, what: str, **kw) -> Path:
    pytest.importorskip("torch")
    import factories

    return getattr(factories, f"{what}_checkpoint")(tmp_path_factory.mktemp(what) / "ckpt", **kw)


def _export(ckpt: Path, tmp_path_factory) -> Path:
    from factories import onnx_export

    return onnx_export(ckpt, tmp_path_factory.mktemp(f"{ckpt.parent.name}_onnx") / "model.onnx")


@pytest.fixture(scope="session")
def semantic_ckpt(tmp_path_factory) -> Path:
    """liteseg_t at 64x64 with varied weights (factories.semantic_checkpoint); read-only."""
    return _build(tmp_path_factory, "semantic")


@pytest.fixture(scope="session")
def instance_ckpt(tmp_path_factory) -> Path:
    """yoloseg_n at 64x64 with many detections (factories.instance_checkpoint); read-only."""
    return _build(tmp_path_factory, "instance")


@pytest.fixture(scope="session")
def semantic_onnx(semantic_ckpt, tmp_path_factory) -> Path:
    """``semantic_ckpt`` exported to ONNX (static 64x64); read-only."""
    return _export(semantic_ckpt, tmp_path_factory)


@pytest.fixture(scope="session")
def instance_onnx(instance_ckpt, tmp_path_factory) -> Path:
    """``instance_ckpt`` exported to ONNX (static 64x64); read-only."""
    return _export(instance_ckpt, tmp_path_factory)
