"""Instance models side by side: accuracy, latency and size in one run on the same images.

    python benchmarks/compare_instance.py [--images 200] [--split test] [--runs 50]
                                          [--model NAME=MODEL[,CHECKPOINT]] ...

Default models: the shipped single-stage ``yoloseg_n`` (edgeseg/assets/instance_default.onnx) and
the Mask R-CNN of the zoo (exported to ONNX from tools/zoo/maskrcnn/checkpoint into a temporary
folder when runs/maskrcnn/maskrcnn.onnx does not exist). For each model, through the deployed
runtime (ONNX Runtime CPU + the C++ post-processing):

- COCO mask and box AP / AP50 (pycocotools COCOeval) on the same synthetic split;
- pre / infer / post medians at the network input size and on 1920x1080 frames, the models timed
  round-robin (one frame each in turn) so that load on the machine hits them alike;
- parameters (from the PyTorch checkpoint) and ONNX size.

Prints a markdown table and writes JSON (benchmarks/compare_instance.json, gitignored).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np

from edgeseg.bench import cpu_model

ROOT = Path(__file__).resolve().parents[1]


def default_models(work: Path) -> Dict[str, Dict[str, Optional[Path]]]:
    models: Dict[str, Dict[str, Optional[Path]]] = {
        "yoloseg_n": {"onnx": ROOT / "edgeseg" / "assets" / "instance_default.onnx",
                      "checkpoint": ROOT / "tools" / "zoo" / "instance_default" / "checkpoint"}}
    ckpt = ROOT / "tools" / "zoo" / "maskrcnn" / "checkpoint"
    onnx_path = ROOT / "runs" / "maskrcnn" / "maskrcnn.onnx"
    if not onnx_path.exists() and ckpt.exists():
        from edgeseg.export.onnx import export_onnx

        onnx_path = work / "maskrcnn.onnx"
        export_onnx(ckpt, onnx_path, verbose=False)
    if onnx_path.exists():
        models["maskrcnn"] = {"onnx": onnx_path, "checkpoint": ckpt if ckpt.exists() else None}
    return models


def parameters(checkpoint: Optional[Path]) -> Optional[int]:
    if checkpoint is None or not checkpoint.exists():
        return None
    from edgeseg.models.checkpoint import load_checkpoint

    model, _, _ = load_checkpoint(checkpoint)
    return int(sum(p.numel() for p in model.parameters()))


def timed_round_robin(predictors: Dict[str, Any], frames: List[np.ndarray], runs: int) -> Dict[str, Dict]:
    """Median pre / infer / post per model; one frame for each model in turn."""
    stages = {name: {"pre": [], "infer": [], "post": [], "total": []} for name in predictors}
    for p in predictors.values():
        p.warmup(3)
    for i in range(runs):
        frame = frames[i % len(frames)]
        for name, p in predictors.items():
            t = p(frame).timings
            for k in ("pre", "infer", "post"):
                stages[name][k].append(t[k])
            stages[name]["total"].append(t["pre"] + t["infer"] + t["post"])
    out = {}
    for name, st in stages.items():
        med = {k: round(statistics.median(v), 2) for k, v in st.items()}
        med["post_share"] = round(statistics.median(np.asarray(st["post"]) / np.asarray(st["total"])), 4)
        out[name] = med
    return out


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=200, help="evaluation images (default %(default)s)")
    ap.add_argument("--split", default="test", help="synthetic split (default %(default)s)")
    ap.add_argument("--runs", type=int, default=50, help="timed frames per model and size (default %(default)s)")
    ap.add_argument("--model", action="append", default=[], metavar="NAME=MODEL[,CHECKPOINT]",
                    help="compare these instead of the defaults (repeatable)")
    ap.add_argument("--json", type=Path, default=Path(__file__).with_name("compare_instance.json"))
    args = ap.parse_args(argv)

    from edgeseg import defaults, load
    from edgeseg._io import write_json
    from edgeseg.data import open_instance_dataset
    from edgeseg.data.synthetic import generate
    from edgeseg.eval.coco import evaluate_predictor

    with tempfile.TemporaryDirectory(prefix="edgeseg-cmp-") as work:
        if args.model:
            models = {}
            for spec in args.model:
                name, _, rest = spec.partition("=")
                onnx_s, _, ckpt_s = rest.partition(",")
                if not name or not onnx_s:
                    ap.error(f"--model takes NAME=MODEL[,CHECKPOINT], got {spec!r}")
                models[name] = {"onnx": Path(onnx_s), "checkpoint": Path(ckpt_s) if ckpt_s else None}
        else:
            models = default_models(Path(work))
        dataset = open_instance_dataset("synthetic", args.split)
        rows: Dict[str, Dict[str, Any]] = {}
        for name, m in models.items():
            predictor = load(m["onnx"], score_threshold=defaults.EVAL_SCORE_THRESHOLD)
            metrics = evaluate_predictor(predictor, dataset, args.images, progress=True)
            rows[name] = {"model": str(m["onnx"]), "input": "x".join(map(str, predictor.input_size[::-1])),
                          "parameters": parameters(m["checkpoint"]), "onnx_bytes": Path(m["onnx"]).stat().st_size,
                          "mask_AP": round(metrics["segm"]["AP"], 4), "mask_AP50": round(metrics["segm"]["AP50"], 4),
                          "box_AP": round(metrics["bbox"]["AP"], 4), "box_AP50": round(metrics["bbox"]["AP50"], 4)}
            print(f"{name}: mask AP50 {rows[name]['mask_AP50']:.3f}, box AP50 {rows[name]['box_AP50']:.3f}",
                  flush=True)
        deployed = {name: load(m["onnx"]) for name, m in models.items()}  # deployment thresholds
        at_size = timed_round_robin(deployed, [dataset.sample(i).image for i in range(20)], args.runs)
        full_hd = timed_round_robin(deployed, [generate(i, seed=7, size=(1080, 1920)).image for i in range(10)],
                                    args.runs)
    for name in rows:
        rows[name]["latency_ms_at_input"] = at_size[name]
        rows[name]["latency_ms_1920x1080"] = full_hd[name]

    lines = [f"Synthetic {args.split} split, {args.images} images, COCOeval; latency medians of {args.runs} "
             f"frames (ONNX Runtime CPU, round-robin); {cpu_model()}, {os.cpu_count()} cores.", "",
             "| model | input | params | ONNX MB | mask AP | mask AP50 | box AP | box AP50 | pre / infer / post ms "
             "(input-size frames) | FPS | post ms at 1920x1080 | post share at 1920x1080 |",
             "|---|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|"]
    for name, r in rows.items():
        a, f = r["latency_ms_at_input"], r["latency_ms_1920x1080"]
        params = f"{r['parameters'] / 1e6:.2f} M" if r["parameters"] else "?"
        lines.append(f"| {name} | {r['input']} | {params} | {r['onnx_bytes'] / 1e6:.1f} | {r['mask_AP']:.3f} | "
                     f"{r['mask_AP50']:.3f} | {r['box_AP']:.3f} | {r['box_AP50']:.3f} | "
                     f"{a['pre']:.2f} / {a['infer']:.2f} / {a['post']:.2f} | {1000 / a['total']:.0f} | "
                     f"{f['post']:.2f} | {100 * f['post_share']:.1f} % |")
    print("\n".join(lines))
    write_json(args.json, {"machine": {"cpu": cpu_model(), "arch": platform.machine(), "cores": os.cpu_count()},
                           "split": args.split, "images": args.images, "runs": args.runs, "models": rows})
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
