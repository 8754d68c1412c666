"""Frame sources: one small interface (iterate -> :class:`Frame`), one module per kind of input,
and a registry (:func:`open_source`) that picks the kind from a spec.

Finite sources (image files, video files, iterables) deliver every frame in order. Live sources
(camera, network stream, synthetic; see :mod:`.live`) read in a capture thread and always hand
out the newest frame.
"""
from __future__ import annotations

from . import camera, file, images, rosbag, stream, synthetic  # noqa: F401  (importing a kind registers it)
from .base import Frame, Source
from .camera import CameraSource
from .file import VideoFileSource
from .images import ImageSource, image_paths
from .iterable import IterableSource
from .live import LiveSource, VideoCaptureSource
from .rosbag import RosbagSource
from .registry import SourceKind, open_source, register_source, source_kinds
from .stream import STREAM_SCHEMES, StreamSource, redact_url
from .synthetic import SyntheticSource

__all__ = [
    "Frame", "Source", "LiveSource", "VideoCaptureSource", "CameraSource", "StreamSource", "SyntheticSource",
    "VideoFileSource", "ImageSource", "IterableSource", "image_paths", "open_source", "register_source",
    "source_kinds", "SourceKind", "STREAM_SCHEMES", "redact_url", "RosbagSource",
]
