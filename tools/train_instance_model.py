#!/usr/bin/env python
"""Reproduce the instance model shipped in edgeseg/assets/.

Trains yoloseg_n from scratch on the synthetic scenes with this project's own trainer, exports it
to ONNX (with the parity gate), evaluates the exported model through the deployed runtime (ONNX
Runtime, C++ decode/NMS and box-local masks) with pycocotools' COCOeval on a synthetic split never
used in training or model selection, measures its speed, and installs:

    edgeseg/assets/instance_default.onnx            the model (metadata inside)
    tools/zoo/instance_default/history.json         per-epoch losses / AP50 / lr / time
    tools/zoo/instance_default/curve.png            training curve
    tools/zoo/instance_default/eval.json            COCO mask/box AP on the held-out split + FPS
    tools/zoo/instance_default/recipe.json          the exact InstanceTrainConfig used
    tools/zoo/instance_default/checkpoint/          PyTorch weights (safetensors + config.json)

Usage: python tools/train_instance_model.py [--epochs N] [--out runs/instance_default] [--resume]
       python tools/train_instance_model.py --checkpoint tools/zoo/instance_default/checkpoint
           (skip training: export, evaluate and install an existing checkpoint)
"""
from __future__ import annotations

import argparse
import json
import sys

from _zoo import evaluate_instance, install_run, parameters, train_export_instance  # noqa: E402  (tools/ is on sys.path when run as a script)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="yoloseg_n")
    ap.add_argument("--epochs", type=int, default=16)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--imgsz", type=int, default=256)
    ap.add_argument("--train-images", type=int, default=6000)
    ap.add_argument("--iters-per-epoch", type=int, default=300)
    ap.add_argument("--val-images", type=int, default=100, help="validation images per epoch (model selection)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    ap.add_argument("--workers", type=int, default=1, help="data loader processes")
    ap.add_argument("--out", default="runs/instance_default", help="training run directory")
    ap.add_argument("--eval-split", default="test", help="synthetic split for the final figure")
    ap.add_argument("--eval-images", type=int, default=200)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--checkpoint", default=None, help="skip training and export this checkpoint directory")
    ap.add_argument("--no-install", action="store_true", help="do not copy into edgeseg/assets")
    args = ap.parse_args(argv)

    from edgeseg.train.instance_trainer import InstanceTrainConfig

    cfg = InstanceTrainConfig(model=args.model, data=f"synthetic:{args.train_images}", val_data="synthetic",
                              epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                              input_size=(args.imgsz, args.imgsz), out_dir=args.out, resume=args.resume, seed=0,
                              max_iters_per_epoch=args.iters_per_epoch, max_val_samples=args.val_images,
                              num_threads=args.threads, workers=args.workers)
    best, onnx_path, facts = train_export_instance(cfg, args.checkpoint, "instance_default.onnx")
    trained = args.checkpoint is None
    report = evaluate_instance(onnx_path, args.eval_split, args.eval_images)
    report.update({"model": args.model, "parameters": parameters(best), "onnx_bytes": onnx_path.stat().st_size,
                   **facts})
    print(json.dumps(report, indent=2))

    if not args.no_install:
        install_run("instance_default", onnx_path.parent, best, report, cfg.to_dict() if trained else None,
                    onnx_path=onnx_path, asset="instance_default.onnx")
    return 0


if __name__ == "__main__":
    sys.exit(main())
