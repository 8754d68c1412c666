"""Run a model over many recordings: resume, schedule, summarise.

:func:`run_batch` expands the inputs, skips recordings whose outputs were already written with
the same model file, settings and input files, hands the rest to a runner (Ray actors when Ray is
installed, else :class:`SequentialRunner` in this process), shows progress over recordings and
frames, and keeps ``OUT/summary.json`` up to date (written atomically).
"""
from __future__ import annotations

import hashlib
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Protocol, Sequence

from .. import __version__, defaults
from .._io import write_json
from .._progress import Progress
from ..errors import EdgesegError
from .inputs import Recording, expand_inputs
from .worker import STAGING, BatchSettings, RecordingWorker, read_done, staging_pattern

SUMMARY_JSON = "summary.json"
#: Least seconds between two rewrites of summary.json while a batch runs.
SUMMARY_INTERVAL = 2.0

Report = Callable[[dict[str, Any]], None]
Tick = Callable[[int], None]


class Runner(Protocol):
    """Processes jobs: calls ``report(entry)`` once per job and ``tick(frames_in_flight)`` as
    frames of unfinished jobs complete."""

    name: str
    workers: int

    def run(self, jobs: Sequence[tuple[Recording, str]], report: Report, tick: Tick) -> None: ...

    def close(self) -> None: ...

    def describe(self) -> dict[str, Any]: ...


class SequentialRunner:
    """One recording after another in this process, with one model (the fallback without Ray)."""

    name = "sequential"
    workers = 1

    def __init__(self, settings: BatchSettings, out: Path, threads: int | None = None) -> None:
        from ..pipeline import default_thread_policy

        self.worker = RecordingWorker(settings, out, default_thread_policy(ort_threads=threads))

    def run(self, jobs: Sequence[tuple[Recording, str]], report: Report, tick: Tick) -> None:
        self.worker.on_frame = tick
        for rec, key in jobs:
            report(self.worker.process(rec, key))

    def close(self) -> None:
        self.worker.on_frame = None

    def describe(self) -> dict[str, Any]:
        return {"runner": self.name, "workers": 1, "threads": self.worker.policy.to_dict()}


