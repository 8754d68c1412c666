"""The overlay in a local OpenCV window; q, Esc or closing the window stops the run.

GUI toolkits want one thread to own their windows. :meth:`WindowSink.run` runs a pipeline with
the window drawn from the calling (main) thread: the sink thread only hands over the newest frame,
so a slow display drops frames instead of slowing the pipeline. A WindowSink that is only passed to
a pipeline (``stream(..., sinks=[WindowSink()])``) draws from the pipeline's sink thread instead.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
import threading
from importlib import metadata
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from ...errors import EdgesegError
from .base import Sink

if TYPE_CHECKING:  # pragma: no cover
    from ..results import StreamResult
    from ..stream import Pipeline

#: Keys that stop the run, and the stop reason each one gives.
QUIT_KEYS = {ord("q"): "q pressed", ord("Q"): "q pressed", 27: "Esc pressed"}
#: Milliseconds the GUI loop waits for input when no new frame is there.
IDLE_WAIT_MS = 10

_GUI_WHEEL, _HEADLESS_WHEEL = "opencv-python", "opencv-python-headless"
SWITCH_TO_GUI = f"pip uninstall -y {_HEADLESS_WHEEL} {_GUI_WHEEL} && pip install {_GUI_WHEEL}"


def _installed(dist: str) -> bool:
    try:
        metadata.version(dist)
    except metadata.PackageNotFoundError:
        return False
    return True


def _x11_display_problem(display: str) -> str | None:
    """Why the X display ``display`` cannot be opened (None if it can). Asked of libX11 itself:
    a GUI toolkit that fails to connect aborts the process instead of raising."""
    name = ctypes.util.find_library("X11")
    if name is None:
        return None  # no libX11 to ask: let OpenCV try
    try:
        x11 = ctypes.CDLL(name)
    except OSError:
        return None
    x11.XOpenDisplay.restype = ctypes.c_void_p
    x11.XOpenDisplay.argtypes = [ctypes.c_char_p]
    x11.XCloseDisplay.argtypes = [ctypes.c_void_p]
    handle = x11.XOpenDisplay(display.encode())
    if not handle:
        return (f"cannot connect to the X display {display!r} ($DISPLAY): is the desktop session still "
                "running (or the ssh -X connection still open)?")
    x11.XCloseDisplay(handle)
    return None


def gui_problem() -> str | None:
    """Why an OpenCV window cannot be shown here (None if it can): no display, or an OpenCV
    build without GUI support. The message says what to do instead."""
    import cv2

    save = "or write the result with --save out.mp4 / --save-dir DIR (or watch it with --serve PORT)"
    info = cv2.getBuildInformation()
    gui = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.strip().startswith("GUI:")), "")
    if sys.platform.startswith("linux"):
        display = os.environ.get("DISPLAY")
        wayland_gtk = bool(os.environ.get("WAYLAND_DISPLAY")) and gui.upper().startswith("GTK")
        if not display and not wayland_gtk:
            return ("no display: $DISPLAY is not set (a headless machine, or ssh without -X); run from a "
                    f"desktop session, {save}")
        problem = _x11_display_problem(display) if display else None
        if problem:
            return f"{problem}; {save}"
    if gui.upper() == "NONE":
        both = _installed(_GUI_WHEEL) and _installed(_HEADLESS_WHEEL)
        why = (f"both {_GUI_WHEEL} and {_HEADLESS_WHEEL} are installed and share the cv2 files, the headless "
               "ones won" if both else f"this OpenCV build has no GUI support ({_HEADLESS_WHEEL}?)")
        return f"{why}; switch to the GUI build with: {SWITCH_TO_GUI}; {save}"
    return None


class WindowSink(Sink):
    """Show the overlay (or the frame) in an OpenCV window, 1:1 and resizable.

    q, Esc or closing the window ends the run: :meth:`run` stops the pipeline itself; a sink only
    passed to a pipeline calls ``on_quit()`` (read :attr:`quit_reason` for why) and stops drawing.
    Raises :class:`EdgesegError` when no window can be opened here (see :func:`gui_problem`).
    """

    def __init__(self, title: str = "edgeseg", on_quit: Callable[[], None] | None = None) -> None:
        problem = gui_problem()
        if problem:
            raise EdgesegError(f"--show cannot open a window: {problem}")
        self.title = title
        self.on_quit = on_quit
        self.quit_reason: str | None = None
        self.shown = 0  # frames drawn
        self.received = 0  # frames handed over by the pipeline
        self._lock = threading.Lock()
        self._latest: np.ndarray | None = None
        self._latest_seq = 0
        self._shown_seq = 0
        self._owner: threading.Thread | None = None  # the thread running the GUI loop (run())
        self._open = False
        self._fresh = threading.Event()  # set by put(): wakes a GUI loop that has no window yet

    # ------------------------------------------------------------------ pipeline side
    def put(self, result: "StreamResult") -> None:
        image = result.vis if result.vis is not None else result.frame
        with self._lock:
            self._latest = image
            self._latest_seq += 1
            self.received += 1
        self._fresh.set()
        if self._owner is None and self.quit_reason is None:
            self.pump()

    def close(self) -> None:
        if self._owner is None or self._owner is threading.current_thread():
            self._destroy()
        # else: run() destroys the window from its own thread when the pipeline has ended

    # ------------------------------------------------------------------ GUI side
    def pump(self) -> str | None:
        """Draw the newest frame if it was not drawn yet, handle keys and a closed window.
        Call it from the thread that owns the window; returns the quit reason once the user quit."""
        import cv2

        if self.quit_reason is not None:
            return self.quit_reason
        with self._lock:
            image, seq = self._latest, self._latest_seq
        if image is not None and seq != self._shown_seq:
            self._show(cv2, image)
            self._shown_seq = seq
            key = cv2.waitKey(1)
        elif self._open:
            key = cv2.waitKey(IDLE_WAIT_MS)
        else:  # no window yet: waitKey would return at once (a busy loop)
            self._fresh.wait(IDLE_WAIT_MS / 1e3)
            self._fresh.clear()
            return None
        reason = QUIT_KEYS.get(key & 0xFF) if key != -1 else None
        if reason is None and self._open and not self._visible(cv2):
            reason = "window closed"
            self._open = False
        if reason is not None:
            self.quit_reason = reason
            if self.on_quit is not None:
                self.on_quit()
        return reason

    def run(self, pipe: "Pipeline") -> dict[str, Any]:
        """Run ``pipe`` (which has this sink) while drawing from the calling thread until the
        pipeline ends or the user quits; returns ``pipe.summary()``. Errors of the run re-raise
        here; Ctrl-C stops cleanly, as in :meth:`Pipeline.run`."""
        self._owner = threading.current_thread()
        try:
            pipe.start()
            try:
                while pipe.running:
                    reason = self.pump()
                    if reason is not None:
                        pipe.stop(reason)
                        break
                pipe.join()
            except KeyboardInterrupt:
                pipe.stop("interrupted")
                pipe.join(timeout=3.0)
        finally:
            self._destroy()
            self._owner = None
        return pipe.summary()

    def _show(self, cv2: Any, image: np.ndarray) -> None:
        if not self._open:
            cv2.namedWindow(self.title, cv2.WINDOW_NORMAL | cv2.WINDOW_KEEPRATIO | cv2.WINDOW_GUI_NORMAL)
            cv2.resizeWindow(self.title, int(image.shape[1]), int(image.shape[0]))
            self._open = True
        cv2.imshow(self.title, image)
        self.shown += 1

    def _visible(self, cv2: Any) -> bool:
        try:
            return cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) >= 1
        except cv2.error:  # some backends raise for a window that no longer exists
            return False

    def _destroy(self) -> None:
        if not self._open:
            return
        import cv2

        self._open = False
        try:
            cv2.destroyWindow(self.title)
            cv2.waitKey(1)
        except cv2.error:  # already gone (closed by the user)
            pass

    def describe(self) -> str:
        return f"window {self.title!r}"
