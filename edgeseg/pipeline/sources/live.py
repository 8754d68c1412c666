"""Live sources: a capture thread, a one-slot latest-frame buffer, and reconnection.

A live source (camera, network stream, synthetic-live) produces frames whether or not anyone is
ready for them. Its capture thread reads as fast as the device delivers and keeps only the newest
frame in a single slot; a frame overwritten before the consumer took it is counted in
:attr:`LiveSource.dropped` ("stale"). So the consumer always gets the newest frame, and the
latency of a slow model is never made worse by a backlog.

A lost device is detected two ways: a read that fails (OpenCV returns ``ok=False``), or no frame
for ``read_timeout`` seconds while the consumer waits (a read hung inside the driver or FFmpeg;
the stuck capture thread is abandoned and the device released). Either way it is logged, the
device is released and reopened with exponential backoff (``backoff`` seconds doubling up to
``backoff_max``), and after ``reconnect_timeout`` seconds without success the source gives up
with a :class:`SourceError`. No wait blocks forever: every wait takes a timeout.

Subclasses implement three hooks: ``_open()`` (raise SourceError if the device cannot be opened),
``_read()`` (an image, None if the read failed, raise EOFError at a clean end) and ``_release()``.
"""
from __future__ import annotations

import atexit
import sys
import threading
import time
import weakref
from typing import Any, Callable, Iterator

import numpy as np

from ... import defaults
from ...errors import SourceError
from ..queues import END
from .base import Frame, Source

#: Options every live source takes (see :class:`LiveSource`).
LIVE_OPTIONS = ("read_timeout", "reconnect_timeout", "backoff", "backoff_max", "log")

#: Counter names of :meth:`LiveSource.counters` (besides "stale" drops).
EVENTS = ("read_failures", "read_timeouts", "reconnects")

#: Live sources with a capture thread, closed at interpreter exit (see _close_all).
_RUNNING: "weakref.WeakSet[LiveSource]" = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    """Stop the capture threads of sources nobody closed before the interpreter finalizes: a
    daemon thread still inside an OpenCV call then would abort the process (std::terminate)."""
    for src in list(_RUNNING):
        src.close()


def _stderr_log(msg: str) -> None:
    print(f"edgeseg: {msg}", file=sys.stderr, flush=True)


