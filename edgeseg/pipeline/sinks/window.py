"""The overlay in a local OpenCV window (q or Esc stops the run)."""
from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Callable

from ...errors import EdgesegError
from .base import Sink

if TYPE_CHECKING:  # pragma: no cover
    from ..stream import StreamResult


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
