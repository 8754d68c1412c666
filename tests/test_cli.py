"""The command line end to end: train -> export -> predict -> eval -> demo, and bad input."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from edgeseg._io import write_image
from edgeseg.cli import main
from edgeseg.data import synthetic

ASSET = Path(__file__).resolve().parents[1] / "edgeseg" / "assets" / "semantic_default.onnx"


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``python -m edgeseg`` in a subprocess (what a user types), capturing output."""
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    return subprocess.run([sys.executable, "-m", "edgeseg", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


@pytest.fixture(scope="module")
def trained(tiny_checkpoint) -> Path:
    """A tiny training run through the CLI (tests/conftest.py): the run directory."""
    return tiny_checkpoint


@pytest.fixture(scope="module")
def exported(tiny_onnx) -> Path:
    """That run exported through the CLI."""
    return tiny_onnx


def test_help_teaches():
    r = run_cli("--help")
    assert r.returncode == 0 and "examples:" in r.stdout
    for cmd in ("train", "export", "predict", "eval", "demo", "info"):
        assert cmd in r.stdout
    r = run_cli("train", "--help")
    assert r.returncode == 0 and "--epochs" in r.stdout and "default" in r.stdout


def test_train_writes_checkpoints_history_and_curve(trained):
    for name in ("best/model.safetensors", "best/config.json", "last/config.json", "history.json", "curve.png"):
        assert (trained / name).is_file(), name
    assert len(json.loads((trained / "history.json").read_text())) == 1


def test_export_writes_model_and_parity_report(exported):
    assert exported.is_file()
    report = json.loads(exported.with_suffix(".parity.json").read_text())
    assert "agreement" in json.dumps(report)


def test_predict_folder_writes_overlays_and_labels(exported, tmp_path):
    src = tmp_path / "imgs"
    for i in range(3):
        write_image(src / f"im{i}.jpg", synthetic.generate(i, seed=5, size=(90, 120)).image)
    out = tmp_path / "preds"
    assert main(["predict", str(exported), str(src), "--out", str(out), "--quiet"]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted([f"im{i}_overlay.jpg" for i in range(3)] + [f"im{i}_labels.png" for i in range(3)])
    import cv2

    labels = cv2.imread(str(out / "im0_labels.png"), cv2.IMREAD_UNCHANGED)
    assert labels.shape == (90, 120) and labels.max() < len(synthetic.CLASSES)


def test_eval_reports_miou_json(exported, tmp_path, capsys):
    rep = tmp_path / "eval.json"
    assert main(["eval", str(exported), "--data", "synthetic:4", "--split", "val", "--json", str(rep), "--quiet"]) == 0
    report = json.loads(rep.read_text())
    assert 0.0 <= report["miou"] <= 1.0 and report["images"] == 4
    assert set(report["per_class_iou"]) == set(synthetic.CLASSES)
    assert "mIoU" in capsys.readouterr().out


def test_demo_with_given_model(exported, tmp_path):
    out = tmp_path / "demo"
    assert main(["demo", "--model", str(exported), "--out", str(out), "--frames", "12", "--size", "96x128",
                 "--quiet"]) == 0
    summary = json.loads((out / "latency.json").read_text())
    assert summary["frames"] == 12
    for stage in ("pre", "infer", "post", "render", "end_to_end"):
        assert {"p50", "p90", "p99"} <= set(summary["stages_ms"][stage])
    import cv2

    cap = cv2.VideoCapture(str(out / "overlay.mp4"))
    assert cap.isOpened() and int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 12
    cap.release()


@pytest.mark.skipif(not ASSET.exists(), reason="shipped model not built yet (tools/train_default_model.py)")
def test_demo_with_shipped_model_needs_no_torch(tmp_path):
    code = ("import sys; from edgeseg.cli import main; "
            f"rc = main(['demo', '--out', {str(tmp_path)!r}, '--frames', '10', '--quiet']); "
            "assert 'torch' not in sys.modules, 'demo imported torch'; sys.exit(rc)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "overlay.mp4").is_file() and (tmp_path / "latency.json").is_file()


@pytest.mark.parametrize(
    "args, expect",
    [
        (["predict", "missing.onnx", "x.jpg"], "not found"),
        (["train", "--model", "nope", "--data", "synthetic:4", "--epochs", "1"], "liteseg_t"),
        (["train", "--data", "bogus:1"], "valid forms"),
        (["eval", "missing.onnx"], "not found"),
        (["export", "no_such_ckpt_dir"], "no_such_ckpt_dir"),
    ],
)
def test_user_errors_are_one_clear_line(args, expect, tmp_path):
    r = subprocess.run([sys.executable, "-m", "edgeseg", *args], capture_output=True, text=True, timeout=120,
                       cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr and expect in r.stderr
    assert list(tmp_path.iterdir()) == []  # nothing half-made


def test_corrupt_image_is_reported_without_traceback(exported, tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not really a jpeg")
    r = run_cli("predict", str(exported), str(bad), "--out", str(tmp_path / "o"), "--quiet")
    assert r.returncode == 2 and "Traceback" not in r.stderr and "cannot decode" in r.stderr
    assert not (tmp_path / "o").exists() or list((tmp_path / "o").iterdir()) == []


def test_bad_size_flag_is_an_argparse_error():
    r = run_cli("demo", "--size", "abc")
    assert r.returncode == 2 and "size must be" in r.stderr
