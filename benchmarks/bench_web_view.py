"""What the live web view (WebSink, `edgeseg run --serve`) costs the pipeline (figures, not a test).

    python benchmarks/bench_web_view.py [--frames 300] [--size 360x640] [--repeats 3]

The shipped semantic model over a finite source of pre-rendered synthetic frames (every frame is
processed, as fast as the pipeline goes), with rendering on in every variant, so that only the
sink differs:

    no sink            the peer: the same pipeline with nothing watching
    web, no viewer     WebSink serving on 127.0.0.1, nobody connected (no JPEG is made)
    web, 1 reading     one MJPEG viewer on 127.0.0.1 reading as fast as it can (JPEG encoding
                       happens in its thread and shares the CPU with the pipeline)
    web, 1 stalled     one MJPEG viewer that never reads (its socket fills up, it skips frames)
    web, stalled+reading

Variants alternate, `--repeats` rounds; prints the median FPS of each, its ratio to the peer,
the time the pipeline's sink stage spent per frame (what the web view costs the pipeline's own
thread), frames processed vs frames in the source, JPEGs encoded and MJPEG parts sent to each
viewer.
Traffic stays on 127.0.0.1.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import http.client
import platform
import socket
import statistics
import sys
import threading
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edgeseg.cli._common import size_arg  # noqa: E402
from edgeseg.data.synthetic import video_frame  # noqa: E402
from edgeseg.pipeline import IterableSource, Pipeline, WebSink  # noqa: E402
from edgeseg.pipeline.sinks.web import BOUNDARY  # noqa: E402
from edgeseg.runtime import load  # noqa: E402


class _Reader(threading.Thread):
    """An MJPEG viewer that reads every byte it is sent and counts the parts."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.conn.request("GET", "/stream.mjpg")
        self.reply = self.conn.getresponse()
        self.parts = 0

    def run(self) -> None:
        marker = f"--{BOUNDARY}\r\n".encode()
        tail = b""
        try:
            while chunk := self.reply.read1(1 << 16):
                data = tail + chunk
                self.parts += data.count(marker)
                tail = data[-len(marker) + 1:]
        except OSError:
            pass


def _stalled(port: int) -> socket.socket:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", port))
    s.sendall(b"GET /stream.mjpg HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
    return s


def _drain(s: socket.socket) -> int:
    s.settimeout(10)
    data = b""
    try:
        while chunk := s.recv(1 << 20):
            data += chunk
    except OSError:
        pass
    s.close()
    return data.count(f"--{BOUNDARY}\r\n".encode())


def run_variant(predictor, frames: list[np.ndarray], web: bool, reading: bool, stalled: bool) -> dict:
    sink = WebSink("127.0.0.1:0") if web else None
    stalled_sock = _stalled(sink.port) if stalled else None
    reader = _Reader(sink.port) if reading else None
    if reader is not None:
        reader.start()
    if sink is not None:
        want = int(reading) + int(stalled)
        while sink.viewers < want:
            threading.Event().wait(0.01)
    pipe = Pipeline(predictor, IterableSource(frames), [sink] if sink else [], render=True)
    summary = pipe.run()
    sink_ms = summary["stages_ms"]["sink"]
    out = {"fps": summary["fps"], "processed": summary["frames"], "dropped": summary["dropped"],
           "sink_p50": sink_ms["p50"], "sink_p99": sink_ms["p99"]}
    if sink is not None:
        out["jpeg_encoded"] = sink.encoded
    if reader is not None:
        reader.join(timeout=30)
        reader.conn.close()
        out["parts_to_reader"] = reader.parts
    if stalled_sock is not None:
        out["parts_to_stalled"] = _drain(stalled_sock)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--size", type=size_arg, default=(360, 640), help="HxW of the frames")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    h, w = args.size
    predictor = load(ROOT / "edgeseg" / "assets" / "semantic_default.onnx")
    frames = [video_frame(t, (h, w)).image for t in range(args.frames)]
    variants = {
        "no sink": dict(web=False, reading=False, stalled=False),
        "web, no viewer": dict(web=True, reading=False, stalled=False),
        "web, 1 reading": dict(web=True, reading=True, stalled=False),
        "web, 1 stalled": dict(web=True, reading=False, stalled=True),
        "web, stalled+reading": dict(web=True, reading=True, stalled=True),
    }
    run_variant(predictor, frames[:30], **variants["no sink"])  # warm-up
    results: dict[str, list[dict]] = {k: [] for k in variants}
    for _ in range(args.repeats):
        for name, kw in variants.items():
            results[name].append(run_variant(predictor, frames, **kw))
    peer = statistics.median(r["fps"] for r in results["no sink"])
    print(f"# bench_web_view {_dt.datetime.now(_dt.timezone.utc):%Y-%m-%d %H:%M} UTC, {platform.node()}, "
          f"{platform.processor() or platform.machine()}, {args.frames} frames {h}x{w}, median of {args.repeats}")
    print("| variant | FPS | / no sink | sink stage p50 / p99 ms | processed / source | JPEGs encoded "
          "| parts to reader | parts to stalled |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, rs in results.items():
        fps = statistics.median(r["fps"] for r in rs)
        last = rs[-1]
        p50 = statistics.median(r["sink_p50"] for r in rs)
        p99 = statistics.median(r["sink_p99"] for r in rs)
        print(f"| {name} | {fps:.1f} | {fps / peer:.2f} | {p50:.3f} / {p99:.3f} | {last['processed']} / {args.frames} | "
              f"{last.get('jpeg_encoded', '-')} | {last.get('parts_to_reader', '-')} | "
              f"{last.get('parts_to_stalled', '-')} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
