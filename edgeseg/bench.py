"""``edgeseg bench``: per-stage latency percentiles and pipelined throughput, per backend.

    from edgeseg.bench import run_bench
    report = run_bench(["model.onnx", "runs/x/best"], backend="all", frame_size=(720, 1280),
                       runs=100, out_dir="edgeseg_bench")

For every (model, backend) pair the same synthetic frames (the moving scene of
:func:`edgeseg.data.synthetic.video_frame`, pre-rendered at the chosen resolution, so frame
generation is not timed) go through the predictor's three stages one frame at a time:
``pre`` (letterbox), ``infer`` (the backend), ``post`` (fused upsample + argmax, or instance
decode + masks) and ``end_to_end`` (the three back to back), summarised as mean / p50 / p90 / p99
(ms) and FPS. Then the same frames run through the threaded :class:`~edgeseg.pipeline.Pipeline`
(stages overlapped, no sinks, no rendering), which gives the pipelined throughput next to the
sequential one and against its bound, 1 / (slowest stage's median).

"all" means every registered backend that declares the model's format (its ``suffixes``: ".onnx",
a checkpoint directory, ...): backends added to the registry later (OpenVINO, TensorRT) take part
without a change here; registered backends that are not installed are listed as skipped.

Outputs (written atomically): ``bench.json`` (everything, including the raw samples),
``bench.md`` (markdown tables) and ``bench.png`` (latency distribution per stage and backend;
needs matplotlib, else skipped with a note). torch is imported only when a torch backend runs.
"""
from __future__ import annotations

import datetime as _dt
import itertools
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from . import __version__, defaults
from ._io import atomic_path, write_json
from ._progress import Progress
from .errors import BackendError, EdgesegError
from .geometry import parse_size
from .pipeline.sources import SyntheticSource
from .pipeline.sources import IterableSource
from .pipeline.stats import PERCENTILES, LatencyStats
from .pipeline.threads import ThreadPolicy, available_cores, default_thread_policy

#: Format version of bench.json.
SCHEMA = 1
#: Stages timed one frame at a time, in order (end_to_end = the three back to back).
SEQUENTIAL_STAGES = ("pre", "infer", "post", "end_to_end")
#: Pipeline stages that can bound its throughput (see :data:`edgeseg.pipeline.stream.STAGES`).
PIPELINE_STAGES = ("capture", "pre", "infer", "post", "render", "sink")
BACKEND_CHOICES = ("auto", "all")


# ------------------------------------------------------------------------------------ frames


def synthetic_frames(size: tuple[int, int], n: int = defaults.BENCH_DISTINCT_FRAMES, seed: int = 0) -> list[np.ndarray]:
    """``n`` BGR uint8 frames of the moving synthetic scene at ``size`` (height, width), a few
    time steps apart (objects move between them)."""
    from .data.synthetic import video_frame

    h, w = parse_size(size, "frame size", EdgesegError)
    return [video_frame(3 * t, (h, w), seed).image for t in range(max(1, int(n)))]


class ReplaySource(SyntheticSource):
    """A live source that replays pre-rendered frames at ``fps`` (looping).

    It paces like :class:`~edgeseg.pipeline.SyntheticSource` (frame ``t`` is due at wall-clock
    tick ``t``; ticks are skipped, not queued, when the consumer is slow) but producing a frame
    costs one copy, so it can play 60 FPS at 1280x720 on a small CPU, where rendering the scene
    itself would not keep up. Each frame is a fresh copy, as a camera driver delivers it.
    """

    def __init__(self, frames: Sequence[np.ndarray], fps: float = defaults.VIDEO_FPS, **live_options: Any) -> None:
        frames = list(frames)
        if not frames:
            raise EdgesegError("ReplaySource needs at least one frame")
        h, w = frames[0].shape[:2]
        super().__init__(size=(h, w), fps=fps, **live_options)
        self._frames = frames

    def describe(self) -> str:
        return f"replayed synthetic {self.size[0]}x{self.size[1]} ({len(self._frames)} frames) @ {self.fps:g} FPS"

    def _read(self) -> np.ndarray | None:
        return self._frames[self._tick % len(self._frames)].copy()


