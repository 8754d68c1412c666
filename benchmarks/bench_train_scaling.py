"""Training throughput with 1 vs 2 processes (data parallel under torchrun), in one run.

    python benchmarks/bench_train_scaling.py [--task semantic|instance] [--model NAME] [--imgsz N]
        [--batch B] [--iters N] [--procs 1,2] [--rounds R] [--device cpu|cuda] [--json PATH]

Runs, alternating, R rounds of:
  plain     `python -m edgeseg train` (one process, no torchrun, every core to torch; and again
            with --threads 1),
  torchrun  `torchrun --nproc-per-node N -m edgeseg train` for each N in --procs (torch threads:
            cores / N per process; gloo on CPU, NCCL with --device cuda),
each with B images per process per step (weak scaling: the global batch grows with N) and N x B x
iters synthetic training images, so that every process takes ``iters`` steps per epoch. Two
epochs; the figure is the second epoch's training images/s from history.json (training only:
no start-up, no validation, no first-epoch warm-up). Prints the best round per config and the
ratios to the plain run and to torchrun with 1 process. Writes JSON (atomically) to --json.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edgeseg._io import write_json  # noqa: E402
from edgeseg.bench import format_machine, machine_info  # noqa: E402


def run_config(name: str, nproc: int, threads: int | None, args: argparse.Namespace, out: Path) -> Dict[str, Any]:
    """One training run; returns its second epoch's history record plus wall time."""
    n_images = max(nproc, 1) * args.batch * args.iters
    train = ["train", "--task", args.task, "--model", args.model, "--data", f"synthetic:{n_images}",
             "--imgsz", str(args.imgsz), "--epochs", "2", "--batch-size", str(args.batch), "--workers", "0",
             "--val-limit", "2", "--device", args.device, "--seed", "0", "--out", str(out)]
    if args.task == "semantic":
        train += ["--loss", "ce"]
    if threads:
        train += ["--threads", str(threads)]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    if name.startswith("plain"):
        cmd = [sys.executable, "-m", "edgeseg", *train]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
               "-m", "edgeseg", *train]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{name} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    rec = json.loads((out / "history.json").read_text())[-1]
    return {"config": name, "processes": nproc, "images_per_s": rec["images_per_s"], "it_per_s": rec["it_per_s"],
            "global_batch": rec["global_batch"], "world_size": rec["world_size"], "iters": rec["iters"],
            "wall_s": round(wall, 1)}


def main(argv: List[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--task", default="semantic", choices=["semantic", "instance"])
    ap.add_argument("--model", default=None, help="default: liteseg_t (semantic), yoloseg_n (instance)")
    ap.add_argument("--imgsz", type=int, default=128)
    ap.add_argument("--batch", type=int, default=8, help="images per process per step")
    ap.add_argument("--iters", type=int, default=12, help="steps per process per epoch")
    ap.add_argument("--procs", default="1,2", help="torchrun process counts")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json", default=str(ROOT / "benchmarks" / "bench_train_scaling.json"))
    args = ap.parse_args(argv)
    args.model = args.model or {"semantic": "liteseg_t", "instance": "yoloseg_n"}[args.task]
    procs = [int(p) for p in args.procs.split(",")]
    configs = [("plain", 1, None), ("plain 1 thread", 1, 1)] + [(f"torchrun x{n}", n, None) for n in procs]

    import torch  # for the version in machine_info

    info = machine_info()
    print(format_machine(info))
    print(f"torch {torch.__version__}; {args.task} {args.model} at {args.imgsz}px, batch {args.batch} per process, "
          f"{args.iters} steps per process per epoch, device {args.device}; load average {os.getloadavg()}")
    runs: List[Dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench_train_scaling_") as tmp:
        for r in range(args.rounds):
            for name, n, threads in configs:
                res = run_config(name, n, threads, args, Path(tmp) / f"{r}_{name.replace(' ', '_')}")
                res["round"] = r
                runs.append(res)
                print(f"  round {r + 1}: {name:<15} {res['images_per_s']:8.1f} images/s "
                      f"(global batch {res['global_batch']}, {res['iters']} steps, wall {res['wall_s']} s)", flush=True)
    best = {name: max((x for x in runs if x["config"] == name), key=lambda x: x["images_per_s"])
            for name, _, _ in configs}
    print("\n| config | processes | global batch | training images/s (best of rounds) |")
    print("|---|---:|---:|---:|")
    for name, n, _ in configs:
        b = best[name]
        print(f"| {name} | {n} | {b['global_batch']} | {b['images_per_s']:.1f} |")
    ratios = {}
    for name, _, _ in configs:
        if name.startswith("torchrun"):
            for peer in ("plain", "plain 1 thread", "torchrun x1"):
                if peer != name and peer in best:
                    ratios[f"{name} / {peer}"] = best[name]["images_per_s"] / best[peer]["images_per_s"]
    print("\nRatios:")
    for k, v in ratios.items():
        print(f"  {k}: {v:.2f}x")
    write_json(args.json, {"date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                           "machine": info, "args": vars(args), "load_average": os.getloadavg(), "runs": runs,
                           "best": best, "ratios": ratios})
    print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
