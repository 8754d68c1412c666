"""Video sources, sinks, latency statistics and the threaded real-time pipeline.

    from edgeseg.pipeline import Pipeline, open_source, VideoSink, JsonlSink
    summary = Pipeline(predictor, open_source("synthetic"), [VideoSink("o.mp4")], max_frames=100).run()

Importing this package loads only numpy-level modules; OpenCV is imported when a source or sink
is opened. Nothing here imports torch.
"""
from .sources import CameraSource, LiveSource, StreamSource, SyntheticSource
from .queues import END, BoundedQueue
from .render import ModeFilter, draw_hud
from .sinks import ImageDirSink, JsonlSink, Sink, VideoSink, WebSink, WindowSink, gui_problem
from .sources import Frame, ImageSource, IterableSource, Source, VideoFileSource, image_paths, open_source
from .stats import LatencyStats
from .results import InstanceStreamResult, StreamResult
from .stream import Pipeline, as_source, stream
from .threads import ThreadPolicy, apply_cpp_threads, default_thread_policy

__all__ = [
    "Pipeline", "StreamResult", "InstanceStreamResult", "stream", "as_source",
    "Source", "Frame", "ImageSource", "VideoFileSource", "IterableSource", "LiveSource",
    "CameraSource", "StreamSource", "SyntheticSource", "open_source", "image_paths",
    "Sink", "VideoSink", "ImageDirSink", "JsonlSink", "WebSink", "WindowSink", "gui_problem",
    "LatencyStats", "BoundedQueue", "END", "ModeFilter", "draw_hud",
    "ThreadPolicy", "default_thread_policy", "apply_cpp_threads",
]
