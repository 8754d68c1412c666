"""Every frame of a video file, in order, through OpenCV."""
from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, Iterator

from ..._io import VIDEO_SUFFIXES
from ...errors import InputFileError, SourceError
from .base import Frame, Source
from .registry import register_source

#: Consecutive failed reads skipped before a video counts as ended.
MAX_BAD_READS = 5


class VideoFileSource(Source):
    """Every frame of a video file, in order, through OpenCV.

    A frame that fails to decode is retried past (up to :data:`MAX_BAD_READS` in a row) and
    counted in :attr:`corrupt`; a video that ends before the frame count its container declares
    (truncated or damaged) is logged and listed in :attr:`failed`, so callers can exit non-zero
    instead of reporting a clean end of stream.
    """

    def __init__(self, path: str | Path, log: Any = None) -> None:
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
        self.corrupt = 0  #: frames that failed to decode and were skipped
        self.failed: list[tuple[Path, str]] = []
        self.log = log or (lambda msg: print(f"edgeseg: {msg}", file=sys.stderr, flush=True))

    def __iter__(self) -> Iterator[Frame]:
        i = bad = 0
        while True:
            t0 = time.perf_counter()
            ok, image = self._cap.read()
            t1 = time.perf_counter()
            if not ok:
                short = self.frame_count is not None and i + self.corrupt < self.frame_count
                if short and bad < MAX_BAD_READS:  # a damaged frame mid-stream: skip it, count it
                    bad += 1
                    self.corrupt += 1
                    continue
                if i == 0:
                    raise SourceError(f"{self.path} has no readable frames (corrupt or empty video)")
                if short:
                    self.corrupt -= bad  # the trailing failures were the end, not skipped frames
                    why = (f"video ended after {i} of the {self.frame_count} frames its container declares "
                           "(truncated or damaged)")
                    self.failed.append((self.path, why))
                    self.log(f"{self.path}: {why}")
                return
            bad = 0
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

