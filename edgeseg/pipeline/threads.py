"""Thread budget of a running pipeline (``edgeseg run``).

The pipeline already runs its stages in parallel threads (capture, pre, infer, post, render,
sink), and the C++ kernels and ONNX Runtime release the GIL. Inference is normally the slowest
stage, so it gets the cores: ONNX Runtime intra-op threads = cores - 1 (at least 1), leaving one
core for the other stages. The C++ core's pool stays small (1 thread up to 4 cores, else 2):
letterbox/upsample/overlay are already overlapped with inference across stages, and a big pool
would compete with ONNX Runtime for the same cores. ``EDGESEG_NUM_THREADS`` (C++ core) and
``--threads`` (ONNX Runtime) override the defaults.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from .. import defaults
from ..errors import EdgesegError


def available_cores() -> int:
    """CPU cores this process may run on (respects taskset/cgroup affinity where visible)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS / Windows
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class ThreadPolicy:
    """How many threads inference (ONNX Runtime intra-op) and the C++ core get."""

    cores: int
    ort_threads: int
    cpp_threads: int

    def to_dict(self) -> dict[str, int]:
        return {"cores": self.cores, "ort_threads": self.ort_threads, "cpp_threads": self.cpp_threads}


def default_thread_policy(cores: int | None = None, ort_threads: int | None = None) -> ThreadPolicy:
    """The default budget described in this module's docstring (``ort_threads`` overrides)."""
    n = cores or available_cores()
    if ort_threads is not None and not 1 <= int(ort_threads) <= defaults.MAX_THREADS:
        raise EdgesegError(f"--threads must be between 1 and {defaults.MAX_THREADS} (this machine has {n} "
                           f"cores), got {ort_threads}")
    ort = int(ort_threads) if ort_threads else max(1, n - 1)
    cpp = 1 if n <= 4 else 2
    env = os.environ.get(defaults.NUM_THREADS_ENV, "")
    if env.isdigit() and 0 < int(env) <= defaults.MAX_THREADS:
        cpp = int(env)
    return ThreadPolicy(cores=n, ort_threads=ort, cpp_threads=cpp)


def apply_cpp_threads(policy: ThreadPolicy) -> None:
    """Size the C++ core's pool (process-wide) according to ``policy``."""
    from .. import ops

    ops.set_num_threads(policy.cpp_threads)
