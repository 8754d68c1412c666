"""Hostile images: size bombs refused before decoding, truncated files, special files, and one bad
file in a folder never stopping the good ones."""
from __future__ import annotations

import os
import struct
import zlib

import cv2
import numpy as np
import pytest

from edgeseg import InputFileError
from edgeseg._io import read_image
from edgeseg.cli import main
from edgeseg.image_header import declared_size


def _png_header(w: int, h: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


@pytest.mark.parametrize("ext", [".png", ".jpg", ".bmp", ".webp"])
def test_declared_size_matches_the_encoder(ext):
    ok, buf = cv2.imencode(ext, np.zeros((37, 53, 3), np.uint8))
    assert ok and declared_size(buf.tobytes()) == (53, 37)


def test_size_bomb_is_refused_before_decoding(tmp_path, monkeypatch):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(_png_header(60000, 60000))
    assert bomb.stat().st_size < 100
    with pytest.raises(InputFileError, match="declares 60000x60000 pixels.*EDGESEG_MAX_IMAGE_PIXELS"):
        read_image(bomb)
    monkeypatch.setenv("EDGESEG_MAX_IMAGE_PIXELS", "100")
    ok, buf = cv2.imencode(".png", np.zeros((20, 20, 3), np.uint8))
    (tmp_path / "small.png").write_bytes(buf.tobytes())
    with pytest.raises(InputFileError, match="declares 20x20"):
        read_image(tmp_path / "small.png")


@pytest.mark.parametrize("ext", [".png", ".jpg", ".bmp"])
def test_truncated_images_are_clear_errors(tmp_path, ext):
    ok, buf = cv2.imencode(ext, np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8))
    for cut in (0, 10, len(buf) // 3):
        p = tmp_path / f"t{cut}{ext}"
        p.write_bytes(buf.tobytes()[:cut])
        try:
            img = read_image(p)
        except InputFileError:
            continue
        assert img.shape == (64, 64, 3)  # some decoders fill a truncated tail: still a valid image


def test_special_files_are_not_images(tmp_path):
    fifo = tmp_path / "x.png"
    os.mkfifo(fifo)
    with pytest.raises(InputFileError, match="not a regular file"):
        read_image(fifo)


def test_a_bad_file_in_a_folder_does_not_stop_the_others(tmp_path, capsys):
    src = tmp_path / "imgs"
    src.mkdir()
    for i in range(3):
        ok, buf = cv2.imencode(".png", np.full((40, 60, 3), 40 * i, np.uint8))
        (src / f"good{i}.png").write_bytes(buf.tobytes())
    (src / "bad_a.png").write_bytes(b"not an image")
    (src / "bad_b.jpg").write_bytes(_png_header(50000, 50000))
    out = tmp_path / "out"
    assert main(["predict", "default", str(src), "--out", str(out), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "2 input(s) could not be read" in err and "bad_a.png" in err and "bad_b.jpg" in err
    assert sorted(p.name for p in out.glob("*_labels.png")) == [f"good{i}_labels.png" for i in range(3)]


def test_kernel_outputs_are_capped_and_nan_statistics_refused():
    from edgeseg import ArrayError, ops

    with pytest.raises(ArrayError, match="more than the limit"):
        ops.upsample_argmax(np.zeros((2, 4, 4), np.float32), (2**31, 1))
    with pytest.raises(ArrayError, match="more than the limit"):
        ops.letterbox(np.zeros((4, 4, 3), np.uint8), (100000, 100000))
    with pytest.raises(ArrayError, match="mean must be finite"):
        ops.letterbox(np.zeros((4, 4, 3), np.uint8), 8, mean=(float("nan"), 0, 0))


def test_truncated_video_is_reported_not_a_clean_end(tmp_path, capsys):
    path = tmp_path / "v.avi"
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (96, 64))
    rng = np.random.default_rng(0)
    for _ in range(20):
        w.write(rng.integers(0, 255, (64, 96, 3), np.uint8))
    w.release()
    data = path.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: int(len(data) * 0.6)])
    from edgeseg.pipeline.sources import VideoFileSource

    src = VideoFileSource(cut, log=lambda m: None)
    n = sum(1 for _ in src)
    assert 0 < n < 20 and src.failed and "of the 20 frames" in src.failed[0][1]
    whole = VideoFileSource(path)
    assert sum(1 for _ in whole) == 20 and not whole.failed
    assert main(["run", "--source", str(cut), "--quiet"]) == 1
    assert "truncated or damaged" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [
    ["run", "--source", "synthetic", "--frames", "3", "--stats", "/proc/edgeseg/stats.json"],
    ["run", "--source", "synthetic", "--frames", "3", "--save", "/proc/edgeseg/x.mp4"],
    ["predict", "default", "synthetic", "--out", "/proc/edgeseg_out"],
    ["eval", "default", "--json", "/proc/x/report.json", "--limit", "1"],
])
def test_unwritable_outputs_fail_before_any_work(argv, capsys):
    assert main(argv) == 2
    assert "cannot write" in capsys.readouterr().err


def test_thread_counts_are_bounded(capsys):
    assert main(["run", "--source", "synthetic", "--frames", "2", "--threads", "100000"]) == 2
    assert "--threads must be between 1 and 256" in capsys.readouterr().err
