"""Atomic writes, frame sources/sinks and latency statistics (no model needed)."""
from __future__ import annotations

import numpy as np
import pytest

from edgeseg._io import atomic_path, read_image, write_image, write_json
from edgeseg.errors import InputFileError, SourceError
from edgeseg.pipeline.sinks import VideoSink
from edgeseg.pipeline.sources import ImageSource, VideoFileSource, image_paths, open_source
from edgeseg.pipeline.stats import LatencyStats


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.json"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("partial")
            raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]


def test_write_json_and_image_roundtrip(tmp_path):
    write_json(tmp_path / "a.json", {"x": 1})
    assert (tmp_path / "a.json").read_text().strip().startswith("{")
    img = np.random.default_rng(0).integers(0, 255, (7, 5, 3), dtype=np.uint8)
    write_image(tmp_path / "img.png", img)
    np.testing.assert_array_equal(read_image(tmp_path / "img.png"), img)


def test_read_image_errors(tmp_path):
    with pytest.raises(InputFileError, match="not found"):
        read_image(tmp_path / "missing.png")
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"this is not a jpeg")
    with pytest.raises(InputFileError, match="cannot decode image"):
        read_image(bad)


def test_image_paths_dir_glob_and_errors(tmp_path):
    for i in range(3):
        write_image(tmp_path / f"{i}.png", np.zeros((4, 4, 3), np.uint8))
    (tmp_path / "notes.txt").write_text("x")
    assert [p.name for p in image_paths(tmp_path)] == ["0.png", "1.png", "2.png"]
    assert len(image_paths(str(tmp_path / "*.png"))) == 3
    with pytest.raises(InputFileError, match="does not exist"):
        image_paths(tmp_path / "nope")
    with pytest.raises(InputFileError, match="matches no images"):
        image_paths(str(tmp_path / "*.jpg"))
    frames = list(ImageSource(image_paths(tmp_path)))
    assert [f.index for f in frames] == [0, 1, 2] and frames[0].image.shape == (4, 4, 3)


def test_video_sink_then_source_roundtrip(tmp_path):
    path = tmp_path / "v.avi"
    with VideoSink(path, fps=10) as sink:
        for i in range(5):
            sink.write(np.full((32, 48, 3), i * 40, np.uint8))
    assert path.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["v.avi"]
    with open_source(path) as src:
        assert isinstance(src, VideoFileSource)
        frames = list(src)
    assert len(frames) == 5 and frames[0].image.shape == (32, 48, 3)
    assert abs(int(frames[4].image.mean()) - 160) <= 6  # MJPG is lossy


def test_video_sink_abort_leaves_no_file(tmp_path):
    path = tmp_path / "v.avi"
    with pytest.raises(KeyboardInterrupt):
        with VideoSink(path) as sink:
            sink.write(np.zeros((16, 16, 3), np.uint8))
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_video_source_errors(tmp_path):
    with pytest.raises(InputFileError):
        VideoFileSource(tmp_path / "missing.mp4")
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00" * 100)
    with pytest.raises((SourceError, InputFileError)):
        list(VideoFileSource(bad))


def test_latency_stats_percentiles_match_numpy():
    rng = np.random.default_rng(1)
    pre, inf = rng.uniform(1, 3, 200), rng.uniform(5, 20, 200)
    stats = LatencyStats()
    for a, b in zip(pre, inf):
        stats.add({"pre": a, "infer": b})
    s = stats.summary()
    assert s["frames"] == 200
    for key, arr in (("pre", pre), ("infer", inf), ("end_to_end", pre + inf)):
        for p in (50, 90, 99):
            assert s["stages_ms"][key][f"p{p}"] == pytest.approx(np.percentile(arr, p), abs=1e-3)
    stats.drop("stale", 3)
    assert stats.summary()["dropped"] == {"stale": 3}
    assert "p99" in stats.table()


def test_latency_stats_window_bounds_memory():
    stats = LatencyStats(max_frames=10)
    for i in range(100):
        stats.add({"pre": float(i)})
    assert stats.frames == 100
    assert stats.summary()["stages_ms"]["pre"]["p50"] == pytest.approx(94.5)
