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

import sys

from _zoo import instance_main, instance_parser  # noqa: E402  (tools/ is on sys.path when run as a script)


def main(argv: list[str] | None = None) -> int:
    ap = instance_parser(__doc__, epochs=12, batch_size=8, lr=2e-3, iters_per_epoch=200, val_images=100,
                         out="runs/maskrcnn", install_to="tools/zoo/maskrcnn")
    args = ap.parse_args(argv)
    return instance_main(args, "maskrcnn", "maskrcnn", "maskrcnn.onnx", warmup_iters=300)


if __name__ == "__main__":
    sys.exit(main())