def model_digest(path: Path) -> str:
    """SHA-256 of a model file, or of every file of a model folder (names and contents)."""
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        if path.is_dir():
            h.update(str(f.relative_to(path)).encode() + b"\0")
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def recording_key(model_sha256: str, settings: BatchSettings, rec: Recording) -> str:
    """What a finished recording's outputs depend on: model content, settings, input files."""
    blob = json.dumps({"model": model_sha256, "options": settings.options(), "input": rec.spec,
                       "fingerprint": rec.fingerprint, "edgeseg": __version__}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def _stderr(msg: str) -> None:
    print(f"edgeseg batch: {msg}", file=sys.stderr, flush=True)


def ray_available() -> bool:
    """Whether Ray can be imported (the ``edgeseg[ray]`` extra)."""
    from ..integrations.ray import is_available

    return is_available()


def run_batch(settings: BatchSettings, inputs: Iterable[str], out: str | Path, *, use_ray: bool | None = None,
              workers: int | None = None, cpus_per_worker: int | None = None, ray_address: str | None = None,
              threads: int | None = None, retries: int = defaults.BATCH_RETRIES, force: bool = False,
              runtime_env: dict[str, Any] | None = None, progress: bool = True,
              log: Callable[[str], None] = _stderr) -> dict[str, Any]:
    """Run ``settings.model`` over every recording of ``inputs`` into ``out``; returns the summary
    (also written to ``OUT/summary.json``).

    Args:
        use_ray: True: Ray (error if missing); False: in this process; None: Ray when installed.
        workers: Ray actors (default: local cores / cpus_per_worker; on a cluster, its CPUs / cpus_per_worker).
        cpus_per_worker: CPUs each actor reserves and sizes its threads to (default 1).
        ray_address: None starts (or reuses) a local Ray; "auto" or "ray://host:port" joins a cluster.
        threads: ONNX Runtime intra-op threads per worker (default: from the worker's CPUs).
        retries: times a recording is retried on a fresh worker after its worker died.
        force: redo recordings even if their outputs are up to date.
        runtime_env: Ray runtime environment of the actors (env_vars, pip, ...).
    """
    from ..runtime import default_model_path

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise EdgesegError(f"--out {out} exists and is not a folder; give a folder for the outputs")
    recs = expand_inputs(inputs)
    model_path = Path(settings.model) if settings.model is not None else default_model_path(settings.task)
    if not model_path.exists():
        raise EdgesegError(f"model not found: {model_path}; check the path")
    digest = model_digest(model_path)
    if (use_ray or ray_address) and not ray_available():
        raise EdgesegError("Ray is not installed: pip install 'edgeseg[ray]' (or drop --ray-address/--workers "
                           "to run the recordings one after another in this process)")
    if use_ray is None:
        use_ray = ray_available()
        if not use_ray:
            log("Ray is not installed (pip install 'edgeseg[ray]'): running the recordings one after another "
                "in this process")
    if use_ray:  # fail fast on a bad model or model facts, before any worker starts (in-process: it loads first)
        from ..runtime import load

        load(settings.model, threads=1, task=settings.task if settings.model is None else "semantic",
             **dict(settings.load_options))

    keys = {r.name: recording_key(digest, settings, r) for r in recs}
    entries: dict[str, dict[str, Any]] = {}
    jobs: list[tuple[Recording, str]] = []
    for r in recs:
        done = None if force else read_done(out, r, keys[r.name])
        if done is not None:
            entries[r.name] = done
        else:
            entries[r.name] = {"name": r.name, "input": r.spec, "status": "pending"}
            jobs.append((r, keys[r.name]))
    # Longest first: one task per recording, so a long one started last would set the tail.
    jobs.sort(key=lambda job: job[0].size, reverse=True)
    if len(jobs) < len(recs):
        log(f"{len(recs) - len(jobs)} of {len(recs)} recording(s) already done with this model and "
            "settings: skipped")

    started = time.time()
    state = {"frames_done": 0, "last_write": 0.0, "failed": 0, "done": 0}
    bar = Progress(len(jobs), "batch", enabled=progress and bool(jobs))
    meta: dict[str, Any] = {"edgeseg": __version__, "model": str(model_path), "model_sha256": digest,
                            "options": settings.options(), "out": str(out.resolve())}

    def summary(runner_info: dict[str, Any]) -> dict[str, Any]:
        counts: dict[str, int] = {}
        for e in entries.values():
            counts[e["status"]] = counts.get(e["status"], 0) + 1
        wall = time.time() - started
        return {**meta, **runner_info, "started_unix": round(started, 3), "wall_s": round(wall, 3),
                "finished": "pending" not in counts, "counts": counts,
                "frames": sum(int(e.get("frames") or 0) for e in entries.values() if e["status"] == "done"),
                "recordings_per_s": round(state["done"] / wall, 4) if wall > 0 else None,
                "recordings": [entries[r.name] for r in recs]}

    runner_info: dict[str, Any] = {"runner": None, "workers": 0}

    def write(final: bool = False) -> None:
        now = time.perf_counter()
        if final or now - state["last_write"] >= SUMMARY_INTERVAL:
            state["last_write"] = now
            write_json(out / SUMMARY_JSON, summary(runner_info))

    def report(entry: dict[str, Any]) -> None:
        entries[entry["name"]] = entry
        state["done"] += 1
        if entry["status"] == "done":
            state["frames_done"] += int(entry.get("frames") or 0)
        else:
            state["failed"] += 1
            log(f"{entry['name']} failed: {entry.get('error')}")
        bar.update(1, frames=state["frames_done"], failed=state["failed"])
        write()

    def tick(live: int) -> None:
        bar.update(0, frames=state["frames_done"] + live, failed=state["failed"])

    if not jobs:
        out.mkdir(parents=True, exist_ok=True)
        runner_info["runner"] = "none"
        write(final=True)
        return summary(runner_info)
    runner: Runner
    if use_ray:
        from ..integrations.ray import RayRunner

        runner = RayRunner(settings, out, workers=workers, cpus_per_worker=cpus_per_worker, address=ray_address,
                           threads=threads, retries=retries, runtime_env=runtime_env, jobs=len(jobs), log=log)
    else:
        runner = SequentialRunner(settings, out, threads=threads)
    out.mkdir(parents=True, exist_ok=True)
    runner_info.update(runner.describe())
    log(f"{len(jobs)} recording(s) on {runner_info['workers']} {runner.name} worker(s) -> {out}")
    try:
        runner.run(jobs, report, tick)
    finally:
        runner.close()
        bar.close()
        write(final=True)
        _clear_staging(out / STAGING, [name for name, e in entries.items() if e["status"] == "pending"])
    return summary(runner_info)


def _clear_staging(folder: Path, interrupted: list[str]) -> None:
    """Remove what the interrupted recordings left in the staging folder (their workers are
    stopped), then the folder itself if empty."""
    if not folder.is_dir():
        return
    patterns = [staging_pattern(name) for name in interrupted]
    for p in folder.iterdir():
        if any(pat.fullmatch(p.name) for pat in patterns):
            shutil.rmtree(p, ignore_errors=True)
    try:
        folder.rmdir()
    except OSError:
        pass
