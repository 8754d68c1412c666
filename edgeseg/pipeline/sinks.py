"""Frame sinks. Files appear only when complete: a video is written to a temporary file and moved
into place on close, so an interrupted run never leaves a half-written file behind.

Every sink has ``put(result)`` (a :class:`~edgeseg.pipeline.stream.StreamResult`), ``close()`` and
``abort()``; ``needs_image`` says whether it uses the rendered overlay (``result.vis``), so the
pipeline skips rendering when no sink shows pixels.
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Callable

import numpy as np

from .._io import FILE_MODE, write_image
from ..errors import EdgesegError, InputFileError

if TYPE_CHECKING:  # pragma: no cover
    from .stream import StreamResult


def _public_mode(path: Path) -> None:
    """mkstemp creates files 0600; give the finished file the usual umask-based mode."""
    os.chmod(path, FILE_MODE)


class Sink:
    """Interface of pipeline outputs. Called from the pipeline's sink thread only."""

    needs_image: bool = True

    def put(self, result: "StreamResult") -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def close(self) -> Any:
        """Finish the output (files move into place here)."""

    def abort(self) -> None:
        """Drop partial output."""
        self.close()

    def describe(self) -> str:
        return type(self).__name__

_FOURCC = {".mp4": "mp4v", ".avi": "MJPG", ".mkv": "mp4v", ".mov": "mp4v"}


class VideoSink(Sink):
    """Write BGR frames to a video file (codec chosen by suffix: .mp4 -> mp4v, .avi -> MJPG)."""

    def __init__(self, path: str | os.PathLike, fps: float = 30.0) -> None:
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


class ImageDirSink(Sink):
    """Write each rendered frame as ``DIR/<frame name><suffix>`` (atomic per file)."""

    def __init__(self, directory: str | os.PathLike, suffix: str = ".jpg") -> None:
        self.dir = Path(directory)
        if self.dir.exists() and not self.dir.is_dir():
            raise InputFileError(f"{self.dir} exists and is not a folder; give a folder for --save-dir")
        self.dir.mkdir(parents=True, exist_ok=True)
        self.suffix = suffix
        self.frames = 0

    def put(self, result: "StreamResult") -> None:
        image = result.vis if result.vis is not None else result.frame
        write_image(self.dir / f"{result.name}{self.suffix}", image)
        self.frames += 1

    def describe(self) -> str:
        return f"images {self.dir}/"

    def close(self) -> Path:
        return self.dir


class JsonlSink(Sink):
    """One JSON object per frame and line (see :meth:`StreamResult.record` for the keys).

    Lines are written whole and flushed one by one into ``.NAME.partial`` beside the target, which
    is moved onto the target on close: the file appears complete, and an interrupted run leaves a
    line-complete partial file.
    """

    needs_image = False

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = self.path.with_name(f".{self.path.name}.partial")
        self._fh: IO[str] | None = open(self._tmp, "w", encoding="utf-8")
        self.lines = 0

    def put(self, result: "StreamResult") -> None:
        assert self._fh is not None, "JsonlSink is closed"
        self._fh.write(json.dumps(result.record(), separators=(",", ":")) + "\n")
        self._fh.flush()
        self.lines += 1

    def describe(self) -> str:
        return f"jsonl {self.path}"

    def close(self) -> Path | None:
        if self._fh is None:
            return self.path if self.path.exists() else None
        self._fh.close()
        self._fh = None
        _public_mode(self._tmp)
        os.replace(self._tmp, self.path)
        return self.path

    def abort(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        self._tmp.unlink(missing_ok=True)


def gui_problem() -> str | None:
    """Why an OpenCV window cannot be shown here (None if it can)."""
    import cv2

    info = cv2.getBuildInformation()
    gui = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.strip().startswith("GUI:")), "")
    if gui.upper() == "NONE":
        return ("this OpenCV build has no GUI support (opencv-python-headless); install opencv-python "
                "instead of opencv-python-headless to use --show, or write the result with --save out.mp4")
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return ("no display: $DISPLAY is not set (headless machine or ssh without -X); run from a desktop "
                "session, or write the result with --save out.mp4 / --save-dir DIR")
    return None


class WindowSink(Sink):
    """Show frames in an OpenCV window; pressing q or Esc calls ``on_quit`` (stops the pipeline)."""

    def __init__(self, title: str = "edgeseg", on_quit: Callable[[], None] | None = None) -> None:
        problem = gui_problem()
        if problem:
            raise EdgesegError(f"--show cannot open a window: {problem}")
        self.title = title
        self.on_quit = on_quit
        self._open = False

    def put(self, result: "StreamResult") -> None:
        import cv2

        cv2.imshow(self.title, result.vis if result.vis is not None else result.frame)
        self._open = True
        if (cv2.waitKey(1) & 0xFF) in (ord("q"), 27) and self.on_quit is not None:
            self.on_quit()

    def describe(self) -> str:
        return f"window {self.title!r}"

    def close(self) -> None:
        if self._open:
            import cv2

            cv2.destroyWindow(self.title)
            cv2.waitKey(1)
            self._open = False
