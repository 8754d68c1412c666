"""A network stream (RTSP, HTTP(S), RTMP, UDP, SRT ...) through OpenCV's FFmpeg backend; live."""
from __future__ import annotations

import re
from typing import Any, Sequence

from ...errors import SourceError
from .live import LIVE_OPTIONS, VideoCaptureSource, _open_capture
from .registry import register_source

#: URL schemes opened as network streams.
STREAM_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://", "srt://")


def redact_url(url: str) -> str:
    """``rtsp://user:secret@host/x`` -> ``rtsp://user:***@host/x`` (for logs and errors)."""
    return re.sub(r"(//[^/:@]+:)[^@/]*@", r"\1***@", url)


class StreamSource(VideoCaptureSource):
    """A network stream (RTSP, HTTP(S), RTMP, UDP ...) through OpenCV's FFmpeg backend.

    FFmpeg's own open/read timeouts are set to ``read_timeout`` where OpenCV supports them, so a
    dead server makes reads fail instead of hanging. RTSP over TCP: set the environment variable
    ``OPENCV_FFMPEG_CAPTURE_OPTIONS=rtsp_transport;tcp``.
    """

    def __init__(self, url: str, **live_options: Any) -> None:
        super().__init__(**live_options)
        self.url = url
        self._cap: Any = None

    def describe(self) -> str:
        return f"stream {redact_url(self.url)}"

    def _open(self) -> None:
        import cv2

        ms = int(self.read_timeout * 1000)
        params: Sequence[int] = []
        if hasattr(cv2, "CAP_PROP_OPEN_TIMEOUT_MSEC") and hasattr(cv2, "CAP_PROP_READ_TIMEOUT_MSEC"):
            params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms]
        cap = _open_capture(self.url, cv2.CAP_FFMPEG, list(params))
        if cap is None:
            raise SourceError(
                f"cannot open {self.describe()}: check the URL, credentials and that the server is "
                "reachable from here (try it with ffplay/VLC); for RTSP over TCP set "
                "OPENCV_FFMPEG_CAPTURE_OPTIONS='rtsp_transport;tcp'")
        fps = cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if fps and 0 < fps < 1000 else None
        self._cap = cap


@register_source("stream", priority=20, live=True, options=LIVE_OPTIONS,
                 help="a network stream URL: " + ", ".join(STREAM_SCHEMES))
def _open_stream(spec: Any, **options: Any) -> StreamSource | None:
    if isinstance(spec, str) and spec.lower().startswith(STREAM_SCHEMES):
        return StreamSource(spec, **options)
    return None

