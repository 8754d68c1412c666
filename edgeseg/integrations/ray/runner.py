"""A pool of Ray actors running :class:`~edgeseg.batch.worker.RecordingWorker`.

Each actor reserves ``cpus_per_worker`` CPUs, sizes ONNX Runtime, the C++ core and OpenCV to
them (so N actors on a machine do not oversubscribe its cores), loads the model once and takes
one recording at a time. An actor that dies (killed, out of memory, node lost) is restarted by
Ray and the recording it held is retried on it (``max_task_retries``); the retry starts the
recording from the beginning in a fresh staging folder, so nothing is lost or written twice.
Inputs, outputs and the model are read and written by path: on a cluster every node must see them
at the same paths (a shared file system), with the same edgeseg installed.
"""
from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from collections import deque
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from ... import defaults
from ...batch.inputs import Recording
from ...batch.worker import BatchSettings, RecordingWorker
from ...errors import EdgesegError
from ...pipeline.threads import available_cores, default_thread_policy

#: Object store of a Ray that edgeseg starts itself: frames never travel through it (workers
#: read and write files), so a small store is enough.
OBJECT_STORE_BYTES = 128 * 1024 * 1024
#: Environment of a Ray that edgeseg starts itself (unless already set).
_LOCAL_RAY_ENV = {"RAY_worker_niceness": "0", "RAY_USAGE_STATS_ENABLED": "0"}
#: Seconds between two progress polls of the busy actors.
POLL_S = 0.5


def start_local_ray(num_cpus: int) -> None:
    """Start a Ray on this machine for a batch: no dashboard, a small object store, ``num_cpus``
    CPUs, no usage reporting, and workers at this process's priority (Ray would nice them by 15,
    so a batch would run slower than ``edgeseg run`` wherever other processes use the CPU).
    Settings given in the environment win."""
    import ray

    ours = [k for k in _LOCAL_RAY_ENV if k not in os.environ]
    os.environ.update({k: _LOCAL_RAY_ENV[k] for k in ours})
    try:
        ray.init(num_cpus=num_cpus, include_dashboard=False, object_store_memory=OBJECT_STORE_BYTES,
                 logging_level=logging.WARNING, log_to_driver=False)
    finally:
        for k in ours:
            os.environ.pop(k, None)


@contextlib.contextmanager
def _keep_sigterm_handler() -> Iterator[None]:
    """ray.init replaces the SIGTERM handler with sys.exit; keep the caller's (which stops the
    batch cleanly, like Ctrl-C)."""
    main = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGTERM) if main else None
    try:
        yield
    finally:
        if main and previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _cause(e: BaseException) -> str:
    """The last error line of a worker's traceback (e.g. ``ImportError: libfoo.so ...``)."""
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    errors = [line for line in lines if "Error:" in line or "Exception:" in line]
    return (errors or lines or [type(e).__name__])[-1][:300]


def _short(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}"[:300]


