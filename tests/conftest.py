"""Shared fixtures: one tiny exported ONNX model per test session (built once, seconds)."""
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
