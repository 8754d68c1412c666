"""The threaded video pipeline: capture -> pre -> infer -> post -> render -> sink.

Each stage runs in its own thread; stages hand frames on through bounded queues (1-2 items), so
the stages overlap and throughput approaches 1 / (slowest stage) while memory stays flat. A stage
waits for room downstream *before* it takes its next input, so it never holds a frame it cannot
pass on: with a live source, the frame that enters the pipeline is the newest one at the moment
the pipeline can actually take it. Finite sources (files, folders) are read by a feeder thread
into a 2-slot queue and every frame goes through in order.

Per frame the pipeline records each stage's time, the frame age when its result is ready
(``now - capture timestamp``) and the end-to-end latency (capture -> sinks done) in a
:class:`LatencyStats` with a bounded window. Every wait has a timeout (``TICK``), so ``stop()``
takes effect within a fraction of a second, from any thread or a signal handler.

Use it as ``Pipeline(...).run()`` (blocking), ``start()/stop()/join()`` (from another thread),
``for r in Pipeline(...)`` / :func:`stream` (iterate results), or ``on_result=callback``.
"""
from __future__ import annotations

import atexit
import sys
import threading
import time
import weakref
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from .. import defaults
from ..errors import EdgesegError, OutputError, SourceError
from .sources import LiveSource
from .queues import END, BoundedQueue
from ..tracking import Tracker, make_stabiliser
from .render import draw_hud
from .results import StreamResult
from .sinks import Sink
from .sources import Frame, IterableSource, Source, open_source
from .stats import LatencyStats

#: Longest any pipeline thread waits before re-checking the stop flag (seconds).
TICK = 0.05
#: Stage names in order (also the keys of the per-frame timings, with "capture" and "sink").
STAGES = ("pre", "infer", "post", "render", "sink")


@dataclass
class _Item:  # what travels between stages
    frame: Frame
    timings: dict[str, float]
    tensor: Any = None
    info: Any = None
    output: Any = None
    result: StreamResult | None = None


#: Pipelines whose threads were started, stopped at interpreter exit (see _stop_all).
_STARTED: "weakref.WeakSet[Pipeline]" = weakref.WeakSet()


@atexit.register
def _stop_all() -> None:
    """Stop pipelines still running when the interpreter exits and give their threads a moment
    to finish: a daemon stage thread inside an OpenCV call during finalization would abort the
    process (std::terminate); sinks get closed on the way out."""
    pipes = [p for p in list(_STARTED) if p.running]
    for p in pipes:
        p.stop("interpreter exit")
    for p in pipes:
        try:
            p.join(timeout=2.0)
        except BaseException:  # noqa: BLE001 - an error of the run itself was reported (or not) by its owner
            pass


def _stderr_log(msg: str) -> None:
    print(f"edgeseg: {msg}", file=sys.stderr, flush=True)


