"""Every frame of a video file, in order, through OpenCV."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Iterator

from ..._io import VIDEO_SUFFIXES
from ...errors import InputFileError, SourceError
from .base import Frame, Source
from .registry import register_source


class VideoFileSource(Source):
    """Every frame of a video file, in order, through OpenCV."""

    def __init__(self, path: str | Path) -> None:
        import cv2

        self.path = Path(path)
        if not self.path.is_file():
            raise InputFileError(f"video not found: {self.path}; check the path")
        self._cap = cv2.VideoCapture(str(self.path))
        if not self._cap.isOpened():
            raise SourceError(f"OpenCV cannot open {self.path} as a video (corrupt file or unsupported codec)")
        fps = self._cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if fps and fps > 0 else None
        n = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT))
        self.frame_count = n if n > 0 else None

    def __iter__(self) -> Iterator[Frame]:
        i = 0
        while True:
            t0 = time.perf_counter()
            ok, image = self._cap.read()
            t1 = time.perf_counter()
            if not ok:
                if i == 0:
                    raise SourceError(f"{self.path} has no readable frames (corrupt or empty video)")
                return
            yield Frame(image, i, f"{self.path.stem}_{i:06d}", t1, (t1 - t0) * 1e3)
            i += 1

    def describe(self) -> str:
        return f"video {self.path}"

    def close(self) -> None:
        self._cap.release()


@register_source("file", priority=90, help=f"a video file ({', '.join(VIDEO_SUFFIXES)})")
def _open_file(spec: Any) -> Source | None:
    if isinstance(spec, (str, Path)) and Path(spec).suffix.lower() in VIDEO_SUFFIXES:
        return VideoFileSource(spec)
    return None

