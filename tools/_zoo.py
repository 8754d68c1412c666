"""What the tools/train_*.py scripts share: their common command-line options, installing a
finished run into tools/zoo/ (and edgeseg/assets/); for the instance models also the training
config, training, export, evaluation and the report."""
from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path
from typing import Any, Optional

ROOT = Path(__file__).resolve().parents[1]


def script_parser(doc: str, *, epochs: int, batch_size: int, lr: float, iters_per_epoch: int, val_images: int,
                  out: str, install_to: str = "edgeseg/assets") -> argparse.ArgumentParser:
    """The options every training script has (training length, data, threads, run directory,
    final evaluation, resume, --checkpoint, --no-install), with that script's defaults."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=epochs)
    ap.add_argument("--batch-size", type=int, default=batch_size)
    ap.add_argument("--lr", type=float, default=lr)
    ap.add_argument("--train-images", type=int, default=6000)
    ap.add_argument("--iters-per-epoch", type=int, default=iters_per_epoch)
    ap.add_argument("--val-images", type=int, default=val_images, help="validation images per epoch (model selection)")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch threads (default: all cores; use 1 when another job shares the CPU)")
    ap.add_argument("--out", default=out, help="training run directory")
    ap.add_argument("--eval-split", default="test", help="synthetic split for the final figure")
    ap.add_argument("--eval-images", type=int, default=200)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--checkpoint", default=None,
                    help="skip training and export this checkpoint directory (e.g. the zoo copy)")
    ap.add_argument("--no-install", action="store_true", help=f"do not copy into {install_to}")
    return ap


def instance_parser(doc: str, **defaults: Any) -> argparse.ArgumentParser:
    """:func:`script_parser` plus the instance scripts' --imgsz and --workers."""
    ap = script_parser(doc, **defaults)
    ap.add_argument("--imgsz", type=int, default=256)
    ap.add_argument("--workers", type=int, default=1, help="data loader processes")
    return ap


def instance_main(args: argparse.Namespace, model: str, name: str, onnx_name: str, asset: Optional[str] = None,
                  **config: Any) -> int:
    """Train (unless --checkpoint), export, evaluate and install an instance model: the
    InstanceTrainConfig of ``args`` on the synthetic scenes (seed 0) with ``config`` on top; the
    ONNX model goes to ``edgeseg/assets/ASSET`` when ``asset`` is given."""
    from edgeseg.train.instance_trainer import InstanceTrainConfig

    cfg = InstanceTrainConfig(model=model, data=f"synthetic:{args.train_images}", val_data="synthetic",
                              epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, **config,
                              input_size=(args.imgsz, args.imgsz), out_dir=args.out, resume=args.resume, seed=0,
                              max_iters_per_epoch=args.iters_per_epoch, max_val_samples=args.val_images,
                              num_threads=args.threads, workers=args.workers)
    best, onnx_path, facts = train_export_instance(cfg, args.checkpoint, onnx_name)
    trained = args.checkpoint is None
    report = evaluate_instance(onnx_path, args.eval_split, args.eval_images)
    report.update({"model": model, "parameters": parameters(best), "onnx_bytes": onnx_path.stat().st_size, **facts})
    print(json.dumps(report, indent=2))

    if not args.no_install:
        install_run(name, onnx_path.parent, best, report, cfg.to_dict() if trained else None,
                    onnx_path=onnx_path, asset=asset)
    return 0