class LiveSource(Source):
    """Base class of live sources: capture thread, newest-frame slot, reconnect with backoff.

    Args:
        read_timeout: seconds without a frame after which the device counts as lost.
        reconnect_timeout: seconds of failed reopening after which :class:`SourceError` is raised.
        backoff: first wait between reopen attempts (seconds); doubles each attempt.
        backoff_max: cap of the wait between attempts.
        log: called with one line per event (lost, reconnected); default: stderr.
    """

    live = True

    def __init__(self, *, read_timeout: float = defaults.LIVE_READ_TIMEOUT,
                 reconnect_timeout: float = defaults.LIVE_RECONNECT_TIMEOUT,
                 backoff: float = defaults.LIVE_BACKOFF, backoff_max: float = defaults.LIVE_BACKOFF_MAX,
                 log: Callable[[str], None] | None = None) -> None:
        if read_timeout <= 0 or reconnect_timeout < 0 or backoff <= 0 or backoff_max < backoff:
            raise SourceError("need read_timeout > 0, reconnect_timeout >= 0 and 0 < backoff <= backoff_max")
        self.read_timeout = float(read_timeout)
        self.reconnect_timeout = float(reconnect_timeout)
        self.backoff = float(backoff)
        self.backoff_max = float(backoff_max)
        self.log = log or _stderr_log
        self.captured = 0  #: frames read from the device
        self.delivered = 0  #: frames handed to the consumer
        self.dropped = 0  #: frames overwritten in the slot before the consumer took them
        self.read_failures = 0
        self.read_timeouts = 0
        self.reconnects = 0
        self._cond = threading.Condition()
        self._slot: Frame | None = None
        self._error: BaseException | None = None
        self._ended = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._gen = 0  # bumped to abandon a capture thread stuck in a read
        self._reading = False
        self._last_frame = 0.0

    # ------------------------------------------------------------------ hooks for subclasses
    def _open(self) -> None:  # pragma: no cover - interface
        """Open (or reopen) the device; raise SourceError saying what to try if impossible."""
        raise NotImplementedError

    def _read(self) -> np.ndarray | None:  # pragma: no cover - interface
        """One BGR frame; None when the read failed; raise EOFError at a clean end."""
        raise NotImplementedError

    def _release(self) -> None:
        """Release the device (may be called while a read is blocked in another thread)."""

    def _wait_next(self) -> None:
        """Wait until the next frame is due (paced sources); not counted as read time."""

    # ------------------------------------------------------------------ consumer side
    def start(self) -> None:
        """Open the device (errors surface here, synchronously) and start the capture thread."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._open()
        self._last_frame = time.perf_counter()
        self._spawn(opened=True)

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called (until a new :meth:`start`)."""
        return self._stop.is_set()

    def get(self, timeout: float) -> Frame | object | None:
        """The newest frame not yet delivered; None after ``timeout`` seconds without one;
        :data:`END` once the source has ended. Raises SourceError when the source gave up."""
        if self._thread is None:
            self.start()
        deadline = time.perf_counter() + timeout
        with self._cond:
            while True:
                if self._slot is not None:
                    frame, self._slot = self._slot, None
                    self.delivered += 1
                    return frame
                if self._error is not None:
                    raise self._error
                if self._ended:
                    return END
                now = time.perf_counter()
                if self._reading and now - self._last_frame > self.read_timeout:
                    self._abandon_stuck_read(now)
                remaining = deadline - now
                if remaining <= 0:
                    return None
                self._cond.wait(min(remaining, 0.05))

    def counters(self) -> dict[str, int]:
        """Drops ("stale") and events so far (read failures/timeouts, reconnects)."""
        return {"stale": self.dropped, **{k: getattr(self, k) for k in EVENTS}}

    def __iter__(self) -> Iterator[Frame]:
        self.start()
        try:
            while True:
                frame = self.get(0.1)
                if frame is END:
                    return
                if frame is not None:
                    yield frame  # type: ignore[misc]
        finally:
            self.close()

    def close(self) -> None:
        """Stop the capture thread (waits at most ~1 s) and release the device. A capture thread
        still inside a driver call after that releases the device itself when the call returns
        (releasing an OpenCV capture while another thread reads it is not safe)."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        t, self._thread = self._thread, None
        if t is not None and t is not threading.current_thread():
            t.join(timeout=1.0)
            if t.is_alive():
                return
        try:
            self._release()
        except Exception:  # releasing a broken device must not mask the real outcome
            pass

    # ------------------------------------------------------------------ capture thread
    def _spawn(self, opened: bool) -> None:
        self._gen += 1
        t = threading.Thread(target=self._capture, args=(self._gen, opened), daemon=True,
                             name=f"edgeseg-capture-{self._gen}")
        self._thread = t
        _RUNNING.add(self)
        t.start()

    def _abandon_stuck_read(self, now: float) -> None:
        # Called with the lock held: the current read has hung; release the device (this
        # usually unblocks the read) and let a fresh capture thread reconnect.
        self.read_timeouts += 1
        self.log(f"{self.describe()}: no frame for {now - self._last_frame:.1f} s (read timeout "
                 f"{self.read_timeout:g} s); reconnecting")
        self._reading = False
        self._last_frame = now
        threading.Thread(target=self._safe_release, daemon=True).start()
        self._spawn(opened=False)

    def _safe_release(self) -> None:
        try:
            self._release()
        except Exception:
            pass

    def _capture(self, gen: int, opened: bool) -> None:
        try:
            while not self._stop.is_set() and gen == self._gen:
                if not opened:
                    if not self._reconnect(gen):
                        return
                    opened = True
                self._wait_next()
                with self._cond:
                    if gen != self._gen:
                        return
                    self._reading = True
                t0 = time.perf_counter()
                try:
                    image = self._read()
                except EOFError:
                    with self._cond:
                        if gen == self._gen:
                            self._ended = True
                            self._cond.notify_all()
                    return
                t1 = time.perf_counter()
                with self._cond:
                    if gen != self._gen or self._stop.is_set():
                        return  # abandoned while blocked in the read
                    self._reading = False
                    if image is None:
                        self.read_failures += 1
                    else:
                        self._last_frame = t1
                        if self._slot is not None:
                            self.dropped += 1
                        self._slot = Frame(image, self.captured, f"frame_{self.captured:06d}", t1,
                                           (t1 - t0) * 1e3)
                        self.captured += 1
                        self._cond.notify_all()
                        continue
                self.log(f"{self.describe()}: read failed; reconnecting")
                self._safe_release()
                opened = False
        except BaseException as e:  # a bug or a SourceError: hand it to the consumer
            with self._cond:
                if gen == self._gen:
                    self._error = e if isinstance(e, SourceError) else SourceError(
                        f"{self.describe()}: capture failed: {type(e).__name__}: {e}")
                    self._cond.notify_all()
        finally:
            if self._stop.is_set():  # closed meanwhile (maybe right after a reconnect opened it)
                self._safe_release()

    def _reconnect(self, gen: int) -> bool:
        """Reopen with exponential backoff; False if stopped; SourceError after the time limit."""
        start = time.perf_counter()
        delay, attempts, last = self.backoff, 0, "no attempt"
        while not self._stop.is_set() and gen == self._gen:
            attempts += 1
            try:
                self._open()
            except SourceError as e:
                last = str(e)
            else:
                with self._cond:
                    self.reconnects += 1
                    self._last_frame = time.perf_counter()
                self.log(f"{self.describe()}: reconnected after {time.perf_counter() - start:.1f} s "
                         f"({attempts} attempt(s))")
                return True
            remaining = self.reconnect_timeout - (time.perf_counter() - start)
            if remaining <= 0:
                raise SourceError(
                    f"{self.describe()} was lost and could not be reopened for "
                    f"{self.reconnect_timeout:g} s ({attempts} attempts; last error: {last}); check "
                    "the cable / network / server, or allow longer with --reconnect-timeout")
            self._stop.wait(min(delay, remaining))
            delay = min(delay * 2, self.backoff_max)
        return False


def _quiet_opencv() -> Any:
    """Silence OpenCV's own warnings while probing a device; returns a restore function."""
    import cv2

    try:
        logging = cv2.utils.logging
        old = logging.getLogLevel()
        logging.setLogLevel(logging.LOG_LEVEL_ERROR)
        return lambda: logging.setLogLevel(old)
    except AttributeError:
        return lambda: None



def _open_capture(*args: Any) -> Any:
    """``cv2.VideoCapture(*args)`` with OpenCV's own error chatter silenced; None if it did not open."""
    import cv2

    restore = _quiet_opencv()
    try:
        cap = cv2.VideoCapture(*args)
        ok = cap.isOpened()
    finally:
        restore()
    if not ok:
        cap.release()
        return None
    return cap


class VideoCaptureSource(LiveSource):
    """A live source read through a ``cv2.VideoCapture`` that ``_open`` stores in ``self._cap``."""

    _cap: Any = None

    def _read(self) -> np.ndarray | None:
        ok, image = self._cap.read()
        return image if ok else None

    def _release(self) -> None:
        if self._cap is not None:
            self._cap.release()
