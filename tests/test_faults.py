"""Faults in the field, injected for real on this machine (loopback only, bounded time):

- a local HTTP video server killed (its live connections cut) and restarted mid-stream;
- a disk that fills during a run (a 1 MiB tmpfs where mounting is allowed, else RLIMIT_FSIZE);
- SIGINT / SIGTERM to ``edgeseg run`` under load;
- a flapping source (reads failing every few frames) over a long run: memory, threads, fds flat;
- one predictor shared by 8 threads.

Each test counts what it injected and what survived; FAULTS sums them for the record.
"""
from __future__ import annotations

import functools
import json
import http.server
import os
import resource
import signal
import socket
import socketserver
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

import edgeseg
from edgeseg.errors import EdgesegError
from edgeseg.pipeline import Pipeline
from edgeseg.pipeline.sources import open_source
from edgeseg.pipeline.sources.live import LiveSource

ROOT = Path(__file__).resolve().parent.parent
SIZE = (48, 64)  # h, w
LIVE = dict(read_timeout=1.0, reconnect_timeout=15.0, backoff=0.05, backoff_max=0.2)


@pytest.fixture(scope="module")
def semantic():
    return edgeseg.load(None, threads=1)


# ------------------------------------------------------------------------- stream server restart
class _Server:
    """A threaded HTTP file server on a fixed loopback port that can be killed mid-transfer (the
    listening socket and every open connection closed) and started again on the same port."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.port, self.srv = folder, 0, None
        self.conns: set[socket.socket] = set()
        self.kills = 0
        self.start()

    def start(self) -> None:
        conns = self.conns

        class Handler(http.server.SimpleHTTPRequestHandler):
            def setup(self) -> None:
                super().setup()
                conns.add(self.connection)

            def log_message(self, *args) -> None:
                pass

            def handle(self) -> None:
                try:
                    super().handle()
                except OSError:  # the connection was cut by kill()
                    pass

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self.srv = socketserver.ThreadingTCPServer(("127.0.0.1", self.port),
                                                   functools.partial(Handler, directory=str(self.folder)))
        self.srv.daemon_threads = True
        self.port = self.srv.server_address[1]
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def kill(self) -> None:
        self.srv.shutdown()
        self.srv.server_close()
        for c in list(self.conns):
            try:
                c.shutdown(socket.SHUT_RDWR)
                c.close()
            except OSError:
                pass
        self.conns.clear()
        self.kills += 1


def _video(path: Path, frames: int) -> Path:
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30, (SIZE[1], SIZE[0]))
    for t in range(frames):
        w.write(np.full((*SIZE, 3), (4 * t) % 256, np.uint8))
    w.release()
    return path


def test_stream_server_killed_and_restarted_mid_run(semantic, tmp_path):
    """Kill the server after 10 frames, keep it down 0.5 s, restart it: the source reconnects
    within its stated bound (the next attempt comes at most backoff_max after the server is back,
    plus the open), frames after it are processed, and every frame is either delivered or counted
    as dropped ("stale"), exactly."""
    _video(tmp_path / "cam.avi", 1500)
    server = _Server(tmp_path)
    log: list[str] = []
    src = open_source(f"http://127.0.0.1:{server.port}/cam.avi", **LIVE, log=log.append)
    delivered: list[int] = []
    t_up = None
    after = 0
    try:
        src.start()
        deadline = time.perf_counter() + 60
        while after < 10 and time.perf_counter() < deadline:
            frame = src.get(0.1)
            if frame is None or not hasattr(frame, "image"):
                continue
            delivered.append(frame.index)
            if len(delivered) == 10:
                server.kill()
                time.sleep(0.5)
                server.start()
                t_up = time.perf_counter()
            elif t_up is not None and frame.t_capture > t_up:
                if after == 0:
                    first_after = frame.t_capture - t_up
                assert semantic(frame.image).labels.shape == SIZE  # processed
                after += 1
    finally:
        src.close()
        server.kill()
    assert after == 10, (after, log)
    assert src.reconnects >= 1 and any("reconnected" in m for m in log), log
    assert first_after < LIVE["backoff_max"] + 3.0, first_after  # the next attempt + FFmpeg's open
    in_slot = 1 if src._slot is not None else 0
    assert src.captured == len(delivered) + src.dropped + in_slot  # nothing unaccounted for
    assert sorted(set(delivered)) == delivered  # in order, no repeats
    FAULTS["stream server killed and restarted"] = (server.kills - 1, 1)


# -------------------------------------------------------------------------------- disk full
def _tiny_tmpfs(path: Path) -> bool:
    path.mkdir()
    if os.geteuid() != 0:
        return False
    return subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(path)],
                          capture_output=True).returncode == 0


def _no_partial_outputs(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def _run_cli(args: list[str], timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgeseg", *args], capture_output=True, text=True, errors="replace",
                          timeout=timeout, cwd=ROOT, **kw)


def test_disk_full_during_a_run_leaves_no_partial_output(tmp_path):
    """A 1 MiB tmpfs fills while ``edgeseg run`` writes a video and JSON lines: the run ends with
    a clear error (no traceback) and neither file is left, complete-looking or partial."""
    out = tmp_path / "tiny"
    if not _tiny_tmpfs(out):
        pytest.skip("cannot mount a tmpfs here (needs root); the RLIMIT_FSIZE test covers this")
    try:
        r = _run_cli(["run", "--source", "synthetic", "--fps", "1000", "--frames", "250", "--save", str(out / "out.mp4"),
                      "--json", str(out / "out.jsonl")])
        listing = _no_partial_outputs(out)
    finally:
        subprocess.run(["umount", str(out)], check=False)
    assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert "cannot write" in r.stderr and "partial" in r.stderr, r.stderr[-2000:]
    assert listing == [], listing
    FAULTS["disk full (tmpfs)"] = (1, 1)


def test_file_size_limit_during_a_run_leaves_no_partial_output(tmp_path):
    """The same with RLIMIT_FSIZE (works without root): writes past 100 kB fail with EFBIG."""
    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write fails instead of killing the process
        resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))

    out = tmp_path / "out"
    out.mkdir()
    r = _run_cli(["run", "--source", "synthetic", "--fps", "1000", "--frames", "60", "--save", str(out / "out.avi"),
                  "--json", str(out / "out.jsonl")], preexec_fn=limit)
    assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert "cannot write video" in r.stderr, r.stderr[-2000:]
    # the video (past the limit) is gone; the JSON lines (under it) are complete, every line whole
    assert _no_partial_outputs(out) in ([], ["out.jsonl"]), _no_partial_outputs(out)
    if (out / "out.jsonl").exists():
        assert all(json.loads(line)["index"] >= 0 for line in (out / "out.jsonl").read_text().splitlines())
    FAULTS["file size limit (EFBIG)"] = (1, 1)


def test_output_folder_removed_during_a_run(tmp_path):
    """The output folder is made read-only and its JSON target replaced by a folder mid-run: the
    run ends with a clear error, not a traceback."""
    out = tmp_path / "out"
    out.mkdir()
    p = subprocess.Popen([sys.executable, "-m", "edgeseg", "run", "--source", "synthetic", "--frames", "100000",
                          "--json", str(out / "out.jsonl")], cwd=ROOT, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, errors="replace")
    try:
        deadline = time.time() + 60
        while not list(out.glob(".out.jsonl.partial")) and time.time() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)
        for f in out.iterdir():
            f.unlink()  # the partial file vanishes: closing cannot move it into place
        _, err = p.communicate(timeout=10) if p.poll() is not None else (p.send_signal(signal.SIGINT),
                                                                           p.communicate(timeout=10))[1]
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode != 0 and "Traceback" not in err, err[-2000:]
    assert "cannot write" in err, err[-2000:]
    assert not (out / "out.jsonl").exists()
    FAULTS["output removed mid-run"] = (1, 1)


# ------------------------------------------------------------------------------- signals
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_under_load_exits_fast_with_a_playable_video(sig, tmp_path):
    out = tmp_path / "out.mp4"
    p = subprocess.Popen([sys.executable, "-m", "edgeseg", "run", "--source", "synthetic", "--fps", "1000",
                          "--frames", "100000", "--save", str(out), "--json", str(tmp_path / "out.jsonl")],
                         cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, errors="replace")
    try:
        deadline = time.time() + 60
        while time.time() < deadline and not any(f.name.startswith(".out.") for f in tmp_path.iterdir()):
            time.sleep(0.1)
        time.sleep(1.5)  # under load: frames flowing
        t0 = time.perf_counter()
        p.send_signal(sig)
        _, err = p.communicate(timeout=10)
        exit_s = time.perf_counter() - t0
    finally:
        if p.poll() is None:
            p.kill()
    assert exit_s < 2.0, (exit_s, err[-2000:])
    assert "Traceback" not in err, err[-2000:]
    cap = cv2.VideoCapture(str(out))
    ok, frame = cap.read()
    n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    cap.release()
    assert ok and frame is not None and n >= 1, (n, err[-2000:])
    lines = (tmp_path / "out.jsonl").read_text().splitlines()
    assert len(lines) == n  # every frame written is in both outputs: nothing lost
    FAULTS[f"{signal.Signals(sig).name} under load"] = (1, 1)


# ------------------------------------------------------------------------------- flapping soak
class FlappingSource(LiveSource):
    """A live source whose reads fail every ``period`` frames (a flaky cable), reopening at once."""

    def __init__(self, period: int, **kw) -> None:
        super().__init__(**kw)
        self.period, self.reads, self.opens = period, 0, 0
        self.image = np.zeros((*SIZE, 3), np.uint8)

    def describe(self) -> str:
        return "flapping"

    def _open(self) -> None:
        self.opens += 1

    def _read(self):
        self.reads += 1
        if self.reads % self.period == 0:
            return None
        return self.image.copy()

    def _wait_next(self) -> None:
        time.sleep(0.002)  # a camera paces its frames (~500 FPS here)

    def _release(self) -> None:
        pass


def _proc() -> dict[str, float]:
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return {"rss_mb": int(status["VmRSS"].split()[0]) / 1024, "threads": int(status["Threads"]),
            "fds": len(os.listdir("/proc/self/fd"))}


def _soak(semantic, frames: int, tmp_path: Path) -> dict:
    src = FlappingSource(period=25, read_timeout=1.0, reconnect_timeout=5.0, backoff=0.001, backoff_max=0.002,
                         log=lambda m: None)
    samples: list[dict] = []
    warm = min(300, frames // 4)  # 600 frames: samples at 200, 300, 400, 500

    def on_result(r) -> None:
        if r.index >= warm and r.index % 100 == 0:
            samples.append(_proc())

    from edgeseg.pipeline import JsonlSink
    pipe = Pipeline(semantic, src, sinks=[JsonlSink(tmp_path / "soak.jsonl")], max_frames=frames,
                    on_result=on_result)
    summary = pipe.run()
    assert summary["frames"] == frames
    assert len(samples) >= 3, samples
    rss = [s["rss_mb"] for s in samples]
    return {"reconnects": src.reconnects, "read_failures": src.read_failures, "rss_growth_mb": max(rss) - rss[0],
            "threads": sorted({s["threads"] for s in samples}), "fds": sorted({s["fds"] for s in samples})}


def _check_soak(r: dict, frames: int) -> None:
    assert r["read_failures"] >= frames // 25 - 2 and r["reconnects"] == r["read_failures"], r
    assert r["rss_growth_mb"] < 20.0, r
    assert len(r["threads"]) == 1 and len(r["fds"]) == 1, r  # constant after warm-up


def test_flapping_source_soak_small(semantic, tmp_path):
    r = _soak(semantic, 600, tmp_path)
    _check_soak(r, 600)
    FAULTS["flapping source reads (600 frames)"] = (r["read_failures"], r["reconnects"])


@pytest.mark.slow
def test_flapping_source_soak_20000_frames(semantic, tmp_path):
    r = _soak(semantic, 20000, tmp_path)
    _check_soak(r, 20000)
    print("soak 20000:", r)


# -------------------------------------------------------------------------- shared predictor
def _frames(n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(3)
    return [np.ascontiguousarray(rng.integers(0, 255, (72 + 8 * (i % 3), 96, 3), dtype=np.uint8)) for i in range(n)]


@pytest.mark.parametrize("task", ["semantic", "instance"])
def test_one_predictor_shared_by_8_threads(task):
    from concurrent.futures import ThreadPoolExecutor

    model = edgeseg.load(None, task=task, threads=1)
    frames = _frames(24)

    def key(res):
        if task == "semantic":
            return res.labels.tobytes()
        return (res.boxes.tobytes(), res.scores.tobytes(), res.class_ids.tobytes(),
                bytes(res.masks.data.tobytes()) if hasattr(res.masks, "data") else np.asarray(res.masks).tobytes())

    want = [key(model(f)) for f in frames]
    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(lambda f: key(model(f)), frames * 4))
    assert got == want * 4
    FAULTS[f"{task} predictor shared by 8 threads"] = (len(got), sum(g == w for g, w in zip(got, want * 4)))


FAULTS: dict[str, tuple[int, int]] = {}  # fault -> (injected, survived), printed by the session hook


def teardown_module() -> None:
    if FAULTS:
        print("\nfaults injected / survived:", FAULTS)
