"""`edgeseg run` end to end, in a subprocess as a user runs it, and its user errors."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edgeseg.cli import main
from edgeseg.pipeline import VideoFileSource, gui_problem

ASSET = Path(__file__).resolve().parents[1] / "edgeseg" / "assets" / "semantic_default.onnx"
SMALL = ("--width", "96", "--height", "64")


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    return subprocess.run([sys.executable, "-m", "edgeseg", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


def _check_outputs(tmp_path: Path, n: int) -> None:
    stats = json.loads((tmp_path / "s.json").read_text())
    assert stats["frames"] == n and stats["stopped"] in ("frame limit", "terminated")
    for key in ("fps", "wall_s", "dropped", "stages_ms", "source", "threads", "model", "queue_high_water"):
        assert key in stats, key
    for stage in ("pre", "infer", "post", "render", "sink", "frame_age", "end_to_end"):
        assert {"p50", "p90", "p99"} <= set(stats["stages_ms"][stage]), stage
    lines = (tmp_path / "f.jsonl").read_text().splitlines()
    assert len(lines) == n
    rec = json.loads(lines[-1])
    assert {"index", "t_capture", "age_ms", "timings_ms", "histogram"} <= set(rec)
    with VideoFileSource(tmp_path / "o.mp4") as src:
        frames = list(src)
    assert len(frames) == n and frames[0].image.shape == (64, 96, 3)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files left


def test_run_synthetic_writes_stats_jsonl_and_video(tiny_onnx, tmp_path):
    r = run_cli("run", "--model", str(tiny_onnx), "--source", "synthetic", "--frames", "10", *SMALL,
                "--stats", str(tmp_path / "s.json"), "--json", str(tmp_path / "f.jsonl"),
                "--save", str(tmp_path / "o.mp4"), "--smooth")
    assert r.returncode == 0, r.stderr
    assert "p99" in r.stdout and "throughput" in r.stdout and "stopped: frame limit" in r.stdout
    _check_outputs(tmp_path, 10)


def test_run_sigterm_stops_cleanly(tiny_onnx, tmp_path):
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgeseg", "run", "--model", str(tiny_onnx), "--source", "synthetic:20", *SMALL,
         "--stats", str(tmp_path / "s.json"), "--json", str(tmp_path / "f.jsonl"), "--save", str(tmp_path / "o.mp4")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert "Ctrl-C to stop" in proc.stderr.readline()  # the pipeline is starting
        partial = tmp_path / ".f.jsonl.partial"  # the JSONL sink writes here until it closes
        deadline = time.perf_counter() + 30  # wait for the first result, however slow the machine
        while time.perf_counter() < deadline and not (partial.exists() and partial.stat().st_size > 0):
            time.sleep(0.05)
        time.sleep(0.3)
        t0 = time.perf_counter()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
        assert time.perf_counter() - t0 < 2.5
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "stopped: terminated" in out
    n = json.loads((tmp_path / "s.json").read_text())["frames"]
    assert n > 0
    _check_outputs(tmp_path, n)


def test_run_user_errors(tiny_onnx, tmp_path, capsys):
    model = ["--model", str(tiny_onnx)]
    assert main(["run", *model]) == 2
    assert "give exactly one input" in capsys.readouterr().err
    assert main(["run", *model, "--camera", "57"]) == 2
    err = capsys.readouterr().err
    assert "camera 57 cannot be opened" in err and "--camera 1" in err
    assert main(["run", *model, "--source", str(tmp_path / "missing.mp4")]) == 2
    assert "not found" in capsys.readouterr().err
    if gui_problem() is not None:
        assert main(["run", *model, "--source", "synthetic", "--show", "--frames", "1"]) == 2
        assert "--show cannot open a window" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(not ASSET.exists(), reason="no default model packaged in this tree")
def test_run_default_model(tmp_path):
    r = run_cli("run", "--source", "synthetic", "--frames", "5", *SMALL, "--stats", str(tmp_path / "s.json"))
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "s.json").read_text())["frames"] == 5
