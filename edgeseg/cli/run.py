"""`edgeseg run`: the real-time pipeline over a camera, stream, video, images or synthetic scene."""
from __future__ import annotations

import argparse
import sys
from typing import Any

from .. import defaults
from ..errors import EdgesegError
from ._common import _add_model_options, _add_task, _load_predictor, _report_unreadable


def add_parser(sub: Any, fmt: Any) -> None:
    """Register the subcommand on ``sub``."""
    p = sub.add_parser("run", help="segment a live camera, stream or video in real time", formatter_class=fmt,
                       description="Real-time pipeline: capture -> pre -> infer -> post -> render -> sink in "
                                   "threads with bounded queues. Live sources (camera, URL, synthetic) always "
                                   "deliver the newest frame and reconnect when lost; files and folders are "
                                   "processed frame by frame, in order. Prints p50/p90/p99 per stage at the end.")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--camera", help="camera index (0, 1, ...) or V4L2 device path (/dev/video0)")
    src.add_argument("--source", help="video file, image / folder / glob, rtsp:// or http(s):// URL, "
                                      "a ROS 2 recording (.mcap, .db3 or rosbag2 folder; with --topic), "
                                      "or synthetic[:FPS] (a generated live scene)")
    p.add_argument("--model", default=None, help="model (.onnx or checkpoint dir); default: the shipped model "
                                                 "of --task")
    _add_task(p)
    p.add_argument("--frames", type=int, default=None, help="stop after N frames")
    p.add_argument("--save", help="write the overlay video here (.mp4 or .avi)")
    p.add_argument("--save-dir", help="write each overlay frame as a JPEG into this folder")
    p.add_argument("--json", help="write one JSON line per frame (index, capture time, age, stage ms, "
                                  "class histogram or detections) to this .jsonl file")
    bag = p.add_argument_group("ROS 2 recordings (pip install 'edgeseg[ros]')")
    bag.add_argument("--topic", help="image topic to read from a recording (sensor_msgs/Image or "
                                     "CompressedImage); omit it to list the recording's image topics")
    bag.add_argument("--save-bag", help="write masks as ROS 2 messages, stamped like the input frames: "
                                        "out.mcap, out.db3 or a rosbag2 folder name")
    bag.add_argument("--bag-namespace", default="/edgeseg", help="topic prefix of --save-bag")
    bag.add_argument("--bag-color", action="store_true", help="--save-bag also writes <ns>/color_mask (rgb8)")
    p.add_argument("--stats", help="write the latency summary (p50/p90/p99 per stage, FPS, drops) as JSON")
    p.add_argument("--show", action="store_true", help="show the overlay in a window (needs a display and "
                                                       "opencv-python, not -headless); q, Esc or closing the "
                                                       "window stops")
    p.add_argument("--serve", metavar="[HOST:]PORT", help="watch the overlay and live stats in a browser at "
                                                         "http://HOST:PORT/ (MJPEG stream, /stats.json); HOST "
                                                         "defaults to 127.0.0.1 (this machine only); any other "
                                                         "host (0.0.0.0: every network) needs an access token")
    p.add_argument("--serve-token", metavar="TOKEN", help="access token of --serve (default: generated and "
                                                          "printed when HOST is not 127.0.0.1)")
    p.add_argument("--no-hud", action="store_true", help="do not draw FPS / latency on the frames")
    p.add_argument("--legend", action="store_true", help="semantic models: draw the names and colours of the "
                                                         "classes in view (top-right corner)")
    p.add_argument("--alpha", type=float, default=defaults.OVERLAY_ALPHA, help="overlay colour weight")
    p.add_argument("--realtime", action="store_true", help="pace video files at their FPS (like a camera)")
    p.add_argument("--smooth", nargs="?", const=str(defaults.SMOOTH_MODE_FRAMES), default="0", metavar="SPEC",
                   help="semantic temporal smoothing: K or mode:K (per-pixel majority class over the last "
                        f"K frames; K={defaults.SMOOTH_MODE_FRAMES} without a value), "
                        "hysteresis:N (a pixel changes class after N frames "
                        "in a row), ema:A (moving average of the class log-probabilities at the model's "
                        "output resolution, newest frame weight A), flow-ema:A (the same, motion-compensated "
                        "by optical flow); 0 = off")
    p.add_argument("--track", nargs="?", const="mask", default=None, choices=("mask", "box"),
                   help="instance models: give detections ids that persist across frames (ByteTrack-style "
                        "association with a Kalman filter), matched by mask IoU (default) or box IoU; ids "
                        "appear in the overlay, --json and the COCO output")
    p.add_argument("--width", type=int,
                   help=f"camera: requested width; synthetic: frame width ({defaults.SYNTHETIC_SOURCE_SIZE[1]})")
    p.add_argument("--height", type=int,
                   help=f"camera: requested height; synthetic: frame height ({defaults.SYNTHETIC_SOURCE_SIZE[0]})")
    p.add_argument("--fps", type=float,
                   help=f"camera: requested FPS; synthetic: frames per second ({defaults.VIDEO_FPS:g})")
    p.add_argument("--threads", type=int, default=None,
                   help="ONNX Runtime intra-op threads (default: cores - 1; the C++ core uses 1-2, "
                        "or $EDGESEG_NUM_THREADS)")
    p.add_argument("--read-timeout", type=float, default=defaults.LIVE_READ_TIMEOUT,
                   help="live sources: seconds without a frame before the source counts as lost")
    p.add_argument("--reconnect-timeout", type=float, default=defaults.LIVE_RECONNECT_TIMEOUT,
                   help="live sources: give up after reconnecting fails for this many seconds")
    p.add_argument("--quiet", action="store_true", help="no start line on stderr")
    _add_model_options(p)
    p.set_defaults(func=cmd_run)


