"""Process one recording: the pipeline of ``edgeseg run`` into a staging folder, moved into place
whole when it succeeded.

A :class:`RecordingWorker` loads the model once and then processes recordings one at a time. Each
recording is written into ``OUT/.partial/<name>.partial-<id>/`` (overlay video, ``results.jsonl``,
``stats.json``) and the folder is renamed to ``OUT/<name>/`` at the end: ``OUT/<name>/`` exists
only complete. A staging folder left by an attempt that died (a killed worker) is removed when the
recording is processed again, and counted in ``interrupted_attempts``.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import socket
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .. import __version__, defaults
from ..errors import EdgesegError, SourceError
from .inputs import Recording

#: Folder (inside the output folder) holding recordings being written.
STAGING = ".partial"
#: Per-recording output file names.
RESULTS_JSONL = "results.jsonl"
STATS_JSON = "stats.json"
#: Fault drill: a worker process started with this variable set to k exits abruptly after k
#: frames of a recording's first attempt (the batch must redo that recording). Never set it
#: in production.
EXIT_AFTER_FRAMES_ENV = "EDGESEG_BATCH_EXIT_AFTER_FRAMES"


@dataclass(frozen=True)
class BatchSettings:
    """What a batch runs: the model, how to load it, and what to write per recording.

    ``model`` is a path (None: the model shipped for ``task``). ``load_options`` (pairs or a
    dict) go to :func:`edgeseg.load`, ``source_options`` (e.g. ``topic``) to ``open_source``.
    ``video`` is the overlay video suffix (None: no video). Everything but ``model`` and ``task``
    (the model file's content is hashed instead) keys the resume check.
    """

    model: str | None = None
    task: str = "semantic"
    load_options: tuple[tuple[str, Any], ...] = ()
    video: str | None = ".mp4"
    jsonl: bool = True
    smooth: int = 0
    alpha: float = defaults.OVERLAY_ALPHA
    hud: bool = False
    max_frames: int | None = None
    source_options: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self) -> None:
        for name in ("load_options", "source_options"):  # a dict is fine too: stored as sorted pairs
            value = getattr(self, name)
            items = value.items() if isinstance(value, dict) else value
            pairs = tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in items))
            object.__setattr__(self, name, pairs)

    def options(self) -> dict[str, Any]:
        """The settings that shape the outputs, as JSON-able values (the model path excluded)."""
        d = dataclasses.asdict(self)
        d.pop("model")
        d["load_options"] = {k: list(v) if isinstance(v, tuple) else v for k, v in self.load_options}
        d["source_options"] = dict(self.source_options)
        d.pop("task")  # it only picks the shipped model, whose content is hashed like any model's
        return d


def staging_pattern(name: str) -> re.Pattern[str]:
    """Names of the staging folders of recording ``name`` (current, or left by a dead attempt)."""
    return re.compile(re.escape(name) + r"\.(partial|old)-[0-9a-f]{12}")


class RecordingWorker:
    """Loads the model once; :meth:`process` runs one recording at a time into ``out``.

    Args:
        settings: the batch settings.
        out: the batch output folder.
        policy: thread budget (a :class:`~edgeseg.pipeline.ThreadPolicy`); None = this machine's default.
        fault_drill: honour :data:`EXIT_AFTER_FRAMES_ENV` (only in disposable worker processes).
        on_frame: called with the current recording's frame count after each frame (in-process use).
    """

    def __init__(self, settings: BatchSettings, out: str | os.PathLike, policy: Any = None,
                 fault_drill: bool = False, on_frame: Callable[[int], None] | None = None) -> None:
        import cv2

        from ..pipeline import apply_cpp_threads, default_thread_policy
        from ..runtime import load

        self.settings = settings
        self.out = Path(out)
        self.policy = policy or default_thread_policy()
        apply_cpp_threads(self.policy)
        cv2.setNumThreads(max(1, self.policy.cores))
        self.predictor = load(settings.model, threads=self.policy.ort_threads,
                              task=settings.task if settings.model is None else "semantic",
                              **dict(settings.load_options))
        env = os.environ.get(EXIT_AFTER_FRAMES_ENV, "").strip() if fault_drill else ""
        if env and not env.isdigit():
            raise EdgesegError(f"{EXIT_AFTER_FRAMES_ENV}={env!r}: give a whole number of frames, or unset it")
        self._exit_after = int(env) if env else None
        self._first_attempt = True
        self.on_frame = on_frame
        self._frames = 0

    def frames(self) -> int:
        """Frames done so far in the recording being processed."""
        return self._frames

    def describe(self) -> dict[str, Any]:
        return {"pid": os.getpid(), "host": socket.gethostname(), "threads": self.policy.to_dict(),
                "backend": self.predictor.backend_name}

    def process(self, rec: Recording, key: str) -> dict[str, Any]:
        """Run ``rec`` and move its outputs into ``OUT/<name>/``; returns its summary entry
        (``status`` "done" or "failed", ``frames``, ``fps``, ``wall_s``, ``error`` ...).
        Errors of the recording (corrupt file, unreadable frames) are returned, not raised."""
        t0, started = time.perf_counter(), time.time()
        self._frames = 0
        entry: dict[str, Any] = {"name": rec.name, "input": rec.spec, "status": "failed", "frames": 0,
                                 "fps": None, "wall_s": None, "error": None}
        root = self.out / STAGING
        root.mkdir(parents=True, exist_ok=True)
        entry["interrupted_attempts"] = self._clear_stale(root, rec.name)
        self._first_attempt = entry["interrupted_attempts"] == 0
        stage = root / f"{rec.name}.partial-{uuid.uuid4().hex[:12]}"
        stage.mkdir()
        try:
            stats = self._run(rec, stage)
            stats["batch"] = {"name": rec.name, "input": rec.spec, "key": key, "edgeseg": __version__,
                              "options": self.settings.options(), "worker": self.describe()}
            _write_json(stage / STATS_JSON, stats)
            _commit(stage, self.out / rec.name, root)
            entry.update(status="done", frames=stats["frames"], fps=stats["fps"])
            if stats.get("warning"):
                entry["warning"] = stats["warning"]
        except EdgesegError as e:
            entry["error"] = str(e)
        except Exception as e:  # noqa: BLE001 - a library's failure on this input fails this recording only
            entry["error"] = f"{type(e).__name__}: {e}"
        finally:
            if stage.exists():
                shutil.rmtree(stage, ignore_errors=True)
        if entry["status"] != "done":
            entry["frames"] = self._frames
        entry["wall_s"] = round(time.perf_counter() - t0, 3)
        entry["start_unix"] = round(started, 3)
        return entry

    def _run(self, rec: Recording, stage: Path) -> dict[str, Any]:
        from ..pipeline import JsonlSink, Pipeline, VideoSink, open_source

        if rec.missing:
            raise SourceError(f"{rec.spec} does not exist; check the path")
        s = self.settings
        source = open_source(rec.spec, lenient=True, **dict(s.source_options))
        if source.live:
            source.close()
            raise SourceError(f"{rec.spec} is a live source ({source.describe()}); batch takes recordings: "
                              "video files, image folders, ROS 2 bags")
        sinks: list = []
        try:
            if s.video:
                sinks.append(VideoSink(stage / f"overlay{s.video}", fps=source.fps or defaults.VIDEO_FPS))
            if s.jsonl:
                sinks.append(JsonlSink(stage / RESULTS_JSONL))
        except BaseException:
            for sink in sinks:
                sink.abort()
            source.close()
            raise
        expected = getattr(source, "frame_count", None)
        notes: list[str] = []
        pipe = Pipeline(self.predictor, source, sinks, max_frames=s.max_frames, smooth=s.smooth,
                        hud=s.hud, alpha=s.alpha, on_result=self._count, log=notes.append)
        try:
            summary = pipe.run()
        except BaseException:  # e.g. Ctrl-C while the stages were starting: stop them before leaving
            pipe.stop("interrupted")
            try:
                pipe.join(timeout=5.0)
            except BaseException:  # noqa: BLE001 - the first error is the one raised
                pass
            raise
        if summary["stopped"] == "interrupted":
            raise KeyboardInterrupt  # Ctrl-C: the pipeline stopped cleanly; stop the batch too
        if summary["stopped"] not in ("end of stream", "frame limit"):
            raise SourceError(f"{rec.spec}: the run stopped early ({summary['stopped']})")
        if notes:
            raise SourceError(f"{rec.spec}: {'; '.join(notes)}")
        if expected and summary["frames"] < expected and (s.max_frames is None or summary["frames"] < s.max_frames):
            summary["warning"] = (f"decoded {summary['frames']} of the {expected} frames the file announces "
                                  "(truncated or corrupt at the end?)")
        counters = getattr(source, "counters", None)
        if callable(counters) and any(counters().values()):
            summary["source_counters"] = counters()  # e.g. malformed messages skipped in a bag
        summary["model"] = str(self.predictor.path)
        summary["backend"] = self.predictor.backend_name
        summary["threads"] = self.policy.to_dict()
        summary["outputs"] = sorted(p.name for p in stage.iterdir())
        return summary

    def _count(self, result: Any) -> None:
        self._frames += 1
        if self._exit_after is not None and self._first_attempt and self._frames >= self._exit_after:
            os._exit(70)  # fault drill: die like a killed worker, mid-recording
        if self.on_frame is not None:
            self.on_frame(self._frames)

    @staticmethod
    def _clear_stale(root: Path, name: str) -> int:
        pattern = staging_pattern(name)
        stale = [p for p in root.iterdir() if pattern.fullmatch(p.name)]
        for p in stale:
            shutil.rmtree(p, ignore_errors=True)
        return sum(1 for p in stale if ".partial-" in p.name)


def _write_json(path: Path, obj: Any) -> None:
    from .._io import write_json

    write_json(path, obj)


def _commit(stage: Path, final: Path, root: Path) -> None:
    """Move the finished staging folder to ``final``, replacing an older result there."""
    if final.exists():
        old = root / f"{final.name}.old-{uuid.uuid4().hex[:12]}"
        os.replace(final, old)
        os.replace(stage, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(stage, final)


def read_done(out: Path, rec: Recording, key: str) -> dict[str, Any] | None:
    """The summary entry of ``rec`` if ``OUT/<name>/`` holds a finished run under ``key``, else None."""
    stats_path = out / rec.name / STATS_JSON
    try:
        stats = json.loads(stats_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(stats, dict) or stats.get("batch", {}).get("key") != key:
        return None
    entry = {"name": rec.name, "input": rec.spec, "status": "skipped", "frames": stats.get("frames"),
             "fps": stats.get("fps"), "wall_s": 0.0, "error": None}
    if stats.get("warning"):
        entry["warning"] = stats["warning"]
    return entry
