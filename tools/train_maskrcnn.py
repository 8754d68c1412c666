#!/usr/bin/env python
"""Reproduce the Mask R-CNN model of the zoo (tools/zoo/maskrcnn/).

Trains ``maskrcnn`` from scratch on the synthetic scenes with the shared instance trainer, exports
it to ONNX (standard operators: NonMaxSuppression, RoiAlign, TopK; parity gate against PyTorch),
evaluates the exported model through the deployed runtime (ONNX Runtime, then the C++
``paste_masks`` of the 28x28 RoI masks into each frame) with pycocotools' COCOeval on a synthetic
split never used in training or model selection, measures its speed at the network size and the
cost of pasting every detection into a 1920x1080 frame, and writes:

    tools/zoo/maskrcnn/history.json      per-epoch losses / AP50 / lr / time
    tools/zoo/maskrcnn/curve.png         training curve
    tools/zoo/maskrcnn/eval.json         COCO mask/box AP on the held-out split, latency, parameters
    tools/zoo/maskrcnn/recipe.json       the exact InstanceTrainConfig used
    tools/zoo/maskrcnn/checkpoint/       PyTorch weights (safetensors + config.json)

The ONNX model stays in the run directory (``--out``/maskrcnn.onnx); ``edgeseg export`` rebuilds
it from the checkpoint.

Usage: python tools/train_maskrcnn.py [--epochs N] [--out runs/maskrcnn] [--resume] [--threads 1]
       python tools/train_maskrcnn.py --checkpoint tools/zoo/maskrcnn/checkpoint   (export + evaluate only)
"""
from __future__ import annotations

import argparse
import json
import sys

from _zoo import evaluate_instance, install_run, parameters, train_export_instance  # noqa: E402  (tools/ is on sys.path when run as a script)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--imgsz", type=int, default=256)
    ap.add_argument("--train-images", type=int, default=6000)
    ap.add_argument("--iters-per-epoch", type=int, default=200)
    ap.add_argument("--val-images", type=int, default=100, help="validation images per epoch (model selection)")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch threads (default: all cores; use 1 when another job shares the CPU)")
    ap.add_argument("--workers", type=int, default=1, help="data loader processes")
    ap.add_argument("--out", default="runs/maskrcnn", help="training run directory")
    ap.add_argument("--eval-split", default="test", help="synthetic split for the final figure")
    ap.add_argument("--eval-images", type=int, default=200)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--checkpoint", default=None, help="skip training and export this checkpoint directory")
    ap.add_argument("--no-install", action="store_true", help="do not copy into tools/zoo/maskrcnn")
    args = ap.parse_args(argv)

    from edgeseg.train.instance_trainer import InstanceTrainConfig

    cfg = InstanceTrainConfig(model="maskrcnn", data=f"synthetic:{args.train_images}", val_data="synthetic",
                              epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, warmup_iters=300,
                              input_size=(args.imgsz, args.imgsz), out_dir=args.out, resume=args.resume, seed=0,
                              max_iters_per_epoch=args.iters_per_epoch, max_val_samples=args.val_images,
                              num_threads=args.threads, workers=args.workers)
    best, onnx_path, facts = train_export_instance(cfg, args.checkpoint, "maskrcnn.onnx")
    trained = args.checkpoint is None
    report = evaluate_instance(onnx_path, args.eval_split, args.eval_images)
    report.update({"model": "maskrcnn", "parameters": parameters(best), "onnx_bytes": onnx_path.stat().st_size,
                   **facts})
    print(json.dumps(report, indent=2))

    if not args.no_install:
        install_run("maskrcnn", onnx_path.parent, best, report, cfg.to_dict() if trained else None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