# ------------------------------------------------------------------------------------ machine


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo on Linux; platform module elsewhere)."""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        text = ""
    for key in ("model name", "Model", "Hardware", "cpu model"):  # x86; Raspberry Pi / Jetson; MIPS
        for line in text.splitlines():
            if line.split(":", 1)[0].strip() == key and ":" in line:
                value = line.split(":", 1)[1].strip()
                if value:
                    return value
    return platform.processor() or platform.machine() or "unknown"


def _version(module: str) -> str | None:
    mod = sys.modules.get(module)
    if mod is None:
        try:
            mod = __import__(module)
        except ImportError:
            return None
    return str(getattr(mod, "__version__", "unknown"))


def machine_info(policy: ThreadPolicy | None = None) -> dict[str, Any]:
    """CPU model, cores, thread budget and library versions, so figures compare honestly.

    torch's version is listed only if torch is already imported (this never imports it).
    """
    from . import _C, ops

    versions: dict[str, str | None] = {
        "edgeseg": __version__, "python": platform.python_version(), "numpy": np.__version__,
        "opencv": _version("cv2"), "onnxruntime": _version("onnxruntime"),
    }
    if "torch" in sys.modules:
        versions["torch"] = str(getattr(sys.modules["torch"], "__version__", "unknown"))
    info: dict[str, Any] = {
        "cpu": cpu_model(), "arch": platform.machine(), "os": platform.platform(),
        "cores": available_cores(), "cpu_count": os.cpu_count(),
        "simd": _C.simd_name(), "cpp_threads": ops.get_num_threads(), "versions": versions,
    }
    if policy is not None:
        info["threads"] = policy.to_dict()
    return info


def format_machine(info: dict[str, Any]) -> str:
    """Two or three human-readable lines for the terminal."""
    v = info["versions"]
    lines = [f"machine: {info['cpu']} ({info['arch']}), {info['cores']} core(s) available of "
             f"{info['cpu_count']}, C++ core SIMD {info['simd']}"]
    if "threads" in info:
        t = info["threads"]
        lines.append(f"threads: inference {t['ort_threads']}, C++ core {t['cpp_threads']}")
    lines.append("versions: " + ", ".join(f"{k} {val}" for k, val in v.items() if val is not None))
    return "\n".join(lines)


# ------------------------------------------------------------------------------------ targets


@dataclass(frozen=True)
class Target:
    """One (model, backend) pair to benchmark; ``model`` None = the shipped model of the task."""

    model: Path | None
    backend: str


def _format_key(path: Path) -> str:
    from .runtime.backends import DIRECTORY

    return DIRECTORY if path.is_dir() else path.suffix.lower()


def resolve_targets(models: Sequence[str | Path | None], backend: str = "auto", task: str = "semantic"
                    ) -> tuple[list[Target], list[dict[str, str]]]:
    """Expand models x ``backend`` into targets, plus the backends skipped (and why).

    ``backend`` is "auto" (the backend ``edgeseg.load`` picks for each model), "all" (every
    registered backend whose ``suffixes`` include the model's format; uninstalled ones are
    reported as skipped), a backend name, or comma-separated names.
    Raises InputFileError for a missing model, BackendError for an unknown backend name.
    """
    from .errors import InputFileError
    from .runtime.backends import BACKENDS, get_backend, list_backends, resolve_backend
    from .runtime import default_model_path

    names = [b.strip() for b in str(backend).split(",") if b.strip()]
    if not names:
        raise BackendError(f"--backend is empty; give one of {list(BACKEND_CHOICES) + list_backends()}")
    for name in names:
        if name not in BACKEND_CHOICES and name not in BACKENDS:
            raise BackendError(f"unknown backend {name!r}; valid: {', '.join(BACKEND_CHOICES)}, "
                               f"{', '.join(list_backends())} (or a comma-separated list of backends)")
    if len(names) > 1 and set(names) & set(BACKEND_CHOICES):
        raise BackendError(f"'auto' and 'all' cannot be combined with other backends, got {backend!r}")
    targets: list[Target] = []
    skipped: list[dict[str, str]] = []
    for model in models or [None]:
        path = Path(model) if model is not None else default_model_path(task)
        if not path.exists():
            if model is None:
                raise InputFileError(f"no shipped {task} model in this edgeseg (expected {path}); "
                                     "pass a model path: edgeseg bench model.onnx")
            raise InputFileError(f"model not found: {str(path)!r}; check the path")
        label = None if model is None else path
        if names == ["auto"]:
            targets.append(Target(label, resolve_backend(path, "auto").name))
            continue
        if names == ["all"]:
            key = _format_key(path)
            matches = [n for n in sorted(BACKENDS) if key in BACKENDS[n].suffixes]
            if not matches:
                raise BackendError(f"no registered backend reads {str(path)!r} (format {key!r}); "
                                   f"registered: {list_backends()}")
            for n in matches:
                if BACKENDS[n].is_available():
                    targets.append(Target(label, n))
                else:
                    skipped.append({"model": str(path), "backend": n,
                                    "reason": f"not installed: {BACKENDS[n].install_hint}"})
            continue
        for n in names:
            cls = get_backend(n)
            if not cls.is_available():
                raise BackendError(f"backend {n!r} is not available here: {cls.install_hint}")
            targets.append(Target(label, n))
    if not targets:
        raise BackendError("no backend that can run the model is installed here: "
                           + "; ".join(f"{s['backend']}: {s['reason']}" for s in skipped))
    return targets, skipped


# ------------------------------------------------------------------------------------ measuring


def _summarise(samples: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    """mean / p50 / p90 / p99 (ms) per stage, computed like the pipeline's LatencyStats."""
    stats = LatencyStats(max_frames=None)
    keys = list(samples)
    for i in range(len(samples[keys[0]])):
        stats.add({k: samples[k][i] for k in keys if k != "end_to_end"}, samples["end_to_end"][i])
    return stats.summary()["stages_ms"]


