"""`edgeseg bench`, benchmarks/bench_pipeline.py and tools/soak.py in tiny configurations.

No timing assertions: these check that the measurements run end to end and write complete,
well-formed outputs (JSON keys, markdown tables, PNG), and that user mistakes exit 2 clearly.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from edgeseg.bench import SEQUENTIAL_STAGES, ReplaySource, cpu_model, resolve_targets, run_bench, to_markdown
from edgeseg.cli import main
from edgeseg.errors import BackendError, InputFileError

ROOT = Path(__file__).resolve().parents[1]
SIZE = (48, 64)
FAST = dict(frame_size=SIZE, runs=4, warmup=1, pipeline_frames=4, progress=False)


def _run_script(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout, env=env,
                          cwd=ROOT)


def _check_row(row: dict, backend: str, runs: int, pipeline: bool = True) -> None:
    assert row["backend"] == backend and row["provider"] and row["device"]
    assert row["task"] == "semantic" and len(row["input_size"]) == 2
    seq = row["sequential"]
    assert seq["runs"] == runs and seq["fps"] > 0
    assert list(seq["stages_ms"]) == list(SEQUENTIAL_STAGES)
    for stage, q in seq["stages_ms"].items():
        assert set(q) == {"mean", "p50", "p90", "p99"}, stage
        assert 0 <= q["p50"] <= q["p90"] <= q["p99"], stage
    assert all(len(row["samples_ms"][k]) == runs for k in SEQUENTIAL_STAGES)
    if pipeline:
        p = row["pipeline"]
        assert p["frames"] == 4 and p["fps"] > 0 and p["stopped"] == "end of stream"
        assert p["slowest_stage"] in p["stages_ms"] and p["bound_fps"] > 0 and p["efficiency"] > 0
        assert p["speedup_vs_sequential"] > 0
    else:
        assert "pipeline" not in row


def test_bench_onnx_writes_json_markdown_and_png(tiny_onnx, tmp_path):
    report = run_bench([tiny_onnx], out_dir=tmp_path / "b", **FAST)
    data = json.loads((tmp_path / "b" / "bench.json").read_text())
    assert data["schema"] == 1 and data["skipped"] == [] and len(data["results"]) == 1
    _check_row(data["results"][0], "onnxruntime", runs=4)
    m = data["machine"]
    assert m["cpu"] == cpu_model() and m["cpu"] and m["cores"] >= 1
    assert {"edgeseg", "numpy", "opencv", "onnxruntime"} <= {k for k, v in m["versions"].items() if v}
    assert set(m["threads"]) == {"cores", "ort_threads", "cpp_threads"}
    assert data["settings"]["frame_size"] == list(SIZE) and data["settings"]["runs"] == 4
    assert data["files"] == report["files"]
    md = (tmp_path / "b" / "bench.md").read_text()
    assert md == to_markdown(report) + "\n"
    assert "| onnxruntime | CPUExecutionProvider |" in md and "| end_to_end |" in md and "efficiency" in md
    assert m["cpu"] in md
    if "png" in report["files"]:
        import cv2

        png = cv2.imread(report["files"]["png"])
        assert png is not None and png.shape[0] > 100 and png.shape[1] > 300
    else:
        pytest.importorskip("matplotlib")  # matplotlib present but no PNG would be a bug
    assert not [p for p in (tmp_path / "b").iterdir() if p.name.startswith(".")]  # no temp files left


def test_bench_all_runs_torch_for_a_checkpoint_dir_side_by_side(tiny_onnx, tiny_checkpoint, tmp_path):
    report = run_bench([tiny_onnx, tiny_checkpoint / "best"], backend="all", out_dir=tmp_path,
                       **(FAST | dict(runs=2, warmup=0, pipeline_frames=0)))
    rows = report["results"]
    assert [(Path(r["model"]).name, r["backend"]) for r in rows] == [("model.onnx", "onnxruntime"),
                                                                     ("best", "torch")]
    for r in rows:
        _check_row(r, r["backend"], runs=2, pipeline=False)
    assert report["machine"]["versions"].get("torch")  # torch ran, so its version is listed
    md = (tmp_path / "bench.md").read_text()
    assert "| model.onnx / onnxruntime |" in md and "| best / torch |" in md


def test_backend_all_is_discovered_from_the_registry(tiny_onnx, monkeypatch):
    """A backend registered for .onnx takes part in "all" without any change in bench.py;
    one that is registered but not installed is reported as skipped with its install hint."""
    from edgeseg.runtime.backends import BACKENDS

    class Missing:
        suffixes = (".onnx",)
        install_hint = "pip install imaginary-runtime"

        @classmethod
        def is_available(cls) -> bool:
            return False

    class Present(Missing):
        @classmethod
        def is_available(cls) -> bool:
            return True

    monkeypatch.setitem(BACKENDS, "zz_missing", Missing)
    monkeypatch.setitem(BACKENDS, "zz_present", Present)
    targets, skipped = resolve_targets([tiny_onnx], "all")
    names = [t.backend for t in targets]
    assert "onnxruntime" in names and "zz_present" in names and "torch" not in names
    assert {"model": str(tiny_onnx), "backend": "zz_missing",
            "reason": "not installed: pip install imaginary-runtime"} in skipped
    assert "zz_missing" not in names
    assert [t.backend for t in resolve_targets([tiny_onnx], "auto")[0]] == ["onnxruntime"]
    assert [t.backend for t in resolve_targets([tiny_onnx], "onnxruntime,zz_present")[0]] == ["onnxruntime",
                                                                                                "zz_present"]
    with pytest.raises(BackendError, match="unknown backend 'nope'.*onnxruntime"):
        resolve_targets([tiny_onnx], "nope")
    with pytest.raises(BackendError, match="cannot be combined"):
        resolve_targets([tiny_onnx], "all,onnxruntime")
    with pytest.raises(InputFileError, match="model not found"):
        resolve_targets(["missing.onnx"], "all")


def test_bench_onnx_does_not_import_torch(tiny_onnx):
    code = ("import sys; from edgeseg.bench import run_bench; "
            f"r = run_bench([{str(tiny_onnx)!r}], frame_size=(32, 32), runs=2, warmup=0, pipeline_frames=2, "
            "out_dir=None, progress=False); "
            "print(r['results'][0]['backend'], 'torch' in sys.modules, 'torch' in r['machine']['versions'])")
    r = _run_script("-c", code)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["onnxruntime", "False", "False"]


def test_cli_bench_prints_machine_and_tables(tiny_onnx, tmp_path, capsys):
    out = tmp_path / "o"
    assert main(["bench", str(tiny_onnx), "--imgsz", "48x64", "--runs", "3", "--warmup", "1",
                 "--pipeline-frames", "3", "--out", str(out), "--quiet"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("machine: ") and "versions: edgeseg" in text and "onnxruntime" in text
    assert "| end_to_end |" in text and "## Throughput (FPS)" in text
    assert f"wrote {out / 'bench.json'}" in text
    assert json.loads((out / "bench.json").read_text())["settings"]["frame_size"] == [48, 64]


def test_cli_bench_user_errors_exit_2_and_write_nothing(tiny_onnx, tmp_path, capsys):
    out = ["--out", str(tmp_path / "o"), "--quiet"]
    with pytest.raises(SystemExit) as e:
        main(["bench", str(tiny_onnx), "--imgsz", "720x", *out])
    assert e.value.code == 2 and "size must be N or HxW" in capsys.readouterr().err
    assert main(["bench", str(tiny_onnx), "--backend", "tensorflow", *out]) == 2
    err = capsys.readouterr().err
    assert "unknown backend 'tensorflow'" in err and "all" in err and "onnxruntime" in err
    assert main(["bench", str(tmp_path / "missing.onnx"), *out]) == 2
    assert "model not found" in capsys.readouterr().err
    assert main(["bench", str(tiny_onnx), "--runs", "0", *out]) == 2
    assert "--runs" in capsys.readouterr().err
    (tmp_path / "file").write_text("x")
    assert main(["bench", str(tiny_onnx), "--out", str(tmp_path / "file"), "--quiet"]) == 2
    assert "is not a folder" in capsys.readouterr().err
    (tmp_path / "file").unlink()
    assert list(tmp_path.iterdir()) == []


def test_replay_source_delivers_fresh_copies_at_its_rate():
    frames = [np.full((8, 8, 3), i, np.uint8) for i in range(3)]
    src = ReplaySource(frames, fps=200.0, read_timeout=1.0, log=lambda m: None)
    src.start()
    try:
        got = [src.get(1.0) for _ in range(3)]
        time.sleep(0.1)
        newest = src.get(1.0)
    finally:
        src.close()
    assert all(f is not None for f in got)
    assert all(all(f.image is not fr for fr in frames) and int(f.image[0, 0, 0]) in (0, 1, 2)
               for f in got + [newest])  # fresh copies of the replayed frames
    assert newest.index > got[-1].index  # a live source hands out the newest frame


def test_soak_script_tiny_run(tiny_onnx, tmp_path):
    report = tmp_path / "soak.json"
    r = _run_script("tools/soak.py", "--frames", "30", "--model", str(tiny_onnx), "--size", "48x64",
                    "--fps", "200", "--sample-every", "5", "--json", str(report), "--keep", str(tmp_path / "k"),
                    "--quiet")
    assert r.returncode == 0, r.stderr
    assert "RSS after warm-up" in r.stdout and "threads after warm-up" in r.stdout
    data = json.loads(report.read_text())
    assert data["frames"] == 30 and data["warmup_frames"] == 3
    assert data["outputs"] == {"video_frames": 30, "jsonl_lines": 30}
    assert {"warm", "final", "growth", "max_growth", "slope_per_1k_frames"} <= set(data["rss_mb"])
    assert set(data["threads"]) == {"min", "max", "constant"} and data["threads"]["min"] >= 2
    assert [s["frame"] for s in data["samples"]] == [0, 3, 5, 10, 15, 20, 25, 30]
    assert all(s["rss_mb"] > 10 for s in data["samples"])
    assert set(data["targets"]) == {"rss_growth_mb_below", "rss_ok", "threads_constant"}
    assert sorted(p.name for p in (tmp_path / "k").iterdir()) == ["soak.jsonl", "soak.mp4"]


def test_bench_pipeline_script_quick(tiny_onnx, tmp_path):
    out = tmp_path / "bp.json"
    r = _run_script("benchmarks/bench_pipeline.py", "--quick", "--model", str(tiny_onnx), "--size", "48x64",
                    "--json", str(out))
    assert r.returncode == 0, r.stderr
    for part in ("(a) pipelined", "(b) naive OpenCV loop", "(c) live 60 FPS source"):
        assert part in r.stdout, part
    data = json.loads(out.read_text())
    a, b, c = data["throughput"], data["peer"], data["live"]
    assert a["fps"] > 0 and a["efficiency"] > 0 and a["pipeline"]["slowest_stage"]
    assert b["peer"]["frames"] == b["ours"]["frames"] == 30 and b["ratio"] > 0
    assert b["frames_written"] == {"peer": 30, "ours": 30}
    assert c["processed"] == 8 and c["accounting_ok"] and c["left_in_slot"] in (0, 1)
    assert c["produced"] - c["processed"] == c["dropped_stale"] + c["dropped_superseded"] + c["left_in_slot"]
    assert c["dropped_stale"] > 0  # 60 FPS in, ~10 FPS out


def test_bench_backends_script_quick(tmp_path):
    """The deployment-target benchmark end to end on the shipped model: every variant exported
    through the real exporters and gated, timed (2 threads: the block-wise timing) and scored."""
    pytest.importorskip("onnxruntime.quantization")
    out = tmp_path / "bb.json"
    r = _run_script("benchmarks/bench_backends.py", "--quick", "--threads", "2", "--runs", "6",
                    "--val-images", "2", "--calib-images", "2", "--json", str(out),
                    "--variants", "ort-int8,ort-int8-all,openvino-fp32,openvino-fp16", timeout=300)
    assert r.returncode == 0, r.stderr
    assert "in blocks of 20" in r.stdout and "| ort-int8 |" in r.stdout
    data = json.loads(out.read_text())
    rows = {row["variant"]: row for row in data["rows"]}
    assert data["threads"] == 2 and {"ort-fp32", "ort-int8"} <= set(rows)
    for row in rows.values():
        if row.get("rejected"):
            continue
        assert row["runs"] == 6 and row["median_ms"] > 0 and row["images"] == 2
        assert 0.0 <= row["agreement_vs_fp32"] <= 1.0
    assert rows["ort-fp32"]["speedup_vs_ort_fp32"] == 1.0
