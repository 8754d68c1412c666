"""`edgeseg eval --task track` (instance tracking metrics) and `--task video` (semantic stability)."""
from __future__ import annotations

import argparse
import time
from typing import Any

from ..errors import EdgesegError
from ._common import _load_predictor, _write_report


def _predictor(args: argparse.Namespace, task: str) -> Any:
    ns = argparse.Namespace(**{**vars(args), "task": task})
    if ns.model in (None, "default"):
        ns.model = None
    predictor = _load_predictor(ns)
    if predictor.meta.task != task:
        raise EdgesegError(f"--task {args.task} needs a {task} model; {args.model} is a {predictor.meta.task} model")
    return predictor


def eval_track(args: argparse.Namespace) -> int:
    """Instance model + Tracker over videos with ground-truth ids -> TrackEval metrics."""
    from ..data.mots import open_tracking_sequences
    from ..eval.tracking import evaluate_sequences, ground_truth_tracks, track_predictor
    from ..tracking import Tracker, TrackerConfig

    predictor = _predictor(args, "instance")
    if args.conf is None:  # the tracker's second pass needs the low-score detections
        predictor.thresholds.score = min(predictor.thresholds.score, TrackerConfig().low)
    data = "synthetic" if args.data in (None, "synthetic") else args.data
    videos = open_tracking_sequences(data, args.frames or args.limit, seed=args.seed or 0)
    seqs, t_track, n = {}, 0.0, 0
    for name, frames in videos.items():
        pred, spent = track_predictor(predictor, frames, Tracker(matching=args.match))
        t_track += spent
        n += len(pred)
        seqs[name] = (ground_truth_tracks(frames), pred)
    report = evaluate_sequences(seqs, similarity="mask")
    report.update(model=str(args.model or "shipped default"), data=data, matching=args.match,
                  track_ms_per_frame=round(t_track / max(n, 1) * 1e3, 3),
                  note="class-agnostic: every predicted track against every ground-truth object")
    c = report["combined"]
    print(f"HOTA {c['HOTA']:.4f}  MOTA {c['MOTA']:.4f}  IDF1 {c['IDF1']:.4f}  ID switches {c['IDSW']}  "
          f"sMOTSA {c['sMOTSA']:.4f}  ({len(seqs)} videos, {c['frames']} frames, {args.match} matching, "
          f"tracker {report['track_ms_per_frame']:.2f} ms/frame; TrackEval)")
    for name, r in report["per_sequence"].items():
        print(f"  {name:<14} HOTA {r['HOTA']:.4f}  MOTA {r['MOTA']:.4f}  IDF1 {r['IDF1']:.4f}  "
              f"IDSW {r['IDSW']:<3d} sMOTSA {r['sMOTSA']:.4f}")
    _write_report(args, report)
    return 0


def eval_video(args: argparse.Namespace) -> int:
    """Semantic model (+ stabiliser) over the synthetic moving scene -> mIoU and flicker."""
    from ..data.synthetic import video_frame
    from ..eval.tracking import VideoStability, stabilised_labels
    from ..tracking import make_stabiliser

    if args.data not in (None, "synthetic"):
        raise EdgesegError("--task video evaluates on the synthetic moving scene only: --data synthetic")
    predictor = _predictor(args, "semantic")
    stab = make_stabiliser(args.smooth)
    n = args.frames or args.limit or 60
    acc = VideoStability(predictor.meta.num_classes)
    t_stab = 0.0
    for t in range(n):
        s = video_frame(t, (256, 256), args.seed or 0)
        t0 = time.perf_counter()
        labels = stabilised_labels(predictor, s.image, stab)
        t_stab += time.perf_counter() - t0
        acc.update(labels, s.semantic)
    report = {"model": str(args.model or "shipped default"), "data": "synthetic video", "frames": n,
              "smooth": stab.describe() if stab else "off", **acc.summary(),
              "definition": "flicker = share of pixels whose predicted class changes between consecutive "
                            "frames among those whose ground-truth class is valid and unchanged"}
    print(f"mIoU {report['miou']:.4f}  flicker {report['flicker'] * 100:.3f} %  "
          f"(temporal consistency {report['temporal_consistency']:.4f}; {n} frames, smoothing {report['smooth']})")
    _write_report(args, report)
    return 0
