"""`edgeseg run --show` in a real window on a virtual X display (Xvfb): what the window shows is
the overlay + HUD that --save-dir writes, and q, Esc and closing the window stop the run cleanly.
Without a display, --show fails at once and says what to do instead."""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ASSET = Path(__file__).resolve().parents[1] / "edgeseg" / "assets" / "semantic_default.onnx"
SIZE = ("--width", "320", "--height", "240")
TITLE = "edgeseg run"
TOOLS = ("Xvfb", "xdotool", "import")


def _gui_build() -> bool:
    import cv2

    info = cv2.getBuildInformation()
    return not any(line.strip().startswith("GUI:") and line.split(":", 1)[1].strip().upper() == "NONE"
                   for line in info.splitlines())


def _requirements() -> str | None:
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        return f"missing {', '.join(missing)} (Debian: xvfb, xdotool, imagemagick; .ci/run installs them)"
    if not _gui_build():
        return "OpenCV has no GUI support here (opencv-python-headless)"
    if not ASSET.exists():
        return "no default model packaged in this tree"
    return None


def _need_display_stack() -> None:
    problem = _requirements()
    if problem and os.environ.get("CI"):
        pytest.fail(f"CI must run the window tests: {problem}")
    if problem:
        pytest.skip(problem)


@pytest.fixture(scope="module")
def display():
    """A private Xvfb server; yields its DISPLAY name (it picks a free display number itself)."""
    _need_display_stack()
    r, w = os.pipe()
    proc = subprocess.Popen(["Xvfb", "-displayfd", str(w), "-screen", "0", "800x600x24", "-nolisten", "tcp"],
                            pass_fds=(w,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(w)
    try:
        with os.fdopen(r) as fh:
            number = fh.readline().strip()
        assert number.isdigit(), "Xvfb did not report its display number"
        yield f":{number}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _env(display: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env["PYTHONWARNINGS"] = "ignore"
    if display:
        env["DISPLAY"] = display
    return env


def _launch(display: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "edgeseg", "run", "--source", "synthetic", *SIZE, "--show", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(display))


def _xdotool(display: str, *args: str) -> str:
    return subprocess.run(["xdotool", *args], capture_output=True, text=True, timeout=20,
                          env=_env(display)).stdout.strip()


def _window(display: str, proc: subprocess.Popen, timeout: float = 60.0) -> str:
    """The id of the run's visible window, once it is mapped and has drawn frames."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"run ended before its window appeared: {proc.communicate()[1][-2000:]}"
        ids = _xdotool(display, "search", "--onlyvisible", "--name", f"^{TITLE}$").split()
        if ids:
            time.sleep(1.0)  # let it draw a few frames
            return ids[0]
        time.sleep(0.2)
    proc.kill()
    raise AssertionError(f"no window titled {TITLE!r} within {timeout} s")


def _finish(proc: subprocess.Popen, timeout: float = 30.0) -> tuple[str, str]:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"run did not stop within {timeout} s: {err[-2000:]}")
    assert proc.returncode == 0, err[-2000:]
    return out, err


def _close_like_a_window_manager(display: str, window: int) -> None:
    """Send WM_DELETE_WINDOW, as a window manager does when the user clicks the close button."""

    class ClientMessage(ctypes.Structure):
        _fields_ = [("type", ctypes.c_int), ("serial", ctypes.c_ulong), ("send_event", ctypes.c_int),
                    ("display", ctypes.c_void_p), ("window", ctypes.c_ulong), ("message_type", ctypes.c_ulong),
                    ("format", ctypes.c_int), ("data", ctypes.c_long * 5)]

    class XEvent(ctypes.Union):
        _fields_ = [("xclient", ClientMessage), ("pad", ctypes.c_long * 24)]

    x11 = ctypes.CDLL(ctypes.util.find_library("X11"))
    x11.XOpenDisplay.restype = ctypes.c_void_p
    x11.XOpenDisplay.argtypes = [ctypes.c_char_p]
    x11.XInternAtom.restype = ctypes.c_ulong
    x11.XInternAtom.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
    x11.XSendEvent.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.c_int, ctypes.c_long, ctypes.POINTER(XEvent)]
    x11.XFlush.argtypes = x11.XCloseDisplay.argtypes = [ctypes.c_void_p]
    dpy = x11.XOpenDisplay(display.encode())
    assert dpy, f"cannot open {display}"
    try:
        ev = XEvent()
        ev.xclient.type = 33  # ClientMessage
        ev.xclient.window = window
        ev.xclient.message_type = x11.XInternAtom(dpy, b"WM_PROTOCOLS", 0)
        ev.xclient.format = 32
        ev.xclient.data[0] = x11.XInternAtom(dpy, b"WM_DELETE_WINDOW", 0)
        assert x11.XSendEvent(dpy, window, 0, 0, ctypes.byref(ev))
        x11.XFlush(dpy)
    finally:
        x11.XCloseDisplay(dpy)


def _has_hud(image: np.ndarray) -> bool:
    """The HUD: a black box in the top-left corner with white text in it."""
    box = image[:28, :70].astype(int)
    dark = (box.max(axis=2) < 40).mean()
    white = (box.min(axis=2) > 200).sum()
    return dark > 0.5 and white > 20


def test_show_draws_the_overlay_and_hud_and_ends_at_the_frame_limit(display, tmp_path):
    import cv2

    saved = tmp_path / "frames"
    proc = _launch(display, "--frames", "150", "--save-dir", str(saved))
    wid = _window(display, proc)
    geometry = _xdotool(display, "getwindowgeometry", "--shell", wid)
    shot = tmp_path / "window.png"  # the test artefact: what the user saw
    subprocess.run(["import", "-window", wid, str(shot)], check=True, timeout=30, env=_env(display),
                   capture_output=True)
    out, _ = _finish(proc)
    assert "stopped: frame limit" in out
    assert "WIDTH=320" in geometry and "HEIGHT=240" in geometry, geometry
    assert _xdotool(display, "search", "--name", f"^{TITLE}$") == ""  # the window is gone
    seen = cv2.imread(str(shot))
    assert seen is not None and seen.shape == (240, 320, 3), None if seen is None else seen.shape
    frames = sorted(saved.glob("*.jpg"))
    assert len(frames) == 150
    diffs = [np.abs(cv2.imread(str(f)).astype(int) - seen).mean() for f in frames]
    best = int(np.argmin(diffs))
    # the window shows one of the written frames, pixel for pixel up to JPEG noise, and not
    # just any frame of the moving scene
    assert diffs[best] < 3.0, (diffs[best], frames[best].name)
    assert max(diffs) > diffs[best] + 3.0, (max(diffs), diffs[best])
    assert _has_hud(seen)
    assert seen.std() > 20  # a scene, not a blank window


@pytest.mark.parametrize("key, reason", [("q", "q pressed"), ("Escape", "Esc pressed")])
def test_key_stops_the_run(display, key, reason, tmp_path):
    proc = _launch(display, "--stats", str(tmp_path / "s.json"))
    wid = _window(display, proc)
    _xdotool(display, "key", "--window", wid, key)
    out, _ = _finish(proc)
    assert f"stopped: {reason}" in out
    assert (tmp_path / "s.json").exists()  # the run ended through its normal path


def test_closing_the_window_stops_the_run(display):
    proc = _launch(display)
    wid = _window(display, proc)
    _close_like_a_window_manager(display, int(wid))
    out, _ = _finish(proc)
    assert "stopped: window closed" in out


@pytest.mark.parametrize("display_value, expected", [(None, "$DISPLAY is not set"),
                                                     (":4097", "cannot connect to the X display")])
def test_show_without_display_fails_at_once(display_value, expected, tmp_path):
    r = subprocess.run([sys.executable, "-m", "edgeseg", "run", "--source", "synthetic", "--show", "--frames", "5",
                        "--model", str(tmp_path / "never_loaded.onnx")],
                       capture_output=True, text=True, timeout=60, env=_env(display_value))
    assert r.returncode == 2, r.stderr
    assert "--show cannot open a window" in r.stderr and expected in r.stderr
    assert "--save" in r.stderr
    assert "Traceback" not in r.stderr  # and it said so before loading the model (that path does not exist)
