"""The real-time pipeline: ordering, drops at live sources, reconnection, stopping, outputs.

Small frames and a tiny exported model (tests/conftest.py) keep this file to a few seconds.
"""
from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest

import edgeseg
from edgeseg.data.synthetic import make_video
from edgeseg.errors import SourceError
from edgeseg.pipeline import (END, BoundedQueue, IterableSource, JsonlSink, LiveSource, ModeFilter, Pipeline,
                              StreamResult, SyntheticSource, VideoFileSource, VideoSink, draw_hud, open_source)
from edgeseg.pipeline.sources import StreamSource, redact_url

SIZE = (48, 64)


@pytest.fixture(scope="module")
def predictor(tiny_onnx):
    return edgeseg.load(tiny_onnx, threads=1)


def _live(**kw) -> dict:
    return dict(read_timeout=0.3, reconnect_timeout=0.4, backoff=0.05, backoff_max=0.1, log=lambda m: None) | kw


# ------------------------------------------------------------------------------------ files


def test_video_file_every_frame_in_order_no_drops(predictor, tmp_path):
    video = make_video(tmp_path / "in.avi", n_frames=12, size=SIZE, fps=25.0)
    seen: list[int] = []
    pipe = Pipeline(predictor, VideoFileSource(video), on_result=lambda r: seen.append(r.index))
    summary = pipe.run()
    assert seen == list(range(12))
    assert summary["frames"] == 12 and summary["dropped"] == {} and summary["stopped"] == "end of stream"
    for stage in ("capture", "pre", "infer", "post", "render", "sink", "frame_age", "end_to_end"):
        assert set(summary["stages_ms"][stage]) == {"mean", "p50", "p90", "p99"}, stage


def test_predictor_stream_keeps_order_and_gives_timestamps(predictor):
    frames = [np.full((*SIZE, 3), 10 * i, np.uint8) for i in range(5)]
    results = list(predictor.stream(iter(frames)))
    assert [r.index for r in results] == list(range(5))
    assert all(isinstance(r, StreamResult) and r.labels.shape == SIZE for r in results)
    assert all(r.t_result >= r.t_capture and r.age_ms >= 0 for r in results)
    assert results[-1].stats.frames == 5 and results[0].frame is frames[0]


class SlowStages:
    """The real predictor with each stage made 20 ms slower (sleeping, as a GIL-free kernel or a
    device wait would), to see the stages overlap."""

    def __init__(self, predictor, delay: float = 0.02) -> None:
        self.p, self.delay, self.meta = predictor, delay, predictor.meta
        self.spans: dict[str, list[tuple[float, float]]] = {"pre": [], "infer": [], "post": []}

    def _slow(self, stage: str) -> None:
        t0 = time.perf_counter()
        time.sleep(self.delay)
        self.spans[stage].append((t0, time.perf_counter()))

    def pre(self, image):
        self._slow("pre")
        return self.p.pre(image)

    def infer(self, x):
        self._slow("infer")
        return self.p.infer(x)

    def post(self, out, info):
        self._slow("post")
        return self.p.post(out, info)

    def make_result(self, *args):
        return self.p.make_result(*args)


def test_stages_overlap_throughput_approaches_slowest_stage(predictor):
    frames = [np.full((*SIZE, 3), i, np.uint8) for i in range(16)]
    slow = SlowStages(predictor)
    summary = Pipeline(slow, IterableSource(frames)).run()
    assert summary["frames"] == 16
    # Structural, not a timing threshold: frame i+1's pre runs while frame i is in infer, and
    # frame i's post while frame i+1 is in infer (sequential code could never overlap them).
    def overlaps(a, b):
        return sum(a[i][0] < b[i + 1][1] and b[i + 1][0] < a[i][1] for i in range(len(a) - 1))

    assert overlaps(slow.spans["infer"], slow.spans["pre"]) >= 8
    assert overlaps(slow.spans["post"], slow.spans["infer"]) >= 8


# ------------------------------------------------------------------------------------ live


def test_live_source_hands_out_the_newest_frame_and_counts_stale():
    src = SyntheticSource(size=(24, 32), fps=200.0, **_live())
    src.start()
    try:
        first = src.get(1.0)
        time.sleep(0.15)  # a slow consumer: ~30 frames are produced meanwhile
        newest = src.get(1.0)
        assert newest.index > first.index + 5
        assert newest.index >= src.captured - 2  # the newest one (maybe one more arrived since)
        assert src.dropped >= newest.index - first.index - 1
    finally:
        src.close()


def test_synthetic_live_with_slow_consumer_drops_and_stays_fresh(predictor):
    src = SyntheticSource(size=SIZE, fps=100.0, **_live())
    got: list[StreamResult] = []

    def slow(r: StreamResult) -> None:
        got.append(r)
        time.sleep(0.06)

    pipe = Pipeline(predictor, src, on_result=slow, max_frames=6)
    summary = pipe.run()
    idx = [r.index for r in got]
    assert len(idx) == 6 and all(b > a for a, b in zip(idx, idx[1:]))
    gaps = sum(b - a - 1 for a, b in zip(idx, idx[1:]))
    dropped = summary["dropped"]
    assert gaps > 0 and dropped.get("stale", 0) + dropped.get("superseded", 0) >= gaps
    # bounded queues: never more than one frame waits between two stages
    assert all(hw <= 1 for hw in summary["queue_high_water"].values())
    # frames are fresh: no growing lag; age at result stays under two consumer periods (2 x 60 ms)
    assert np.median([r.age_ms for r in got[1:]]) < 120


