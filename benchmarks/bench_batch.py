"""Scaling of `edgeseg batch`: recordings/s of the in-process loop vs 1 vs 2 Ray workers, in one run.

    python benchmarks/bench_batch.py [--quick] [--recordings N] [--frames F] [--size HxW] [--repeats R]

N synthetic recordings (F frames each, mp4v .mp4 at HxW, written with OpenCV from
edgeseg.data.synthetic scenes) go through the shipped semantic model with the outputs of
`edgeseg run` per recording (overlay .mp4 + results.jsonl + stats.json):

- sequential: ``run_batch(use_ray=False)``, one process, the thread policy of `edgeseg run`
  (its pipeline already overlaps decode, inference and encode in threads);
- ray x1 / ray x2: ``run_batch`` on a local Ray with 2 CPUs started once before the timed runs
  (its start time is printed apart): 1 actor with both CPUs (threads sized as in the sequential
  loop: the difference is Ray's cost), or 2 actors with 1 CPU each (one ONNX Runtime thread, one
  OpenCV thread each: processes instead of threads share the cores).

Two rates per configuration, best of R alternating runs (other processes share the CPU):
end-to-end (recordings / the whole run_batch call, actor start and model load included) and
processing (recordings / first recording start -> last recording end). Ratios against the
sequential loop and ray x2 / ray x1 are printed. Writes benchmarks/bench_batch.json (gitignored).
"""
from __future__ import annotations

import argparse
import datetime as _dt
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2

from edgeseg._io import write_json
from edgeseg.batch import BatchSettings, run_batch
from edgeseg.bench import format_machine, machine_info
from edgeseg.cli._common import size_arg
from edgeseg.data.synthetic import generate
from edgeseg.integrations.ray import start_local_ray


def make_recordings(folder: Path, n: int, frames: int, size: tuple[int, int]) -> list[str]:
    scenes = [generate(i, seed=11, size=size).image for i in range(frames)]
    paths = []
    for k in range(n):
        path = folder / f"drive{k:03d}.mp4"
        w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30, (size[1], size[0]))
        for i in range(frames):
            w.write(scenes[(i + 7 * k) % frames])
        w.release()
        paths.append(str(path))
    return paths


def one_run(name: str, inputs: list[str], out: Path, **kw: Any) -> dict[str, Any]:
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    s = run_batch(BatchSettings(), inputs, out, progress=False, log=lambda _m: None, **kw)
    wall = time.perf_counter() - t0
    recs = s["recordings"]
    if any(e["status"] != "done" for e in recs):
        raise SystemExit(f"{name}: recordings failed: {[e.get('error') for e in recs if e['status'] != 'done']}")
    first = min(e["start_unix"] for e in recs)
    last = max(e["start_unix"] + e["wall_s"] for e in recs)
    return {"config": name, "wall_s": round(wall, 3), "processing_s": round(last - first, 3),
            "recordings_per_s": round(len(recs) / wall, 4),
            "processing_recordings_per_s": round(len(recs) / (last - first), 4),
            "frames": s["frames"], "frames_per_s": round(s["frames"] / (last - first), 2)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="4 recordings x 10 frames at 96x128, one repeat")
    ap.add_argument("--recordings", type=int, default=8)
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--size", type=size_arg, default=(360, 640), help="frame size HxW")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", default=str(Path(__file__).with_name("bench_batch.json")))
    args = ap.parse_args(argv)
    if args.quick:
        args.recordings, args.frames, args.size, args.repeats = 4, 10, (96, 128), 1

    import ray

    info = machine_info()
    print(format_machine(info))
    load_before = os.getloadavg()
    print(f"load average before: {load_before[0]:.1f} (1 min) - other processes on this CPU skew every figure")
    tmp = Path(tempfile.mkdtemp(prefix="bench_batch_"))
    try:
        (tmp / "in").mkdir()
        inputs = make_recordings(tmp / "in", args.recordings, args.frames, args.size)
        print(f"{args.recordings} recordings x {args.frames} frames at {args.size[0]}x{args.size[1]} (mp4v), "
              "shipped semantic model, overlay .mp4 + results.jsonl per recording")
        t0 = time.perf_counter()
        start_local_ray(2)  # as edgeseg batch starts it: workers at this process's priority
        ray_start = time.perf_counter() - t0
        print(f"local Ray start (2 CPUs, once, not in the figures below): {ray_start:.1f} s")
        configs = [("sequential", dict(use_ray=False)),
                   ("ray x1", dict(use_ray=True, workers=1, cpus_per_worker=2)),
                   ("ray x2", dict(use_ray=True, workers=2, cpus_per_worker=1))]
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in configs}
        for r in range(args.repeats):
            for name, kw in configs:
                res = one_run(name, inputs, tmp / "out", **kw)
                runs[name].append(res)
                print(f"  repeat {r + 1} {name:<10} end-to-end {res['recordings_per_s']:.3f} rec/s "
                      f"({res['wall_s']:.1f} s), processing {res['processing_recordings_per_s']:.3f} rec/s "
                      f"({res['frames_per_s']:.1f} frames/s)")
        ray.shutdown()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    best = {name: max(rs, key=lambda x: x["processing_recordings_per_s"]) for name, rs in runs.items()}
    best_e2e = {name: max(x["recordings_per_s"] for x in rs) for name, rs in runs.items()}
    print(f"\n{'config':<12}{'end-to-end rec/s':>18}{'processing rec/s':>18}{'frames/s':>10}")
    for name, b in best.items():
        print(f"{name:<12}{best_e2e[name]:>18.3f}{b['processing_recordings_per_s']:>18.3f}{b['frames_per_s']:>10.1f}")
    ratios = {}
    for a, b in (("ray x1", "sequential"), ("ray x2", "sequential"), ("ray x2", "ray x1")):
        ratios[f"{a} / {b}"] = {
            "end_to_end": round(best_e2e[a] / best_e2e[b], 3),
            "processing": round(best[a]["processing_recordings_per_s"] / best[b]["processing_recordings_per_s"], 3)}
        print(f"{a} / {b}: end-to-end {ratios[f'{a} / {b}']['end_to_end']:.2f}x, "
              f"processing {ratios[f'{a} / {b}']['processing']:.2f}x")
    load_after = os.getloadavg()
    print(f"load average after: {load_after[0]:.1f} (1 min)")
    write_json(args.json, {"date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                           "load_average": [round(load_before[0], 2), round(load_after[0], 2)], "machine": info, "recordings": args.recordings, "frames": args.frames,
                           "size": list(args.size), "ray_start_s": round(ray_start, 3), "runs": runs,
                           "best_end_to_end": best_e2e, "best_processing": best, "ratios": ratios})
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
