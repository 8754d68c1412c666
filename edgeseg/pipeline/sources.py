"""Frame sources: one small interface (iterate -> Frame), one class per kind of input.

Finite sources (this module: :class:`VideoFileSource`, :class:`ImageSource`,
:class:`IterableSource`) deliver every frame in order. Live sources (:mod:`.live`:
:class:`~.live.CameraSource`, :class:`~.live.StreamSource`, :class:`~.live.SyntheticSource`) read
in a capture thread and always hand out the newest frame. :func:`open_source` picks the class
from a spec string.
"""
from __future__ import annotations

import glob as _glob
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

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
    read_ms: float = 0.0  #: time spent reading/decoding this frame


class Source:
    """A finite or live sequence of frames. Iterate it; close it when done (or use ``with``).

    ``live`` is False for sources whose every frame matters (files, folders): they are read in
    order and never dropped. Live sources (:class:`.live.LiveSource`) set it True.
    """

    fps: float | None = None
    live: bool = False

    def __iter__(self) -> Iterator[Frame]:  # pragma: no cover - interface
        raise NotImplementedError

    def close(self) -> None:
        """Release the underlying device or file."""

    def describe(self) -> str:
        """A short human-readable name for logs and summaries."""
        return type(self).__name__

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
            t0 = time.perf_counter()
            image = read_image(p)
            t1 = time.perf_counter()
            yield Frame(image, i, p.stem, t1, (t1 - t0) * 1e3)

    def describe(self) -> str:
        return f"{len(self.paths)} image(s) from {self.paths[0].parent}"

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


class IterableSource(Source):
    """Frames from any iterable of BGR uint8 arrays (a generator, a list), in order."""

    def __init__(self, frames: Iterable[np.ndarray], fps: float | None = None, name: str = "frame") -> None:
        self._frames = frames
        self.fps = fps
        self._name = name

    def __iter__(self) -> Iterator[Frame]:
        it = iter(self._frames)
        i = 0
        while True:
            t0 = time.perf_counter()
            try:
                image = next(it)
            except StopIteration:
                return
            t1 = time.perf_counter()
            if not isinstance(image, np.ndarray):
                raise InputFileError(f"frame {i} is a {type(image).__name__}, not a BGR uint8 numpy array")
            yield Frame(image, i, f"{self._name}_{i:06d}", t1, (t1 - t0) * 1e3)
            i += 1

    def describe(self) -> str:
        return f"iterable of frames ({type(self._frames).__name__})"


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


STREAM_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://", "srt://")


def open_source(spec: str | int | Path | Source, **options: Any) -> Source:
    """Open a source from a spec; ``options`` go to live sources (see :mod:`.live`).

    ``spec`` is one of:
      - an ``int`` camera index, or a V4L2 device path ``/dev/videoN``   -> CameraSource (live)
      - ``rtsp://``, ``http(s)://``, ``rtmp://``, ``udp://`` ... URL    -> StreamSource (live)
      - ``synthetic`` or ``synthetic:FPS``                              -> SyntheticSource (live)
      - a video file                                                    -> VideoFileSource
      - an image, a folder of images or a glob                         -> ImageSource
    A :class:`Source` is returned as is. Finite sources take no options.
    """
    if isinstance(spec, Source):
        return spec
    if isinstance(spec, int) and not isinstance(spec, bool):
        from .live import CameraSource

        return CameraSource(spec, **options)
    text = str(spec)
    if text == "synthetic" or text.startswith("synthetic:"):
        from .live import SyntheticSource

        if ":" in text:
            try:
                options["fps"] = float(text.split(":", 1)[1])
            except ValueError:
                raise SourceError(f"bad synthetic source {text!r}; use synthetic or synthetic:FPS (e.g. synthetic:15)") from None
        return SyntheticSource(**options)
    if text.lower().startswith(STREAM_SCHEMES):
        from .live import StreamSource

        return StreamSource(text, **options)
    if text.startswith("/dev/video"):
        from .live import CameraSource

        return CameraSource(text, **options)
    if options:
        raise SourceError(f"options {sorted(options)} apply to live sources only (camera, stream, synthetic), "
                          f"not to {text}")
    p = Path(spec)
    if p.suffix.lower() in VIDEO_SUFFIXES:
        return VideoFileSource(p)
    return ImageSource(image_paths(spec))