class RayRunner:
    """Runs recordings on Ray actors (see the module docstring).

    Args:
        address: None starts a local Ray (no dashboard, small object store, ``num_cpus`` =
            workers x cpus_per_worker), or reuses one this process already started; "auto" or
            "ray://host:port" joins a running cluster.
        workers: actors (default: the CPUs available / cpus_per_worker, at most ``jobs``).
        cpus_per_worker: CPUs each actor reserves (default 1).
        threads: ONNX Runtime intra-op threads per actor (default: from its CPUs).
        retries: retries of a recording whose actor died.
        runtime_env: the actors' Ray runtime environment.
        log: where one-line notices go.
    """

    name = "ray"

    def __init__(self, settings: BatchSettings, out: Path, *, workers: int | None = None,
                 cpus_per_worker: int | None = None, address: str | None = None, threads: int | None = None,
                 retries: int = defaults.BATCH_RETRIES, runtime_env: dict[str, Any] | None = None,
                 jobs: int | None = None,
                 log: Callable[[str], None] = lambda _msg: None) -> None:
        import ray

        cpus = int(cpus_per_worker or 1)
        if cpus < 1:
            raise EdgesegError(f"--cpus-per-worker must be >= 1, got {cpus}")
        if workers is not None and workers < 1:
            raise EdgesegError(f"--workers must be >= 1, got {workers}")
        if retries < 0:
            raise EdgesegError(f"--retries must be >= 0, got {retries}")
        self.retries = retries
        self.cpus = cpus
        self.address = address
        self.actors: list[Any] = []
        self._started_ray = False
        if not ray.is_initialized():
            with _keep_sigterm_handler():
                self._init(ray, address, workers, cpus, jobs, log)
            self._started_ray = True
        try:
            self._make_actors(settings, out, workers, threads, runtime_env, jobs)
        except BaseException:
            self.close()
            raise

    @staticmethod
    def _init(ray: Any, address: str | None, workers: int | None, cpus: int, jobs: int | None,
              log: Callable[[str], None]) -> None:
        """Start a local Ray, or join the cluster at ``address``."""
        if address is None:
            n = workers or max(1, available_cores() // cpus)
            if jobs:
                n = min(n, jobs)
            log(f"starting a local Ray with {n * cpus} CPU(s)")
            start_local_ray(n * cpus)
        else:
            try:
                ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
            except ImportError as e:  # ray:// needs Ray Client's extra packages
                raise EdgesegError(f"joining {address!r} needs Ray Client: pip install 'edgeseg[ray]' "
                                   f"(ray[client]); {_short(e)}") from None
            except (ConnectionError, ValueError, RuntimeError) as e:
                raise EdgesegError(f"cannot join the Ray cluster at {address!r}: {_short(e)}; start one with "
                                   "`ray start --head` or check the address") from None

    def _make_actors(self, settings: BatchSettings, out: Path, workers: int | None, threads: int | None,
                     runtime_env: dict[str, Any] | None, jobs: int | None) -> None:
        import ray

        cpus = self.cpus
        self.address = self.address or "local"
        total = int(ray.cluster_resources().get("CPU", 0))
        capacity = max(1, total // cpus)
        n = workers or capacity
        if jobs:
            n = min(n, jobs)
        if n > capacity:
            raise EdgesegError(f"{n} workers x {cpus} CPU(s) do not fit the Ray cluster's {total} CPU(s); "
                               "lower --workers or --cpus-per-worker")
        self.workers = n
        policy = default_thread_policy(cores=cpus, ort_threads=threads)
        self.policy = policy
        remote = ray.remote(RecordingWorker).options(
            num_cpus=cpus, max_restarts=-1, max_task_retries=self.retries, max_concurrency=2,
            runtime_env=runtime_env or None)
        self.actors = [remote.remote(settings, str(out), policy, True) for _ in range(n)]

    def describe(self) -> dict[str, Any]:
        return {"runner": self.name, "workers": self.workers, "cpus_per_worker": self.cpus,
                "ray_address": self.address, "threads": self.policy.to_dict(), "retries": self.retries}

    def run(self, jobs: Sequence[tuple[Recording, str]], report: Callable[[dict[str, Any]], None],
            tick: Callable[[int], None]) -> None:
        import ray
        from ray.exceptions import RayActorError, RayError

        queue = deque(jobs)
        idle = deque(range(len(self.actors)))
        pending: dict[Any, tuple[int, Recording]] = {}
        polls: dict[int, Any] = {}  # actor -> outstanding frames() call
        live: dict[int, int] = {}  # actor -> frames of its current recording
        while queue or pending:
            while idle and queue:
                a = idle.popleft()
                rec, key = queue.popleft()
                pending[self.actors[a].process.remote(rec, key)] = (a, rec)
                live[a] = 0
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=POLL_S)
            for ref in ready:
                a, rec = pending.pop(ref)
                idle.append(a)
                live.pop(a, None)
                polls.pop(a, None)
                try:
                    entry = ray.get(ref)
                except RayActorError as e:
                    if e.actor_init_failed:
                        raise EdgesegError(
                            f"the Ray workers cannot start: {_cause(e)}; every node needs the same edgeseg, "
                            "OpenCV and ONNX Runtime as this one. Recordings already done are kept: rerun "
                            "after fixing it") from None
                    entry = self._failed(rec, f"its worker died {self.retries + 1} time(s) while processing it "
                                              f"(last: {_short(e)})")
                except RayError as e:
                    entry = self._failed(rec, _short(e))
                report(entry)
            self._poll(polls, live, {a for a, _ in pending.values()})
            tick(sum(live.values()))

    def _poll(self, polls: dict[int, Any], live: dict[int, int], busy: set[int]) -> None:
        import ray
        from ray.exceptions import RayError

        for a, ref in list(polls.items()):
            done, _ = ray.wait([ref], timeout=0)
            if done:
                del polls[a]
                try:
                    if a in busy:
                        live[a] = int(ray.get(done[0]))
                except RayError:
                    pass
        for a in busy:
            if a not in polls:
                polls[a] = self.actors[a].frames.remote()

    @staticmethod
    def _failed(rec: Recording, error: str) -> dict[str, Any]:
        return {"name": rec.name, "input": rec.spec, "status": "failed", "frames": 0, "fps": None,
                "wall_s": None, "error": error}

    def close(self) -> None:
        import ray

        for actor in self.actors:
            try:
                ray.kill(actor, no_restart=True)
            except Exception:  # noqa: BLE001 - already gone
                pass
        self.actors = []
        if self._started_ray:
            ray.shutdown()
            self._started_ray = False
