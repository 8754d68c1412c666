"""`edgeseg batch`: input expansion, the in-process runner, and a real local Ray (one 2-CPU cluster
for the module): outputs equal to `edgeseg run`, a corrupt input among good ones, a rerun that
skips, a worker killed mid-recording."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from edgeseg.batch import BatchSettings, expand_inputs, run_batch
from edgeseg.batch.worker import EXIT_AFTER_FRAMES_ENV, STAGING
from edgeseg.cli import main
from edgeseg.errors import EdgesegError, InputFileError

FRAMES = 10
SIZE = (64, 96)  # height, width
TIMING_KEYS = {"t_capture", "time_unix", "age_ms", "timings_ms"}


def _write_video(path: Path, seed: int, n: int = FRAMES) -> Path:
    import cv2

    from edgeseg.data.synthetic import generate

    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (SIZE[1], SIZE[0]))
    for i in range(n):
        w.write(generate(seed * 100 + i, size=SIZE).image)
    w.release()
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    """Three tiny videos, a folder of four images and a corrupt .mp4."""
    import cv2

    from edgeseg.data.synthetic import generate

    root = tmp_path_factory.mktemp("recordings")
    out = {f"rec{k}": _write_video(root / f"rec{k}.avi", k) for k in range(3)}
    (root / "frames").mkdir()
    for i in range(4):
        cv2.imwrite(str(root / "frames" / f"f{i}.png"), generate(900 + i, size=SIZE).image)
    out["frames"] = root / "frames"
    (root / "bad.mp4").write_bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    out["bad"] = root / "bad.mp4"
    return out


@pytest.fixture(scope="module")
def reference(data, tmp_path_factory) -> dict[str, list[dict]]:
    """What `edgeseg run --json` writes per recording (timing fields dropped)."""
    ref = {}
    out = tmp_path_factory.mktemp("reference")
    for name in ("rec0", "rec1", "rec2", "frames"):
        assert main(["run", "--source", str(data[name]), "--json", str(out / f"{name}.jsonl"), "--threads", "1",
                     "--no-hud", "--quiet"]) == 0
        ref[name] = _content(out / f"{name}.jsonl")
    return ref


def _content(path: Path) -> list[dict]:
    lines = path.read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in TIMING_KEYS} for line in lines]


def _summary(out: Path) -> dict:
    return json.loads((out / "summary.json").read_text())


def _statuses(summary: dict) -> dict[str, str]:
    return {e["name"]: e["status"] for e in summary["recordings"]}


def _video_frames(path: Path) -> int:
    import cv2

    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    return n


def _check_outputs(out: Path, reference: dict, names) -> None:
    for name in names:
        assert _content(out / name / "results.jsonl") == reference[name], name
        assert _video_frames(out / name / "overlay.mp4") == len(reference[name])
        stats = json.loads((out / name / "stats.json").read_text())
        assert stats["frames"] == len(reference[name]) and stats["batch"]["name"] == name
    assert not (out / STAGING).exists(), "staging folders left behind"


# ----------------------------------------------------------------------------- inputs (no Ray)
def test_expand_inputs(data, tmp_path, monkeypatch):
    root = data["rec0"].parent
    (tmp_path / "a").mkdir()
    _write_video(tmp_path / "a" / "rec0.avi", 7, n=2)  # same stem as data["rec0"]: names must differ
    (tmp_path / "list.txt").write_text(f"# drives\n\n{root}/rec1.avi\n  a/rec0.avi  \nmissing.mp4\n")
    monkeypatch.chdir(tmp_path)
    recs = expand_inputs([str(root / "rec*.avi"), "list.txt", str(data["frames"]), str(root / "rec2.avi"),
                          str(data["frames"] / "*.png")])
    specs = [r.spec for r in recs]
    assert specs[:3] == [str(root / f"rec{k}.avi") for k in range(3)]  # rec1 and rec2 listed again: once
    assert specs[3] == str(tmp_path / "a" / "rec0.avi") and specs[4] == str(tmp_path / "missing.mp4")
    assert specs[5] == str(data["frames"]) and specs[6] == str(data["frames"] / "*.png")
    names = [r.name for r in recs]
    assert len(set(names)) == len(names) and names[1:3] == ["rec1", "rec2"] and names[4] == "missing"
    assert names[0].startswith("rec0-") and names[3].startswith("rec0-")
    assert recs[4].missing and not any(r.missing for r in recs[:4])
    # a folder of videos is each of its videos; a fingerprint follows the file's content
    folder = expand_inputs([str(tmp_path / "a")])
    assert [r.spec for r in folder] == [str(tmp_path / "a" / "rec0.avi")]
    before = folder[0].fingerprint
    _write_video(tmp_path / "a" / "rec0.avi", 8, n=3)
    assert expand_inputs([str(tmp_path / "a")])[0].fingerprint != before
    with pytest.raises(InputFileError, match="matches nothing"):
        expand_inputs([str(tmp_path / "*.nothing")])


def test_imports_stay_lazy():
    import subprocess

    code = ("import sys, edgeseg.cli, edgeseg.batch, edgeseg.integrations.ray; "
            "print(sorted(m for m in ('ray', 'torch') if m in sys.modules))")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() \
        == "[]"


def test_sequential_without_ray(data, reference, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError, as without the extra
    out = tmp_path / "out"
    rc = main(["batch", "default", str(data["rec0"]), str(data["frames"]), str(data["bad"]),
               "rtsp://127.0.0.1:9/cam1", "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 1 and "Ray is not installed" in err and "bad failed: OpenCV cannot open" in err
    assert "cam1 failed: rtsp://127.0.0.1:9/cam1 is a live source" in err
    s = _summary(out)
    assert s["runner"] == "sequential"
    assert _statuses(s) == {"rec0": "done", "frames": "done", "bad": "failed", "cam1": "failed"}
    _check_outputs(out, reference, ["rec0", "frames"])
    with pytest.raises(EdgesegError, match="Ray is not installed"):
        run_batch(BatchSettings(), [str(data["rec0"])], tmp_path / "o2", use_ray=True)


def test_instance_model_writes_rle_masks_like_run(data, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    out = tmp_path / "out"
    assert main(["batch", "default", "--task", "instance", str(data["rec2"]), "--out", str(out), "--quiet"]) == 0
    assert main(["run", "--task", "instance", "--source", str(data["rec2"]), "--json", str(tmp_path / "r.jsonl"),
                 "--threads", "1", "--no-hud", "--quiet"]) == 0
    got = _content(out / "rec2" / "results.jsonl")
    assert got == _content(tmp_path / "r.jsonl") and len(got) == FRAMES
    assert any(d["rle"]["size"] == list(SIZE) for line in got for d in line["detections"])


# ----------------------------------------------------------------------------- real local Ray
@pytest.fixture(scope="module")
def ray_cluster():
    import signal

    ray = pytest.importorskip("ray")
    if ray.is_initialized():
        ray.shutdown()
    from edgeseg.integrations.ray import start_local_ray

    sigterm = signal.getsignal(signal.SIGTERM)
    start_local_ray(2)  # no dashboard, 128 MiB object store
    yield ray
    ray.shutdown()
    signal.signal(signal.SIGTERM, sigterm)  # ray.init installs its own


def test_ray_outputs_equal_run_and_corrupt_input_fails(ray_cluster, data, reference, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["batch", "default", str(data["rec0"]), str(data["rec1"]), str(data["bad"]), str(data["rec2"]),
            str(data["frames"]), "--out", str(out), "--workers", "2"]
    assert main(args) == 1
    s = _summary(out)
    assert s["runner"] == "ray" and s["workers"] == 2 and s["threads"]["ort_threads"] == 1
    assert _statuses(s) == {"rec0": "done", "rec1": "done", "bad": "failed", "rec2": "done", "frames": "done"}
    bad = next(e for e in s["recordings"] if e["name"] == "bad")
    assert "cannot open" in bad["error"] and not (out / "bad").exists()
    assert all(e["frames"] == len(reference[e["name"]]) and e["fps"] > 0 for e in s["recordings"] if e["name"] != "bad")
    _check_outputs(out, reference, ["rec0", "rec1", "rec2", "frames"])
    capsys.readouterr()

    # a rerun skips what is done (outputs untouched) and tries the failed one again
    mtimes = {p: p.stat().st_mtime_ns for p in out.glob("*/*")}
    assert main(args) == 1
    s = _summary(out)
    assert _statuses(s) == {"rec0": "skipped", "rec1": "skipped", "bad": "failed", "rec2": "skipped",
                            "frames": "skipped"}
    assert {p: p.stat().st_mtime_ns for p in out.glob("*/*")} == mtimes
    assert "4 of 5 recording(s) already done" in capsys.readouterr().err


def test_rerun_redoes_changed_inputs_and_options(data, reference, tmp_path):
    rec = tmp_path / "rec0.avi"
    rec.write_bytes(data["rec0"].read_bytes())
    out = tmp_path / "out"
    settings = BatchSettings(video=None)
    s = run_batch(settings, [str(rec), str(data["rec1"])], out, use_ray=False, progress=False)
    assert _statuses(s) == {"rec0": "done", "rec1": "done"} and not (out / "rec0" / "overlay.mp4").exists()
    assert _content(out / "rec0" / "results.jsonl") == reference["rec0"]
    # a re-recorded input is redone, the other skipped
    _write_video(rec, 5, n=4)
    s = run_batch(settings, [str(rec), str(data["rec1"])], out, use_ray=False, progress=False)
    assert _statuses(s) == {"rec0": "done", "rec1": "skipped"}
    assert len(_content(out / "rec0" / "results.jsonl")) == 4
    # other options: everything redone
    s = run_batch(BatchSettings(video=None, max_frames=2), [str(rec), str(data["rec1"])], out, use_ray=False,
                  progress=False)
    assert _statuses(s) == {"rec0": "done", "rec1": "done"}
    assert _content(out / "rec1" / "results.jsonl") == reference["rec1"][:2]


def test_ray_worker_killed_mid_recording_is_redone(ray_cluster, data, reference, tmp_path):
    out = tmp_path / "out"
    env = {"env_vars": {EXIT_AFTER_FRAMES_ENV: "3"}}  # a recording's first attempt dies after 3 frames
    s = run_batch(BatchSettings(), [str(data["rec1"])], out, use_ray=True, workers=1, runtime_env=env,
                  progress=False)
    assert _statuses(s) == {"rec1": "done"} and s["recordings"][0]["interrupted_attempts"] == 1
    _check_outputs(out, reference, ["rec1"])  # all frames, each once
    assert sorted(os.listdir(out)) == ["rec1", "summary.json"]


def test_ros2_bags_are_recordings(tmp_path, monkeypatch):
    pytest.importorskip("rosbags", reason="rosbags is not installed (pip install 'edgeseg[ros]')")
    from edgeseg.data.synthetic import generate
    from edgeseg.integrations.ros.bagio import write_image_bag

    monkeypatch.setitem(sys.modules, "ray", None)
    topic = "/camera/image_raw"
    bags = tmp_path / "bags"
    bags.mkdir()
    for k, storage in enumerate(("mcap", "sqlite3")):
        write_image_bag(bags / f"drive{k}", [generate(50 * k + i, size=SIZE).image for i in range(3 + k)],
                        topic=topic, fps=10, storage=storage)
    (bags / "notes").mkdir()  # neither a bag nor images: not a recording of the folder
    out = tmp_path / "out"
    assert [r.name for r in expand_inputs([str(bags)])] == ["drive0", "drive1"]
    assert main(["batch", "default", str(bags), "--topic", topic, "--out", str(out), "--quiet"]) == 0
    for k in range(2):
        ref = tmp_path / f"ref{k}.jsonl"
        assert main(["run", "--source", str(bags / f"drive{k}"), "--topic", topic, "--json", str(ref),
                     "--threads", "1", "--no-hud", "--quiet"]) == 0
        assert _content(out / f"drive{k}" / "results.jsonl") == _content(ref)
        assert len(_content(ref)) == 3 + k


@pytest.mark.slow
def test_ray_workers_that_cannot_start_stop_the_batch(ray_cluster, data, tmp_path):
    out = tmp_path / "out"
    env = {"env_vars": {EXIT_AFTER_FRAMES_ENV: "soon"}}  # the workers' constructor refuses it
    with pytest.raises(EdgesegError, match=f"Ray workers cannot start: .*{EXIT_AFTER_FRAMES_ENV}='soon'"):
        run_batch(BatchSettings(), [str(data["rec0"])], out, use_ray=True, workers=1, runtime_env=env,
                  progress=False)
    assert _statuses(_summary(out)) == {"rec0": "pending"} and not (out / "rec0").exists()


@pytest.mark.parametrize("sig", ["SIGTERM", pytest.param("SIGINT", marks=pytest.mark.slow)])
def test_interrupted_batch_keeps_finished_recordings_and_leaves_no_partial_output(data, tmp_path, sig):
    import signal
    import subprocess
    import time

    long = _write_video(tmp_path / "long.avi", 9, n=300)
    out = tmp_path / "out"
    run_batch(BatchSettings(), [str(data["rec0"])], out, use_ray=False, progress=False)  # done before
    code = ("import sys; sys.modules['ray'] = None; from edgeseg.cli import main; "
            f"sys.exit(main(['batch', 'default', {str(data['rec0'])!r}, {str(long)!r}, '--out', {str(out)!r}, "
            "'--quiet']))")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not any(p.name.startswith("long.partial-") for p in (out / STAGING).glob("*")):  # long is underway
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.02)
    proc.send_signal(getattr(signal, sig))
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    s = _summary(out)
    assert _statuses(s) == {"rec0": "skipped", "long": "pending"} and not s["finished"]
    assert sorted(os.listdir(out)) == ["rec0", "summary.json"]
