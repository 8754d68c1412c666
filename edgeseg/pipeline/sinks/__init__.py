"""Pipeline outputs, one module per kind: every sink has ``put(result)``, ``close()`` and ``abort()``;
``needs_image`` says whether it uses the rendered overlay (``result.vis``), so the pipeline skips
rendering when no sink shows pixels."""
from __future__ import annotations

from .base import Sink
from .images import ImageDirSink
from .jsonl import JsonlSink
from .rosbag import RosbagSink
from .video import VideoSink
from .web import WebSink
from .window import WindowSink, gui_problem

__all__ = ["Sink", "VideoSink", "ImageDirSink", "JsonlSink", "RosbagSink", "WebSink", "WindowSink",
           "gui_problem"]
