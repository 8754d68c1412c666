"""Frame sources: one small interface (iterate -> Frame), one class per kind of input."""
from __future__ import annotations

import glob as _glob
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from .._io import IMAGE_SUFFIXES, VIDEO_SUFFIXES, read_image
from ..errors import InputFileError, SourceError


@dataclass
class Frame:
    """One frame: BGR uint8 image, its index in the source, a name and the capture timestamp
    (``time.perf_counter()`` seconds when the frame was read)."""

    image: np.ndarray
    index: int
    name: str
    t_capture: float


class Source:
    """A finite or live sequence of frames. Iterate it; close it when done (or use ``with``)."""

    fps: float | None = None

    def __iter__(self) -> Iterator[Frame]:  # pragma: no cover - interface
        raise NotImplementedError

    def close(self) -> None:
        """Release the underlying device or file."""

    def __enter__(self) -> "Source":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ImageSource(Source):
    """Image files in order: one path, a folder (sorted) or a glob pattern."""

    def __init__(self, paths: list[Path]) -> None:
        if not paths:
            raise InputFileError("no images to read; give an image file, a folder of images or a glob")
        self.paths = paths

    def __iter__(self) -> Iterator[Frame]:
        for i, p in enumerate(self.paths):
            image = read_image(p)
            yield Frame(image, i, p.stem, time.perf_counter())

    def __len__(self) -> int:
        return len(self.paths)


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
            ok, image = self._cap.read()
            if not ok:
                if i == 0:
                    raise SourceError(f"{self.path} has no readable frames (corrupt or empty video)")
                return
            yield Frame(image, i, f"{self.path.stem}_{i:06d}", time.perf_counter())
            i += 1

    def close(self) -> None:
        self._cap.release()


def image_paths(spec: str | Path) -> list[Path]:
    """Expand an image path, folder or glob into a sorted list of image files."""
    p = Path(spec)
    if p.is_dir():
        paths = sorted(q for q in p.iterdir() if q.suffix.lower() in IMAGE_SUFFIXES)
        if not paths:
            raise InputFileError(f"folder {p} holds no images ({', '.join(IMAGE_SUFFIXES)})")
        return paths
    if p.is_file():
        return [p]
    if any(ch in str(spec) for ch in "*?["):
        paths = sorted(Path(q) for q in _glob.glob(str(spec)) if Path(q).suffix.lower() in IMAGE_SUFFIXES)
        if not paths:
            raise InputFileError(f"glob {spec!r} matches no images")
        return paths
    raise InputFileError(f"{spec} does not exist; give an image, a folder of images, a glob or a video")


def open_source(spec: str | Path) -> Source:
    """Open a file-like source: a video file, an image, a folder of images or a glob."""
    p = Path(spec)
    if p.suffix.lower() in VIDEO_SUFFIXES:
        return VideoFileSource(p)
    return ImageSource(image_paths(spec))
