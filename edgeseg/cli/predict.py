"""`edgeseg predict`: segment images or a video and write overlays, label maps and detections."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .. import defaults
from ._common import _add_model_options, _add_task, _load_predictor, _report_unreadable


def add_parser(sub: Any, fmt: Any) -> None:
    """Register the subcommand on ``sub``."""
    p = sub.add_parser("predict", help="segment images and write overlays + label PNGs", formatter_class=fmt,
                       description="Segment an image, a folder, a glob or a video; writes NAME_overlay.jpg and "
                                   "NAME_labels.png (class id per pixel) to --out; for instance models "
                                   "NAME_instances.png (0 = none, i = detection i, 16-bit) and detections.json "
                                   "(COCO results format with RLE masks).")
    p.add_argument("model", help="model path (.onnx or checkpoint dir); 'default' for the shipped model")
    p.add_argument("source", help="an image, a folder of images, a glob (quote it) or a video file")
    p.add_argument("--out", default="predictions", help="output directory")
    p.add_argument("--alpha", type=float, default=defaults.OVERLAY_ALPHA, help="overlay colour weight")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    _add_task(p)
    _add_model_options(p)
    p.set_defaults(func=cmd_predict)


def cmd_predict(args: argparse.Namespace) -> int:
    from .._io import write_image
    from .._progress import track
    from ..pipeline.sources import open_source

    from .._io import check_writable, write_json

    check_writable(args.out, "--out", folder=True)
    predictor = _load_predictor(args)
    out = Path(args.out)
    instance = predictor.meta.task == "instance"
    detections: list[dict[str, Any]] = []
    n = 0
    with open_source(args.source) as source:
        for frame in track(source, desc="predict", enabled=not args.quiet):
            result = predictor(frame.image)
            write_image(out / f"{frame.name}_overlay.jpg", result.overlay(alpha=args.alpha))
            if instance:
                write_image(out / f"{frame.name}_instances.png", result.instance_map())
                for d in result.to_coco(image_id=n):
                    detections.append({"file": frame.name, **d,
                                       "class": predictor.meta.classes[d["category_id"] - 1]})
            else:
                labels = result.labels
                write_image(out / f"{frame.name}_labels.png",
                            labels if labels.dtype == "uint8" else labels.astype("uint16"))
            n += 1
    if instance:
        write_json(out / "detections.json", detections)
        print(f"wrote {n} overlays and instance maps, and {len(detections)} detections "
              f"(COCO results format, RLE masks) to {out}/detections.json")
    else:
        print(f"wrote {n} overlays and label maps to {out}/")
    return _report_unreadable(getattr(source, "failed", []))
