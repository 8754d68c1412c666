"""`edgeseg eval`: mIoU (semantic) or COCO mask/box AP (instance) of a deployed model."""
from __future__ import annotations

import argparse
from typing import Any

from .. import defaults
from ..errors import EdgesegError
from ._common import _add_model_options, _load_predictor, _write_report


def add_parser(sub: Any, fmt: Any) -> None:
    """Register the subcommand on ``sub``."""
    p = sub.add_parser("eval", help="mIoU (semantic) or COCO mask/box AP (instance) of a model on a dataset",
                       formatter_class=fmt,
                       description="Evaluate a deployed model (ONNX or checkpoint) through the same runtime path "
                                   "as predict. Semantic models: letterbox, inference, fused upsample+argmax at "
                                   "frame size -> confusion matrix, mIoU, pixel accuracy. Instance models: "
                                   "detections with box-local masks at frame size -> pycocotools COCOeval "
                                   "(mask and box AP, AP50, AP75).")
    p.add_argument("model", help="model path (.onnx or checkpoint dir); 'default' for the shipped model")
    p.add_argument("--data", default="synthetic",
                   help="synthetic | synthetic:N | voc:PATH | cityscapes:PATH (semantic) | coco:PATH (instance)")
    p.add_argument("--split", default="val")
    p.add_argument("--limit", type=int, default=None, help="evaluate at most N images")
    p.add_argument("--seed", type=int, default=None, help="synthetic data only: generate a fresh set with this seed")
    p.add_argument("--json", help="also write the report to this JSON file")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    p.add_argument("--task", default="semantic", choices=["semantic", "instance", "track", "video"],
                   help="semantic / instance: the shipped model of that task when no model is given; track: "
                        "an instance model + tracker on videos with ground-truth ids (HOTA, MOTA, IDF1, ID "
                        "switches, sMOTSA; --data synthetic[:KIND,...] or mots:PATH); video: a semantic model "
                        "on the synthetic video (mIoU + flicker, with --smooth)")
    p.add_argument("--match", default="mask", choices=["mask", "box"], help="--task track: association by "
                                                                             "mask IoU or box IoU")
    p.add_argument("--frames", type=int, default=None, help="--task track / video: frames per video "
                                                            "(synthetic: 60)")
    p.add_argument("--smooth", default="0", metavar="SPEC", help="--task video: K, mode:K, hysteresis:N, "
                                                                 "ema:A or flow-ema:A (as edgeseg run); 0 = off")
    _add_model_options(p, conf=defaults.EVAL_SCORE_THRESHOLD)
    p.set_defaults(func=cmd_eval)


def cmd_eval(args: argparse.Namespace) -> int:
    from .._io import check_writable
    from .._progress import track
    from ..data import open_dataset
    from ..eval.confusion import ConfusionMatrix

    if args.json:
        check_writable(args.json, "--json")
    if args.task in ("track", "video"):
        from ._eval_video import eval_track, eval_video

        return (eval_track if args.task == "track" else eval_video)(args)
    predictor = _load_predictor(args)
    if predictor.meta.task == "instance":
        return _eval_instance(args, predictor)
    extra = {"seed": args.seed} if args.seed is not None else {}
    dataset = open_dataset(args.data, args.split, **extra)
    if len(dataset.classes) != predictor.meta.num_classes:
        raise EdgesegError(
            f"the model predicts {predictor.meta.num_classes} classes but {args.data} has "
            f"{len(dataset.classes)}; evaluate on the dataset the model was trained for"
        )
    cm = ConfusionMatrix(predictor.meta.num_classes, ignore_index=defaults.IGNORE_INDEX)
    n = len(dataset) if args.limit is None else min(args.limit, len(dataset))
    for i in track(range(n), desc="eval", enabled=not args.quiet):
        image, label = dataset[i]
        cm.update(predictor(image).labels, label)
    report = {"model": str(args.model or "shipped default"), "data": args.data, "split": args.split, "images": n,
              **cm.summary(list(dataset.classes))}
    print(f"mIoU {report['miou']:.4f}  pixel accuracy {report['pixel_acc']:.4f}  ({n} images)")
    for c, iou in report["per_class_iou"].items():
        print(f"  {c:<16} {'n/a' if iou is None else f'{iou:.4f}'}")
    _write_report(args, report)
    return 0


def _eval_instance(args: argparse.Namespace, predictor: Any) -> int:
    """Mask and box AP of an instance model through pycocotools' COCOeval."""
    from ..data import open_instance_dataset
    from ..eval.coco import evaluate_predictor

    if args.conf is None:  # AP integrates over all scores: keep low-confidence detections
        predictor.thresholds.score = defaults.EVAL_SCORE_THRESHOLD
    extra = {"seed": args.seed} if args.seed is not None else {}
    dataset = open_instance_dataset(args.data, args.split, **extra)
    if len(dataset.classes) != predictor.meta.num_classes:
        raise EdgesegError(
            f"the model detects {predictor.meta.num_classes} classes {predictor.meta.classes} but {args.data} "
            f"has {len(dataset.classes)} {list(dataset.classes)}; evaluate on the dataset the model was trained for")
    metrics = evaluate_predictor(predictor, dataset, args.limit, progress=not args.quiet)
    n, n_dets = metrics["images"], metrics["detections"]
    report = {"model": str(args.model or "shipped default"), "data": args.data, "split": args.split,
              "evaluator": "pycocotools COCOeval", **metrics}
    for kind in ("segm", "bbox"):
        m = metrics.get(kind)
        if m:
            print(f"{'mask' if kind == 'segm' else 'box '} AP {m['AP']:.4f}  AP50 {m['AP50']:.4f}  "
                  f"AP75 {m['AP75']:.4f}")
    print(f"({n} images, {n_dets} detections, COCOeval)")
    _write_report(args, report)
    return 0
