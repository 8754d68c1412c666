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

import sys

from _zoo import instance_main, instance_parser  # noqa: E402  (tools/ is on sys.path when run as a script)


def main(argv: list[str] | None = None) -> int:
    ap = instance_parser(__doc__, epochs=16, batch_size=8, lr=3e-3, iters_per_epoch=300, val_images=100,
                         out="runs/instance_default")
    ap.add_argument("--model", default="yoloseg_n")
    args = ap.parse_args(argv)
    return instance_main(args, args.model, "instance_default", "instance_default.onnx", asset="instance_default.onnx")


if __name__ == "__main__":
    sys.exit(main())