def measure_sequential(predictor: Any, frames: Sequence[np.ndarray], runs: int, warmup: int = defaults.BENCH_WARMUP,
                       progress: Progress | None = None) -> tuple[dict[str, Any], dict[str, list[float]]]:
    """Time ``pre``, ``infer``, ``post`` and their sum for ``runs`` frames, one at a time.

    Returns ``(summary, samples)``: summary = {"runs", "fps", "stages_ms": {stage: {mean, p50,
    p90, p99}}}; samples = {stage: [ms per frame]}. ``fps`` is 1000 / mean end-to-end.
    """
    cycle = itertools.cycle(frames)
    for _ in range(warmup):
        f = next(cycle)
        x, info = predictor.pre(f)
        predictor.post(predictor.infer(x)[0], info)
        if progress is not None:
            progress.update(1)
    samples: dict[str, list[float]] = {k: [] for k in SEQUENTIAL_STAGES}
    clock = time.perf_counter
    for _ in range(runs):
        f = next(cycle)
        t0 = clock()
        x, info = predictor.pre(f)
        t1 = clock()
        out = predictor.infer(x)
        t2 = clock()
        predictor.post(out[0], info)
        t3 = clock()
        for k, v in zip(SEQUENTIAL_STAGES, (t1 - t0, t2 - t1, t3 - t2, t3 - t0)):
            samples[k].append(v * 1e3)
        if progress is not None:
            progress.update(1)
    stages = _summarise(samples)
    mean = stages["end_to_end"]["mean"]
    return {"runs": runs, "fps": round(1e3 / mean, 2) if mean > 0 else None, "stages_ms": stages}, samples


