"""Overlay frames into a video file (written to a temporary file, moved into place on close)."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ... import defaults
from ...errors import InputFileError, OutputError
from .base import Sink, _public_mode

if TYPE_CHECKING:  # pragma: no cover
    from ..results import StreamResult


_FOURCC = {".mp4": "mp4v", ".avi": "MJPG", ".mkv": "mp4v", ".mov": "mp4v"}


def _frame_count(path: Path) -> int:
    """Frames a finished video file declares (0 if OpenCV cannot open it: e.g. no index written)."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    try:
        return int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if cap.isOpened() else 0
    finally:
        cap.release()


class VideoSink(Sink):
    """Write BGR frames to a video file (codec chosen by suffix: .mp4 -> mp4v, .avi -> MJPG)."""

    def __init__(self, path: str | os.PathLike, fps: float = defaults.VIDEO_FPS) -> None:
        self.path = Path(path)
        suffix = self.path.suffix.lower()
        if suffix not in _FOURCC:
            raise InputFileError(f"cannot write video {self.path}: use one of {', '.join(_FOURCC)}")
        self.fps = fps
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.stem}.", suffix=suffix, dir=self.path.parent)
        os.close(fd)
        self._tmp = Path(tmp)
        self._writer = None
        self.frames = 0

    def write(self, frame: np.ndarray) -> None:
        import cv2

        if self._writer is None:
            h, w = frame.shape[:2]
            fourcc = cv2.VideoWriter_fourcc(*_FOURCC[self.path.suffix.lower()])
            self._writer = cv2.VideoWriter(str(self._tmp), fourcc, self.fps, (w, h))
            if not self._writer.isOpened():
                self._discard()
                raise InputFileError(f"OpenCV cannot write {self.path}; try an .avi path")
        self._writer.write(frame)
        self.frames += 1

    def put(self, result: "StreamResult") -> None:
        """Pipeline hook: write the rendered overlay of ``result``."""
        self.write(result.vis if result.vis is not None else result.frame)

    def describe(self) -> str:
        return f"video {self.path}"

    def close(self) -> Path | None:
        """Finish the file and move it into place; returns its path (None if no frame was written)."""
        if self._writer is not None:
            self._writer.release()
            self._writer = None
        if self.frames and self._tmp.exists():
            written = _frame_count(self._tmp)
            if written != self.frames:
                self._discard()
                raise OutputError(f"cannot write video {self.path}: {self.frames} frames were given but the file "
                                  f"holds {written} (disk full or the file was removed?); the partial file was "
                                  "removed. Free space or choose another location and run again")
            _public_mode(self._tmp)
            os.replace(self._tmp, self.path)
            return self.path
        self._discard()
        return None

    def abort(self) -> None:
        """Drop the partial file."""
        if self._writer is not None:
            self._writer.release()
            self._writer = None
        self._discard()

    def _discard(self) -> None:
        if self._tmp.exists():
            self._tmp.unlink()

    def __enter__(self) -> "VideoSink":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