class Pipeline:
    """Runs a predictor over a source into sinks, with stages overlapped in threads.

    Args:
        predictor: a SemanticPredictor (anything with ``pre``/``infer``/``post`` and ``meta``).
        source: a :class:`Source`, or a spec for :func:`open_source` ("synthetic", a path, a URL,
            a camera index). The pipeline owns it and closes it when it ends.
        sinks: outputs (:class:`VideoSink`, :class:`ImageDirSink`, :class:`JsonlSink`,
            :class:`WindowSink` ...). Closed when the pipeline ends, whatever the reason.
        max_frames: stop after this many frames (all of them fully processed).
        realtime: pace a finite source at its FPS (like a camera would deliver it).
        smooth: semantic temporal smoothing: k >= 2 (a :class:`ModeFilter` over k frames), a spec
            "mode:K" / "hysteresis:N" / "ema:A" (:mod:`edgeseg.tracking.semantic`), or a
            stabiliser object; 0 = off.
        track: instance models: give detections track ids (:class:`edgeseg.Tracker`): True for
            the default (mask-IoU matching), a dict of Tracker options, or a Tracker. Results
            then hold only tracked detections, with ``track_ids``.
        render: draw overlays (``result.vis``); default: only when a sink needs pixels.
        hud: draw FPS and latency on rendered frames.
        alpha: overlay colour weight.
        legend: semantic overlays: draw the names and colours of the classes in view.
        on_result: called with each :class:`StreamResult` in the sink thread (keep it quick).
        queue_size: capacity of the queues between stages (1 or 2 keeps latency low).
        stats_window: frames kept for the percentiles (memory bound on endless runs).
        log: where one-line notices go (default stderr).
    """

    def __init__(self, predictor: Any, source: Source | str | int | Path,
                 sinks: Sequence[Sink] = (), *, max_frames: int | None = None, realtime: bool = False,
                 smooth: Any = 0, track: Any = False, render: bool | None = None, hud: bool = True,
                 alpha: float = defaults.OVERLAY_ALPHA, legend: bool = False,
                 on_result: Callable[[StreamResult], None] | None = None, queue_size: int = 1,
                 stats_window: int = 10_000,
                 log: Callable[[str], None] | None = None) -> None:
        self.predictor = predictor
        self.source = open_source(source) if not isinstance(source, Source) else source
        self.sinks = list(sinks)
        self.max_frames = max_frames
        self.realtime = realtime
        task = getattr(predictor, "task", "semantic")
        self.legend = legend and task == "semantic"
        self.smoother = make_stabiliser(smooth)
        if self.smoother is not None and task != "semantic":
            raise EdgesegError(f"smoothing (--smooth {smooth}) applies to semantic label maps; this is "
                               f"a {task} model: drop --smooth (instances: --track)")
        self.tracker: Tracker | None = None
        if track is not False and track is not None:
            if task != "instance":
                raise EdgesegError(f"tracking (--track) gives instance detections ids; this is a {task} "
                                   "model: drop --track (semantic labels: --smooth)")
            self.tracker = track if isinstance(track, Tracker) else Tracker(**(track if isinstance(track, dict) else {}))
        self.render = any(s.needs_image for s in self.sinks) if render is None else render
        self.hud = hud
        self.alpha = alpha
        self.on_result = on_result
        self.log = log or _stderr_log
        self.stats = LatencyStats(max_frames=stats_window)
        self.queues = {name: BoundedQueue(queue_size) for name in STAGES}
        self._feed = BoundedQueue(2)  # feeder -> pre, finite sources only
        self._out: BoundedQueue | None = None  # sink -> iterator, when iterating
        self._stop = threading.Event()
        self._source_done = threading.Event()
        self._threads: list[threading.Thread] = []
        self._error: BaseException | None = None
        self._error_raised = False
        self._lock = threading.Lock()
        self._seen_counters: dict[str, int] = {}
        self._taken = 0
        self._hud_times: deque[float] = deque(maxlen=30)
        self.stop_reason: str | None = None
        self.closed: list[str] = []  # what the sinks returned on close
        self._failed_sinks: list[Sink] = []  # sinks whose put raised: aborted, not closed

    # ----------------------------------------------------------------------------- control
    def start(self) -> "Pipeline":
        """Open the source (errors raise here) and start the stage threads; returns self."""
        if self._threads:
            return self
        if isinstance(self.source, LiveSource):
            try:
                self.source.start()
            except BaseException:
                for sink in self.sinks:  # nothing was written: leave no empty outputs behind
                    sink.abort()
                raise
        else:
            self._spawn("capture", self._feeder)
        q = self.queues
        self._spawn("pre", self._stage, self._take, self._pre, q["pre"])
        # (with deeper queues the pre thread could hold an older frame meanwhile: no refresh)
        fresh = isinstance(self.source, LiveSource) and q["pre"].maxsize == 1
        take_pre = self._take_fresh if fresh else q["pre"].get
        self._spawn("infer", self._stage, take_pre, self._infer, q["infer"])
        self._spawn("post", self._stage, q["infer"].get, self._post, q["post"])
        self._spawn("render", self._stage, q["post"].get, self._render, q["render"])
        self._spawn("sink", self._sink_loop)
        _STARTED.add(self)
        return self

    def stop(self, reason: str = "stopped") -> None:
        """Ask every thread to finish now (non-blocking; safe from other threads and signal
        handlers). Frames in flight are discarded; sinks are closed by the sink thread."""
        if self.stop_reason is None:
            self.stop_reason = reason
        self._stop.set()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the threads to end; True when all ended. Re-raises (once) the first error
        a stage hit, e.g. the SourceError of a camera that did not come back."""
        deadline = None if timeout is None else time.perf_counter() + timeout
        for t in self._threads:
            while t.is_alive():
                left = None if deadline is None else deadline - time.perf_counter()
                if left is not None and left <= 0:
                    return False
                t.join(TICK if left is None else min(TICK, left))
        self._sync_source_counters()
        if self._error is not None and not self._error_raised:
            self._error_raised = True
            raise self._error
        return True

    @property
    def running(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    def run(self) -> dict[str, Any]:
        """start(), wait for the end (source exhausted, max_frames, stop(), Ctrl-C), return the
        summary. Ctrl-C stops cleanly: threads joined, sinks closed, then KeyboardInterrupt is
        not re-raised (the summary is returned with ``stopped: "interrupted"``)."""
        try:
            self.start()  # inside the guard: a Ctrl-C while the stages start still stops them all
            self.join()
        except KeyboardInterrupt:
            self.stop("interrupted")
            self.join(timeout=3.0)
        return self.summary()

    def results(self) -> Iterator[StreamResult]:
        """Start (if needed) and yield each result as its sinks are done; leaving the loop
        early stops the pipeline."""
        if self._out is None:
            if self._threads:
                raise RuntimeError("results() must be called before start()")
            self._out = BoundedQueue(2)
        self.start()
        try:
            while True:
                item = self._out.get(TICK)
                if item is END:
                    break
                if item is None:
                    if not self.running:
                        break
                    continue
                yield item
        finally:
            if self.running:
                self.stop("consumer left")
            self.join(timeout=3.0)

    __iter__ = results

    def __enter__(self) -> "Pipeline":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self.join(timeout=3.0)

    def summary(self) -> dict[str, Any]:
        """Latency summary (see :meth:`LatencyStats.summary`) plus source, sinks, queue high-water
        marks and why the run stopped."""
        self._sync_source_counters()
        s = self.stats.summary()
        s["source"] = self.source.describe()
        s["sinks"] = [k.describe() for k in self.sinks]
        s["queue_high_water"] = {k: q.high_water for k, q in self.queues.items()}
        s["stopped"] = self.stop_reason or ("running" if self.running else "not started")
        return s

    # ----------------------------------------------------------------------------- threads
    def _spawn(self, name: str, target: Callable[..., None], *args: Any) -> None:
        t = threading.Thread(target=self._guard, args=(target, *args), name=f"edgeseg-{name}", daemon=True)
        self._threads.append(t)
        t.start()

    def _guard(self, target: Callable[..., None], *args: Any) -> None:
        try:
            target(*args)
        except BaseException as e:  # hand the first error to join(); stop everything
            with self._lock:
                if self._error is None:
                    self._error = e
            self.stop("error")

    def _feeder(self) -> None:
        """Finite sources: read every frame in order into the 2-slot feed queue."""
        src = self.source
        fps = src.fps if self.realtime else None
        t0 = time.perf_counter()
        try:
            for i, frame in enumerate(src):
                if fps:
                    self._stop.wait(max(0.0, t0 + i / fps - time.perf_counter()))
                    frame.t_capture = time.perf_counter()  # it "arrives" now
                while not self._feed.put(frame, TICK):
                    if self._stop.is_set() or self._source_done.is_set():
                        return
                if self._stop.is_set() or self._source_done.is_set():
                    return
            self._feed.put_end()
        finally:
            src.close()

    def _take(self, timeout: float) -> Any:
        """Next input of the pre stage: the newest live frame, or the next file frame."""
        if self.max_frames is not None and self._taken >= self.max_frames:
            self._source_done.set()
            self.stop_reason = self.stop_reason or "frame limit"
            return END
        if isinstance(self.source, LiveSource):
            frame = self.source.get(timeout)
            self._sync_source_counters()
        else:
            frame = self._feed.get(timeout)
        if frame is END:
            self.stop_reason = self.stop_reason or "end of stream"
        elif frame is not None:
            self._taken += 1
        return frame

    def _take_fresh(self, timeout: float) -> Any:
        """Next input of the infer stage from a live source. A preprocessed frame waits in the
        queue while the previous one is inferred; if the source has captured a newer frame by the
        time inference is free, that one is preprocessed here and inferred instead (the waiting
        one is dropped as "superseded"). Without this, an overloaded model would always start on
        a frame one inference period old. The pre thread cannot race for the source meanwhile: it
        waits for room in the (still full) queue."""
        q = self.queues["pre"]
        item = q.peek(timeout)
        if item is None or item is END:
            return q.get(0.0) if item is END else None
        if self._stop.is_set() or self._source_done.is_set() or self.source.closed:
            return q.get(0.0)  # the source is finished: get() would open it again
        try:
            fresh = self.source.get(0.0)
        except SourceError:  # the pre thread meets the error on its next read
            fresh = None
        if isinstance(fresh, Frame):
            q.get(0.0)
            self.stats.drop("superseded")
            return self._pre(fresh)
        return q.get(0.0)

    def _stage(self, take: Callable[[float], Any], work: Callable[[Any], Any], out: BoundedQueue) -> None:
        try:
            while not self._stop.is_set():
                if not out.wait_space(TICK):
                    continue
                item = take(TICK)
                if item is None:
                    continue
                if item is END:
                    out.put_end()
                    return
                item = work(item)
                while not out.put(item, TICK):
                    if self._stop.is_set():
                        return
        finally:
            if take == self._take and isinstance(self.source, LiveSource):
                self.source.close()
                self._sync_source_counters()

    def _pre(self, frame: Frame) -> _Item:
        t0 = time.perf_counter()
        tensor, info = self.predictor.pre(frame.image)
        t1 = time.perf_counter()
        return _Item(frame, {"capture": frame.read_ms, "pre": (t1 - t0) * 1e3}, tensor, info)

    def _infer(self, item: _Item) -> _Item:
        t0 = time.perf_counter()
        item.output = self.predictor.infer(item.tensor)
        item.timings["infer"] = (time.perf_counter() - t0) * 1e3
        item.tensor = None
        return item

    def _post(self, item: _Item) -> _Item:
        t0 = time.perf_counter()
        output = item.output[0]
        if self.smoother is not None and self.smoother.uses_scores:
            output = self.smoother.scores(output, frame=item.frame.image, info=item.info)
        payload = self.predictor.post(output, item.info)
        if self.smoother is not None:
            payload = self.smoother.labels(payload)
        t1 = time.perf_counter()
        item.timings["post"] = (t1 - t0) * 1e3
        f = item.frame
        result = self.predictor.make_result(payload, f.image, item.timings)
        if self.tracker is not None:
            result = self.tracker(result)
            t1 = time.perf_counter()
            item.timings["track"] = (t1 - t0) * 1e3 - item.timings["post"]
        item.result = StreamResult(result, index=f.index, name=f.name, t_capture=f.t_capture, t_result=t1,
                                   stats=self.stats, stamp_ns=f.stamp_ns, frame_id=f.frame_id)
        item.output = item.info = None
        return item

    def _render(self, item: _Item) -> _Item:
        r = item.result
        assert r is not None
        t0 = time.perf_counter()
        if self.render:
            vis = r.overlay(alpha=self.alpha, legend=True) if self.legend else r.overlay(alpha=self.alpha)
            if self.hud:
                self._hud_times.append(t0)
                span = self._hud_times[-1] - self._hud_times[0]
                fps = (len(self._hud_times) - 1) / span if span > 0 else 0.0
                lines = [f"{fps:5.1f} FPS", f"latency {r.age_ms:4.0f} ms"]
                drops = self.stats.dropped.get("stale", 0)
                if drops:
                    lines.append(f"dropped {drops}")
                draw_hud(vis, lines)
            r.vis = vis
        r.timings["render"] = (time.perf_counter() - t0) * 1e3
        return item

    def _sink_loop(self) -> None:
        q = self.queues["render"]
        try:
            while not self._stop.is_set():
                item = q.get(TICK)
                if item is None:
                    continue
                if item is END:
                    break
                r = item.result
                t0 = time.perf_counter()
                for sink in self.sinks:
                    try:
                        sink.put(r)
                    except Exception as e:
                        self._failed_sinks.append(sink)
                        raise _output_error(sink, e) from None
                if self.on_result is not None:
                    self.on_result(r)
                t1 = time.perf_counter()
                self.stats.add({**r.timings, "sink": (t1 - t0) * 1e3, "frame_age": r.age_ms},
                               end_to_end_ms=(t1 - r.t_capture) * 1e3)
                if self._out is not None:
                    while not self._out.put(r, TICK):
                        if self._stop.is_set():
                            return
        finally:
            self._close_sinks()
            if self._out is not None:
                self._out.put_end()

    def _close_sinks(self) -> None:
        for sink in self.sinks:
            if sink in self._failed_sinks:  # its output is incomplete: remove it
                _abort_quietly(sink)
                continue
            try:
                done = sink.close()
            except Exception as e:  # keep closing the others; report this one
                _abort_quietly(sink)
                e = _output_error(sink, e)
                self.log(f"could not close {sink.describe()}: {e}")
                with self._lock:
                    if self._error is None:
                        self._error = e
                continue
            if done is not None:
                self.closed.append(str(done))

    def _sync_source_counters(self) -> None:
        if not hasattr(self.source, "counters"):  # live sources; recordings count skipped messages
            return
        with self._lock:
            for k, v in self.source.counters().items():
                delta = v - self._seen_counters.get(k, 0)
                if delta > 0:
                    self._seen_counters[k] = v
                    (self.stats.drop if k == "stale" else self.stats.event)(k, delta)


def _output_error(sink: Sink, e: Exception) -> Exception:
    """An OSError of a sink (disk full, folder gone) as an OutputError saying what was lost."""
    if isinstance(e, EdgesegError) or not isinstance(e, OSError):
        return e
    return OutputError(f"cannot write {sink.describe()}: {e.strerror or e}; its partial output was removed. "
                       "Free space or choose another location and run again")


def _abort_quietly(sink: Sink) -> None:
    try:
        sink.abort()
    except Exception:  # removing a partial file must not mask the error that caused it
        pass


def as_source(source: Any, **options: Any) -> Source:
    """A Source from a Source, a spec (path, URL, "synthetic", camera index) or an iterable of
    BGR uint8 arrays."""
    if isinstance(source, (Source, str, Path, int)):
        return open_source(source, **options)
    if isinstance(source, np.ndarray):
        return IterableSource([source])
    if isinstance(source, Iterable):
        return IterableSource(source, **options)
    raise TypeError(f"cannot stream from a {type(source).__name__}; give a Source, a path/URL/"
                    "'synthetic'/camera index, or an iterable of BGR uint8 frames")


def stream(predictor: Any, source: Any, sinks: Sequence[Sink] = (), *, max_frames: int | None = None,
           realtime: bool = False, smooth: Any = 0, track: Any = False, render: bool | None = None,
           hud: bool = True,
           on_result: Callable[[StreamResult], None] | None = None, **source_options: Any
           ) -> Iterator[StreamResult]:
    """Run ``predictor`` over ``source`` in a :class:`Pipeline` and yield :class:`StreamResult`
    objects (labels, frame, timestamps, timings, live stats) as they complete."""
    pipe = Pipeline(predictor, as_source(source, **source_options), sinks, max_frames=max_frames,
                    realtime=realtime, smooth=smooth, track=track, render=render, hud=hud, on_result=on_result)
    yield from pipe.results()