class SlowInfer:
    """The real predictor with inference made ``period`` seconds long (sleeping, GIL-free)."""

    def __init__(self, predictor, period: float) -> None:
        self.p, self.period, self.meta = predictor, period, predictor.meta

    def pre(self, image):
        return self.p.pre(image)

    def infer(self, x):
        time.sleep(self.period)
        return self.p.infer(x)

    def post(self, out, info):
        return self.p.post(out, info)

    def make_result(self, *args):
        return self.p.make_result(*args)


def test_overloaded_model_starts_on_the_newest_frame(predictor):
    """A 200 FPS live source and an 80 ms model: the frame waiting for inference is replaced by a
    newer capture when inference frees up ("superseded"), so a result is about one inference
    period old, not two; every frame is accounted for."""
    period = 0.08
    src = SyntheticSource(size=SIZE, fps=200.0, **_live())
    got: list[StreamResult] = []
    pipe = Pipeline(SlowInfer(predictor, period), src, max_frames=8, on_result=got.append)
    summary = pipe.run()
    dropped = summary["dropped"]
    assert len(got) == 8 and dropped.get("superseded", 0) > 0
    assert summary["frames"] + dropped["superseded"] == src.delivered
    # without the refresh the median would be ~2 periods (160 ms): the frame waited a full period
    assert np.median([r.age_ms for r in got[1:]]) < 1.5 * period * 1e3
    time.sleep(0.2)  # the refresh never reopens the source once the pipeline closed it
    assert src.closed and src._thread is None


class FlakySource(LiveSource):
    """A device that delivers ``good`` frames per session, then its reads fail (or hang), and
    that can be reopened only ``reopens`` times."""

    def __init__(self, good: int = 3, reopens: int = 1, hang: bool = False, **kw) -> None:
        super().__init__(**kw)
        self.good, self.reopens, self.hang = good, reopens, hang
        self.opens: list[float] = []
        self._left = 0
        self._unblock = threading.Event()

    def describe(self) -> str:
        return "flaky test device"

    def _open(self) -> None:
        self.opens.append(time.perf_counter())
        if len(self.opens) > 1 + self.reopens:
            raise SourceError("device gone")
        self._left = self.good
        self._unblock.clear()

    def _read(self):
        if self._left > 0:
            self._left -= 1
            time.sleep(0.005)
            return np.full((*SIZE, 3), 100, np.uint8)
        if self.hang:
            self._unblock.wait(5.0)  # a read stuck in the driver until released
        return None

    def _release(self) -> None:
        self._unblock.set()


def test_failing_source_reconnects_with_backoff_then_gives_up(predictor, tmp_path):
    logs: list[str] = []
    src = FlakySource(good=3, reopens=1, **_live(log=logs.append))
    sink = JsonlSink(tmp_path / "f.jsonl")
    pipe = Pipeline(predictor, src, [sink])
    t0 = time.perf_counter()
    pipe.start()
    with pytest.raises(SourceError, match="flaky test device was lost"):
        pipe.join(timeout=5.0)
    assert time.perf_counter() - t0 < 3.0
    assert src.reconnects == 1 and src.read_failures == 2
    assert any("reconnected" in m for m in logs) and any("read failed" in m for m in logs)
    gaps = np.diff(src.opens[2:])  # failed attempts after the second loss: backoff grows, capped
    assert len(gaps) >= 2 and gaps[0] >= 0.04 and gaps.max() < 0.2
    s = pipe.summary()
    # frames of both connections reach the sink (a live source may drop some to stay fresh)
    assert 3 < s["frames"] <= 6 and s["events"]["reconnects"] == 1 and s["stopped"] == "error"
    assert len((tmp_path / "f.jsonl").read_text().splitlines()) == s["frames"]  # sinks closed, file in place


def test_hung_read_is_detected_by_timeout(predictor):
    logs: list[str] = []
    src = FlakySource(good=2, reopens=1, hang=True, **_live(log=logs.append, read_timeout=0.2))
    pipe = Pipeline(predictor, src)
    pipe.start()
    with pytest.raises(SourceError):
        pipe.join(timeout=5.0)
    assert src.read_timeouts >= 1 and src.reconnects == 1
    assert any("read timeout" in m for m in logs)
    assert 2 <= pipe.summary()["frames"] <= 4  # a live source may drop a frame to stay fresh


# ------------------------------------------------------------------------------------ stop / sinks


