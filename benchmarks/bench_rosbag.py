"""Bag-to-bag throughput: a recorded drive through the shipped model into an output recording.

    python benchmarks/bench_rosbag.py [--frames N] [--size HxW] [--fps F] [--input raw|jpeg|yuv422]
                                      [--task semantic|instance] [--storage mcap|sqlite3] [--repeats R]

Writes a recording of N synthetic driving-like frames (edgeseg.data.synthetic scenes) at the given
size and frame rate on /camera/image_raw (sensor_msgs/Image bgr8, yuv422 (UYVY), or a
CompressedImage JPEG topic), then runs what ``edgeseg run --source drive --topic /camera/image_raw
--save-bag out.mcap --bag-color`` runs: RosbagSource -> Pipeline (thread policy of ``edgeseg run``)
-> RosbagSink. The peer is the recording itself: processed frames per second against its own
frame rate (>= 1 keeps up with the camera). Also times the two ends alone (read + decode every
message; write class and colour masks for every frame) so the cost of the ROS layer is visible
next to the model. Best of R runs (other processes share the CPU).
"""
from __future__ import annotations

import argparse
import datetime as _dt
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edgeseg.cli._common import size_arg  # noqa: E402
from edgeseg.data.synthetic import generate  # noqa: E402
from edgeseg.integrations.ros.bagio import write_image_bag  # noqa: E402
from edgeseg.pipeline import Pipeline, apply_cpp_threads, default_thread_policy, open_source  # noqa: E402
from edgeseg.pipeline.sinks import RosbagSink  # noqa: E402
from edgeseg.pipeline import StreamResult  # noqa: E402
from edgeseg.runtime import load  # noqa: E402

TOPIC = "/camera/image_raw"


def _frames(n: int, hw: tuple[int, int], kind: str) -> list[np.ndarray]:
    import cv2

    base = [generate(i, seed=11, size=hw).image for i in range(min(n, 16))]  # a few distinct scenes, cycled
    frames = [base[i % len(base)] for i in range(n)]
    if kind == "yuv422":  # BGR -> UYVY bytes (OpenCV has no BGR->UYVY: go through YUV 4:4:4)
        out = []
        for f in frames:
            yuv = cv2.cvtColor(f, cv2.COLOR_BGR2YUV)
            uyvy = np.empty(f.shape[:2] + (2,), np.uint8)
            uyvy[:, 0::2, 0] = yuv[:, 0::2, 1]
            uyvy[:, 1::2, 0] = yuv[:, 0::2, 2]
            uyvy[..., 1] = yuv[..., 0]
            out.append(uyvy)
        return out
    return frames


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=120)
    ap.add_argument("--size", type=size_arg, default=(480, 640), help="HxW of the camera frames")
    ap.add_argument("--fps", type=float, default=30.0, help="the recording's frame rate")
    ap.add_argument("--input", choices=["raw", "jpeg", "yuv422"], default="raw")
    ap.add_argument("--task", choices=["semantic", "instance"], default="semantic")
    ap.add_argument("--storage", choices=["mcap", "sqlite3"], default="mcap")
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    h, w = args.size
    policy = default_thread_policy()
    apply_cpp_threads(policy)
    predictor = load(None, task=args.task, threads=policy.ort_threads)

    with tempfile.TemporaryDirectory() as tmp:
        tmp_p = Path(tmp)
        t0 = time.perf_counter()
        frames = _frames(args.frames, (h, w), args.input)
        bag = write_image_bag(tmp_p / "drive", frames, topic=TOPIC, fps=args.fps, storage=args.storage,
                              encoding="yuv422" if args.input == "yuv422" else "bgr8",
                              compressed="jpeg" if args.input == "jpeg" else None)
        print(f"recording: {args.frames} frames {w}x{h} {args.input} at {args.fps:g} FPS, {args.storage} "
              f"({sum(p.stat().st_size for p in bag.iterdir()) / 1e6:.1f} MB, written in {time.perf_counter() - t0:.1f} s)")

        read_fps = []
        for _ in range(args.repeats):
            with open_source(bag, topic=TOPIC) as src:
                t0 = time.perf_counter()
                n = sum(1 for _ in src)
                read_fps.append(n / (time.perf_counter() - t0))
        result = predictor(_frames(1, (h, w), "raw")[0])
        write_fps = []
        for r in range(args.repeats):
            sink = RosbagSink(tmp_p / f"w{r}.mcap", color=True)
            t0 = time.perf_counter()
            for i in range(args.frames):
                sink.put(StreamResult(result, stamp_ns=i, frame_id="cam"))
            sink.close()
            write_fps.append(args.frames / (time.perf_counter() - t0))

        runs = []
        for r in range(args.repeats):
            out = tmp_p / f"out{r}.mcap"
            pipe = Pipeline(predictor, open_source(bag, topic=TOPIC), [RosbagSink(out, color=True)])
            t0 = time.perf_counter()
            summary = pipe.run()
            wall = time.perf_counter() - t0
            runs.append((summary["frames"] / wall, summary))
        fps, summary = max(runs, key=lambda x: x[0])

    stages = summary["stages_ms"]
    print(f"machine: {platform.machine()} {platform.processor() or ''} cores={policy.to_dict()}, "
          f"{_dt.datetime.now(_dt.timezone.utc):%Y-%m-%d %H:%M} UTC, model: shipped {args.task}")
    print(f"read + decode only : {max(read_fps):8.1f} frames/s")
    what = "instance + colour mask, detections" if args.task == "instance" else "class + colour mask"
    print(f"write masks only   : {max(write_fps):8.1f} frames/s ({what})")
    print(f"bag -> model -> bag: {fps:8.1f} frames/s over {summary['frames']} frames "
          f"= {fps / args.fps:.2f}x the recording's {args.fps:g} FPS")
    print("stage medians (ms): " + ", ".join(f"{k} {v['p50']:.2f}" for k, v in stages.items()
                                             if k in ("capture", "pre", "infer", "post", "sink")))


if __name__ == "__main__":
    main()