def measure_pipeline(predictor: Any, frames: Sequence[np.ndarray], n: int, render: bool = False,
                     progress: Progress | None = None, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run ``n`` frames (cycled) through the threaded Pipeline (no sinks) and compare its
    throughput with its bound, 1000 / (slowest stage's median ms) in the same run.

    Returns the pipeline summary (fps, stages_ms, ...) plus ``slowest_stage``,
    ``slowest_p50_ms``, ``bound_fps`` and ``efficiency`` (fps / bound_fps).
    """
    from .pipeline.stream import Pipeline

    src = IterableSource(itertools.islice(itertools.cycle(frames), n), name="bench")
    tick = (lambda r: progress.update(1)) if progress is not None else None
    pipe = Pipeline(predictor, src, [], render=render, hud=render, on_result=tick, log=log)
    summary = pipe.run()
    stages = summary["stages_ms"]
    bound = {k: stages[k]["p50"] for k in PIPELINE_STAGES if k in stages}
    slowest = max(bound, key=bound.__getitem__) if bound else None
    out = {k: summary[k] for k in ("frames", "wall_s", "fps", "stages_ms", "queue_high_water", "stopped")}
    if slowest is not None and bound[slowest] > 0:
        out["slowest_stage"] = slowest
        out["slowest_p50_ms"] = bound[slowest]
        out["bound_fps"] = round(1e3 / bound[slowest], 2)
        out["efficiency"] = round(summary["fps"] * bound[slowest] / 1e3, 3) if summary["fps"] else None
    return out


def _load(target: Target, task: str, policy: ThreadPolicy, facts: dict[str, Any] | None = None) -> Any:
    from .runtime import load
    from .runtime.backends import get_backend

    threads = policy.ort_threads if "threads" in get_backend(target.backend).options else None
    return load(target.model, backend=target.backend, threads=threads, task=task, **(facts or {}))


# ------------------------------------------------------------------------------------ the run


def run_bench(models: Sequence[str | Path | None] | None = None, *, task: str = "semantic",
              backend: str = "auto", frame_size: tuple[int, int] | None = None,
              runs: int = defaults.BENCH_RUNS, warmup: int = defaults.BENCH_WARMUP, threads: int | None = None,
              pipeline_frames: int | None = None,
              out_dir: str | Path | None = "edgeseg_bench", progress: bool = True, seed: int = 0,
              log: Callable[[str], None] | None = None, facts: dict[str, Any] | None = None) -> dict[str, Any]:
    """Benchmark each model on each chosen backend; write bench.json / .md / .png to ``out_dir``.
    ``facts``: keywords of :func:`edgeseg.load` for models from other tools (mean, std, ...).

    Args:
        models: model paths (.onnx, checkpoint directories ...); None or empty = the shipped
            model of ``task``.
        task: which shipped model runs when no model is given ("semantic" or "instance").
        backend: "auto", "all", a backend name or comma-separated names (see
            :func:`resolve_targets`).
        frame_size: (height, width) of the synthetic frames (default 720x1280).
        runs: timed frames per target; warmup: untimed frames before them.
        threads: inference threads (ONNX Runtime intra-op / torch); default: the policy of
            ``edgeseg run`` (cores - 1). The C++ core's pool follows that policy during the run.
        pipeline_frames: frames through the threaded pipeline per target (default ``runs``;
            0 skips the pipeline measurement).
        out_dir: where to write the files; None writes nothing.
        progress: show a progress line on stderr.
        log: where notes go (default stderr).

    Returns the report written to bench.json, with ``"files"`` (paths written) added.
    """
    from . import ops

    say = log or (lambda m: print(f"edgeseg bench: {m}", file=sys.stderr, flush=True))
    if runs < 1:
        raise EdgesegError(f"runs (--runs) must be >= 1, got {runs}")
    if warmup < 0:
        raise EdgesegError(f"warmup (--warmup) must be >= 0, got {warmup}")
    if threads is not None and threads < 1:
        raise EdgesegError(f"threads (--threads) must be >= 1, got {threads}")
    n_pipe = runs if pipeline_frames is None else int(pipeline_frames)
    if n_pipe < 0:
        raise EdgesegError(f"pipeline frames (--pipeline-frames) must be >= 0, got {n_pipe}")
    size = parse_size(defaults.BENCH_FRAME_SIZE if frame_size is None else frame_size, "frame size", EdgesegError)
    if out_dir is not None:
        _check_out_dir(Path(out_dir))  # fail before minutes of measuring, not after
    targets, skipped = resolve_targets(list(models or []), backend, task)
    policy = default_thread_policy(ort_threads=threads)
    previous_cpp = ops.get_num_threads()
    ops.set_num_threads(policy.cpp_threads)
    try:
        frames = synthetic_frames(size, seed=seed)
        results = []
        for target in targets:
            predictor = _load(target, task, policy, facts)
            name = f"{predictor.path.name} / {target.backend}"
            bar = Progress(warmup + runs + n_pipe, desc=f"bench {name}", enabled=progress)
            seq, samples = measure_sequential(predictor, frames, runs, warmup, bar)
            row: dict[str, Any] = {
                "model": str(predictor.path), "backend": target.backend,
                "provider": predictor.backend.provider, "device": predictor.backend.device,
                "task": predictor.meta.task, "arch": predictor.meta.arch,
                "input_size": list(predictor.input_size), "sequential": seq,
            }
            if n_pipe:
                pipe = measure_pipeline(predictor, frames, n_pipe, progress=bar, log=say)
                if pipe.get("fps") and seq.get("fps"):
                    pipe["speedup_vs_sequential"] = round(pipe["fps"] / seq["fps"], 2)
                row["pipeline"] = pipe
            bar.close()
            row["samples_ms"] = {k: [round(v, 4) for v in vals] for k, vals in samples.items()}
            results.append(row)
            del predictor
        machine = machine_info(policy)  # after loading: lists torch only if a torch backend ran
    finally:
        ops.set_num_threads(previous_cpp)
    report: dict[str, Any] = {
        "schema": SCHEMA,
        "date": _dt.datetime.now().isoformat(timespec="seconds"),
        "machine": machine,
        "settings": {"task": task, "backend": backend, "frame_size": list(size), "runs": runs,
                     "warmup": warmup, "pipeline_frames": n_pipe, "distinct_frames": len(frames),
                     "seed": seed, "percentiles": list(PERCENTILES)},
        "results": results,
        "skipped": skipped,
    }
    report["files"] = write_report(report, out_dir, log=say) if out_dir is not None else {}
    return report


def _check_out_dir(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise EdgesegError(f"--out {out} exists and is not a folder; give a folder for the bench files")


def write_report(report: dict[str, Any], out_dir: str | Path, log: Callable[[str], None] | None = None
                 ) -> dict[str, str]:
    """Write bench.json, bench.md and (with matplotlib) bench.png into ``out_dir``, atomically."""
    out = Path(out_dir)
    _check_out_dir(out)
    files = {"json": str(out / "bench.json"), "markdown": str(out / "bench.md")}
    with atomic_path(out / "bench.md") as tmp:
        tmp.write_text(to_markdown(report) + "\n", encoding="utf-8")
    png = plot_report(report, out / "bench.png")
    if png is not None:
        files["png"] = str(png)
    elif log is not None:
        log("matplotlib is not installed: bench.png skipped (pip install matplotlib for the chart)")
    report = {**report, "files": files}
    write_json(out / "bench.json", report)
    return files


# ------------------------------------------------------------------------------------ output


def _label(row: dict[str, Any], rows: Sequence[dict[str, Any]]) -> str:
    several_models = len({r["model"] for r in rows}) > 1
    return f"{Path(row['model']).name} / {row['backend']}" if several_models else row["backend"]


def _fmt(v: Any, spec: str = ".2f") -> str:
    return "n/a" if v is None else format(v, spec)


def to_markdown(report: dict[str, Any]) -> str:
    """The report as markdown: machine, per-stage latency table, throughput table, skipped."""
    m, s = report["machine"], report["settings"]
    v = m["versions"]
    return "\n".join([
        "# edgeseg bench",
        "",
        f"- Date: {report['date']}",
        f"- Machine: {m['cpu']} ({m['arch']}), {m['cores']} core(s) available of {m['cpu_count']}, "
        f"C++ core SIMD {m['simd']}",
        "- Threads: " + (f"inference {m['threads']['ort_threads']}, C++ core {m['threads']['cpp_threads']}"
                         if "threads" in m else f"C++ core {m['cpp_threads']}"),
        "- Versions: " + ", ".join(f"{k} {val}" for k, val in v.items() if val is not None),
        f"- Frames: synthetic {s['frame_size'][0]}x{s['frame_size'][1]} (HxW, {s['distinct_frames']} distinct), "
        f"{s['warmup']} warm-up + {s['runs']} timed per backend; pipeline {s['pipeline_frames']} frames",
        "",
        tables_markdown(report),
    ])


def tables_markdown(report: dict[str, Any]) -> str:
    """The latency and throughput tables (and skipped backends) of a report, as markdown."""
    rows = report["results"]
    lines = [
        "## Latency per stage (ms, one frame at a time)",
        "",
        "| model / backend | provider | input | stage | mean | p50 | p90 | p99 |",
        "|---|---|---|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        for stage, q in r["sequential"]["stages_ms"].items():
            lines.append(f"| {_label(r, rows)} | {r['provider']} | {r['input_size'][0]}x{r['input_size'][1]} | "
                         f"{stage} | {q['mean']:.2f} | {q['p50']:.2f} | {q['p90']:.2f} | {q['p99']:.2f} |")
    lines += ["", "## Throughput (FPS)", "",
              "Sequential = 1000 / mean end-to-end. Pipelined = the threaded pipeline (stages overlapped); "
              "bound = 1000 / the slowest pipeline stage's median in the same run; efficiency = pipelined / bound.",
              "",
              "| model / backend | sequential | pipelined | speed-up | slowest stage (p50 ms) | bound | efficiency |",
              "|---|---:|---:|---:|---|---:|---:|"]
    for r in rows:
        p = r.get("pipeline")
        if p is None:
            lines.append(f"| {_label(r, rows)} | {_fmt(r['sequential']['fps'], '.1f')} | - | - | - | - | - |")
            continue
        slow = f"{p['slowest_stage']} ({p['slowest_p50_ms']:.2f})" if "slowest_stage" in p else "n/a"
        lines.append(f"| {_label(r, rows)} | {_fmt(r['sequential']['fps'], '.1f')} | {_fmt(p['fps'], '.1f')} | "
                     f"{_fmt(p.get('speedup_vs_sequential'))}x | {slow} | {_fmt(p.get('bound_fps'), '.1f')} | "
                     f"{_fmt(p.get('efficiency'))} |")
    if report.get("skipped"):
        lines += ["", "## Skipped", ""]
        lines += [f"- {sk['backend']} ({Path(sk['model']).name}): {sk['reason']}" for sk in report["skipped"]]
    return "\n".join(lines)


def plot_report(report: dict[str, Any], path: str | Path) -> Path | None:
    """Box plots of the latency samples, one panel per stage, one box per model/backend.
    Returns the path written, or None when matplotlib is not installed."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return None
    rows = report["results"]
    labels = [_label(r, rows) for r in rows]
    fig = Figure(figsize=(3.2 * len(SEQUENTIAL_STAGES), 3.2 + 0.15 * max(len(lab) for lab in labels)))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(SEQUENTIAL_STAGES), squeeze=False)[0]
    for ax, stage in zip(axes, SEQUENTIAL_STAGES):
        data = [r["samples_ms"][stage] for r in rows]
        ax.boxplot(data, whis=(1, 99), showmeans=True, flierprops={"markersize": 2})
        ax.set_xticks(range(1, len(labels) + 1), labels, rotation=30 if len(labels) > 1 else 0,
                      ha="right" if len(labels) > 1 else "center", fontsize=8)
        ax.set_title(stage.replace("_", " "))
        ax.set_ylabel("ms")
        ax.set_ylim(bottom=0)
        ax.grid(axis="y", alpha=0.3)
    s, m = report["settings"], report["machine"]
    fig.suptitle(f"edgeseg bench: {s['frame_size'][0]}x{s['frame_size'][1]} frames, {s['runs']} runs, "
                 f"{m['cpu']} ({m['cores']} cores); whiskers p1-p99, triangle = mean", fontsize=9)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    return path


def format_summary(report: dict[str, Any]) -> str:
    """Machine lines plus the markdown tables, for the terminal."""
    return format_machine(report["machine"]) + "\n\n" + tables_markdown(report)