def test_stop_from_another_thread_closes_sinks_promptly(predictor, tmp_path):
    video, lines = tmp_path / "o.avi", tmp_path / "f.jsonl"
    sinks = [VideoSink(video, fps=30), JsonlSink(lines)]
    pipe = Pipeline(predictor, SyntheticSource(size=SIZE, fps=30.0, **_live()), sinks)
    pipe.start()
    time.sleep(0.4)
    assert not lines.exists()  # still being written (into a partial file)
    t0 = time.perf_counter()
    threading.Thread(target=pipe.stop).start()
    assert pipe.join(timeout=2.0)
    assert time.perf_counter() - t0 < 2.0 and not pipe.running
    n = pipe.summary()["frames"]
    assert n > 3 and pipe.summary()["stopped"] == "stopped"
    with VideoFileSource(video) as src:  # playable, every written frame there
        assert sum(1 for _ in src) == sinks[0].frames >= n - 1
    records = [json.loads(line) for line in lines.read_text().splitlines()]
    assert len(records) == n
    assert set(records[0]) == {"index", "name", "t_capture", "time_unix", "age_ms", "timings_ms", "histogram"}
    assert set(records[0]["timings_ms"]) == {"capture", "pre", "infer", "post", "render"}
    assert sum(records[0]["histogram"].values()) == SIZE[0] * SIZE[1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.jsonl", "o.avi"]  # no temp files left


def test_stats_window_and_queues_stay_bounded(predictor):
    pipe = Pipeline(predictor, open_source("synthetic:200"), max_frames=15, stats_window=5, render=True)
    pipe.source.size = SIZE
    summary = pipe.run()
    assert summary["frames"] == 15 and pipe.stats.window_len() == 5
    assert max(summary["queue_high_water"].values()) <= 1


def test_bounded_queue_never_exceeds_capacity():
    q = BoundedQueue(2)
    assert q.put(1, 0.01) and q.put(2, 0.01)
    t0 = time.perf_counter()
    assert not q.put(3, 0.05) and time.perf_counter() - t0 < 0.5
    assert not q.wait_space(0.01) and q.high_water == 2
    q.put_end()
    assert [q.get(0.01), q.get(0.01), q.get(0.01), q.get(0.01)] == [1, 2, END, None]


# ------------------------------------------------------------------------------------ helpers


def test_mode_filter_removes_single_frame_flicker():
    f = ModeFilter(3)
    a, b = np.zeros((4, 4), np.uint8), np.ones((4, 4), np.uint8)
    assert (f(a) == 0).all() and (f(a) == 0).all()
    assert (f(b) == 0).all()  # one-frame flicker is voted away
    assert (f(b) == 1).all()  # two of three frames: the new class wins
    g = ModeFilter(3)
    g(np.full((2, 2), 1, np.uint8)), g(np.full((2, 2), 2, np.uint8))
    assert (g(np.full((2, 2), 3, np.uint8)) == 3).all()  # all different: the newest wins


def test_hud_draws_in_the_corner_only():
    img = np.full((120, 160, 3), 128, np.uint8)
    draw_hud(img, ["12.3 FPS", "latency 40 ms"])
    assert (img[:10, :40] != 128).any() and (img[-20:, -40:] == 128).all()


def test_open_source_kinds():
    s = open_source("synthetic:15")
    assert isinstance(s, SyntheticSource) and s.fps == 15.0 and s.live
    u = open_source("rtsp://user:secret@10.0.0.1/cam")
    assert isinstance(u, StreamSource) and "secret" not in u.describe()
    assert redact_url("http://a:b@h/x") == "http://a:***@h/x"
    with pytest.raises(SourceError, match="synthetic:FPS"):
        open_source("synthetic:fast")


# ------------------------------------------------------------------------------- network stream


@pytest.fixture()
def http_video(tmp_path):
    """A real HTTP server (in a thread) serving an MJPEG AVI, read by OpenCV's FFmpeg backend as a
    network stream; yields (url, server) and shuts the server down."""
    import functools
    import http.server
    import socketserver

    import cv2

    w = cv2.VideoWriter(str(tmp_path / "cam.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 30, (SIZE[1], SIZE[0]))
    for t in range(60):
        w.write(np.full((*SIZE, 3), (4 * t) % 256, np.uint8))
    w.release()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

    srv = socketserver.ThreadingTCPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(tmp_path)))
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}/cam.avi", srv
    finally:
        srv.shutdown()
        srv.server_close()


def test_http_stream_through_the_pipeline(predictor, http_video, tmp_path):
    url, _ = http_video
    src = open_source(url, **_live())
    assert isinstance(src, StreamSource) and src.live
    out = tmp_path / "frames.jsonl"
    summary = Pipeline(predictor, src, sinks=[JsonlSink(out)], max_frames=10).run()
    assert summary["frames"] == 10
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 10 and all(r["age_ms"] >= 0 for r in records)


def test_unreachable_stream_fails_with_a_clear_error(predictor, http_video):
    url, srv = http_video
    srv.shutdown()
    srv.server_close()  # nothing listens on that port any more
    with pytest.raises(SourceError, match="cannot open stream"):
        Pipeline(predictor, open_source(url, **_live()), max_frames=3).run()