def cmd_run(args: argparse.Namespace) -> int:
    import signal
    import threading

    from .._io import write_json
    from ..pipeline import (ImageDirSink, JsonlSink, LiveSource, Pipeline, VideoSink, WebSink, WindowSink,
                           apply_cpp_threads, default_thread_policy, open_source)
    from ..pipeline.sinks import RosbagSink
    from ..pipeline.sources import RosbagSource

    if (args.camera is None) == (args.source is None):
        raise EdgesegError("give exactly one input: --camera N (or /dev/videoN) or --source PATH|URL|DIR|GLOB|synthetic")
    if args.frames is not None and args.frames < 1:
        raise EdgesegError(f"--frames must be >= 1, got {args.frames}")
    if args.serve_token is not None and args.serve is None:
        raise EdgesegError("--serve-token goes with --serve [HOST:]PORT")
    window = WindowSink("edgeseg run") if args.show else None  # no display: fail before loading anything
    from .._io import check_writable

    for flag, value, folder in (("--save", args.save, False), ("--save-dir", args.save_dir, True),
                                ("--json", args.json, False), ("--stats", args.stats, False),
                                ("--save-bag", getattr(args, "save_bag", None), False)):
        if value:  # before the model loads: a run never fails only at its end
            check_writable(value, flag, folder=folder)
    policy = default_thread_policy(ort_threads=args.threads)
    apply_cpp_threads(policy)
    predictor = _load_predictor(args, threads=policy.ort_threads)
    if args.track and args.conf is None and hasattr(predictor, "thresholds"):
        from ..tracking import TrackerConfig  # the tracker's second pass needs the low-score detections

        predictor.thresholds.score = min(predictor.thresholds.score, TrackerConfig().low)

    spec: object = args.source
    if args.camera is not None:
        spec = int(args.camera) if args.camera.isdigit() else args.camera
    size = (args.height or defaults.SYNTHETIC_SOURCE_SIZE[0], args.width or defaults.SYNTHETIC_SOURCE_SIZE[1])
    candidates = dict(read_timeout=args.read_timeout, reconnect_timeout=args.reconnect_timeout, width=args.width,
                      height=args.height, fps=args.fps, size=size, topic=args.topic)
    options = {k: v for k, v in candidates.items() if v is not None}

    pipe: Pipeline | None = None
    source = None
    sinks: list = [window] if window is not None else []
    web = None
    try:
        if args.serve is not None:  # before the source: a port in use fails before a camera opens
            web = WebSink(args.serve, token=args.serve_token, info={"model": repr(predictor)})
            sinks.append(web)
        source = open_source(spec, lenient=True, **options)
        if isinstance(source, LiveSource):
            source.start()  # fail fast (missing camera, bad URL) and learn the real FPS
        if args.save:
            sinks.append(VideoSink(args.save, fps=source.fps or defaults.VIDEO_FPS))
        if args.save_dir:
            sinks.append(ImageDirSink(args.save_dir))
        if args.json:
            sinks.append(JsonlSink(args.json))
        if args.topic is not None and not isinstance(source, RosbagSource):
            raise EdgesegError(f"--topic applies to ROS 2 recordings; {source.describe()} is not one")
        if args.save_bag:
            sinks.append(RosbagSink(args.save_bag, namespace=args.bag_namespace, color=args.bag_color,
                                    threshold=args.conf or 0.0))
    except BaseException:
        for sink in sinks:
            sink.abort()
        if source is not None:
            source.close()
        raise
    pipe = Pipeline(predictor, source, sinks, max_frames=args.frames, realtime=args.realtime,
                    smooth=args.smooth, track={"matching": args.track} if args.track else False,
                    hud=not args.no_hud, alpha=args.alpha, legend=args.legend)
    if web is not None:
        web.info["source"] = source.describe()
        print(f"edgeseg run: watch at {web.url}", file=sys.stderr, flush=True)

    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, lambda *_: pipe.stop("terminated"))
    if not args.quiet:
        print(f"edgeseg run: {source.describe()} -> {predictor!r}; threads {policy.to_dict()}; "
              "Ctrl-C to stop", file=sys.stderr, flush=True)
    try:
        summary = window.run(pipe) if window is not None else pipe.run()
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    summary["model"] = str(predictor.path)
    summary["backend"] = predictor.backend_name
    summary["threads"] = policy.to_dict()
    failed = getattr(source, "failed", [])
    if failed:
        summary["unreadable_inputs"] = [{"path": str(p), "reason": r} for p, r in failed]
    print(pipe.stats.table())
    print(f"stopped: {summary['stopped']}")
    for path in pipe.closed:
        print(f"wrote {path}")
    if args.stats:
        write_json(args.stats, summary)
        print(f"stats: {args.stats}")
    return _report_unreadable(failed)