def install_run(name: str, out: Path, best: Path, report: dict[str, Any], recipe: Optional[dict[str, Any]],
                onnx_path: Optional[Path] = None, asset: Optional[str] = None) -> Path:
    """Copy a run into ``tools/zoo/NAME/``: eval.json always; when ``recipe`` is given (the run was
    trained here) also history.json, curve.png, recipe.json and the checkpoint; ``onnx_path`` is
    copied to ``edgeseg/assets/ASSET`` when ``asset`` is given. Returns the zoo folder."""
    zoo = ROOT / "tools" / "zoo" / name
    zoo.mkdir(parents=True, exist_ok=True)
    if recipe is not None:
        for fname in ("history.json", "curve.png"):
            if (out / fname).exists():
                shutil.copy2(out / fname, zoo / fname)
        (zoo / "recipe.json").write_text(json.dumps(recipe, indent=2, default=str) + "\n")
        ckpt = zoo / "checkpoint"
        ckpt.mkdir(exist_ok=True)
        for f in Path(best).iterdir():
            if f.is_file():
                shutil.copy2(f, ckpt / f.name)
                (ckpt / f.name).chmod(0o644)
    (zoo / "eval.json").write_text(json.dumps(report, indent=2) + "\n")
    if asset is not None and onnx_path is not None:
        dst = ROOT / "edgeseg" / "assets" / asset
        shutil.copy2(onnx_path, dst)
        dst.chmod(0o644)
        print(f"installed {dst} ({dst.stat().st_size / 1e6:.2f} MB)")
    print(f"installed {zoo}/")
    return zoo


def train_export_instance(cfg: Any, checkpoint: Optional[str], onnx_name: str) -> tuple[Path, Path, dict[str, Any]]:
    """Train ``cfg`` (an InstanceTrainConfig) unless ``checkpoint`` is given, export the best
    checkpoint to ``cfg.out_dir/onnx_name`` (with the parity gate); returns (checkpoint dir, ONNX
    path, facts for the report: training seconds or the checkpoint used)."""
    import time

    from edgeseg.export.onnx import export_onnx
    from edgeseg.train.instance_trainer import train_instance

    t0 = time.time()
    best = train_instance(cfg) if checkpoint is None else Path(checkpoint)
    facts = {"train_seconds": round(time.time() - t0)} if checkpoint is None else {"checkpoint": str(best)}
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    onnx_path = out / onnx_name
    export_onnx(best, onnx_path, verbose=True)
    return best, onnx_path, facts


def evaluate_instance(onnx_path: Path, split: str, n: int) -> dict[str, Any]:
    """COCO mask/box AP of an exported instance model through the deployed runtime on a synthetic
    split (pycocotools COCOeval), its speed at the network size, and the share of
    post-processing (pasting / assembling every detection) in the latency of 1920x1080 frames."""
    import numpy as np

    from edgeseg import defaults, load
    from edgeseg.data import open_instance_dataset
    from edgeseg.data.synthetic import generate
    from edgeseg.eval.coco import evaluate_predictor

    dataset = open_instance_dataset("synthetic", split)
    metrics = evaluate_predictor(load(onnx_path, score_threshold=defaults.EVAL_SCORE_THRESHOLD), dataset, n)

    def timed(frames: list) -> dict[str, Any]:
        fast = load(onnx_path)  # the deployment thresholds (fewer, real detections)
        fast.warmup(3)
        stages: dict[str, list[float]] = {"pre": [], "infer": [], "post": []}
        counts = []
        for f in frames:
            r = fast(f)
            counts.append(len(r))
            for k in stages:
                stages[k].append(r.timings[k])
        total = np.sum([stages[k] for k in stages], axis=0)
        return {"latency_ms_p50": {k: round(float(np.median(v)), 2) for k, v in stages.items()},
                "fps_p50": round(1000.0 / float(np.median(total)), 1),
                "post_share_p50": round(float(np.median(np.asarray(stages["post"]) / total)), 4),
                "detections_mean": round(float(np.mean(counts)), 2)}

    at_size = timed([dataset.sample(i).image for i in range(min(metrics["images"], 100))])
    full_hd = timed([generate(i, seed=7, size=(1080, 1920)).image for i in range(20)])
    return {"split": f"synthetic/{split}", "evaluator": "pycocotools COCOeval",
            **{k: metrics[k] for k in ("images", "segm", "bbox")}, **at_size, "frame_1920x1080": full_hd}


def parameters(checkpoint: Path) -> int:
    """Parameter count of a checkpoint directory's model."""
    from edgeseg.models.checkpoint import load_checkpoint

    model, _, _ = load_checkpoint(checkpoint)
    return int(sum(p.numel() for p in model.parameters()))
