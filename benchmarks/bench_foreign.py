"""edgeseg against the origin tools' own pipelines, on the same foreign ONNX files and frames.

    PYTHONPATH=/work/main YOLO_OFFLINE=1 /work/peer/bin/python benchmarks/bench_foreign.py \
        [--frames 6] [--repeats 3] [--size 1920x1080] [--only NAME ...] [--json PATH]

Needs the peer-tool environment (Ultralytics, torch) besides edgeseg's own dependencies; the
models are the fixtures in tests/fixtures/foreign/ (made by tools/make_foreign_fixtures.py).

- Ultralytics YOLO-seg files: ``YOLO(onnx).predict(frame, retina_masks=True)`` (conf 0.25,
  IoU 0.7, max_det 300; its own per-stage ``speed``) against ``edgeseg.load(onnx)(frame)``.
  Agreement: detections matched one to one (same class, greedy by mask IoU >= 0.5); mean mask IoU
  of the matched pairs, share of Ultralytics' detections matched, and edgeseg's unmatched extras.
- Semantic files: the recipe their tools document (resize to the input, normalise, ONNX Runtime,
  torch ``F.interpolate(bilinear, align_corners=False)`` to the frame + argmax; sigmoid threshold
  for one channel; nearest resize of in-graph argmax labels) against edgeseg. --semantic-resize
  letterbox (default) keeps the aspect ratio with centred padding as edgeseg does (logits resized
  to the input, padding cut off, then to the frame, as mmseg does), so the agreement measures the
  decoding; stretch is the plain resize of the smp/torchvision tutorials.
  Agreement: share of pixels with the same label.

Frames are synthetic shapes scenes like the ones the fixtures were trained on, at --size. Both
sides run in the same process, alternating frame by frame; medians over frames x repeats.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "foreign"
sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(0, str(ROOT))

import edgeseg  # noqa: E402
from edgeseg.bench import cpu_model  # noqa: E402
from make_foreign_fixtures import origin_input, origin_labels, shapes_image  # noqa: E402

STAGES = ("pre", "infer", "post")


def make_frames(n: int, h: int, w: int) -> list[np.ndarray]:
    return [shapes_image(9000 + i, h, w, max_shapes=6)[0] for i in range(n)]


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def match(ref_cls, ref_masks, our_cls, our_masks, min_iou=0.5):
    """Greedy one-to-one matching by mask IoU within a class. Returns matched IoUs."""
    pairs = []
    for i in range(len(ref_cls)):
        for j in range(len(our_cls)):
            if ref_cls[i] == our_cls[j]:
                iou = mask_iou(ref_masks[i], our_masks[j])
                if iou >= min_iou:
                    pairs.append((iou, i, j))
    pairs.sort(reverse=True)
    used_r, used_o, ious = set(), set(), []
    for iou, i, j in pairs:
        if i not in used_r and j not in used_o:
            used_r.add(i)
            used_o.add(j)
            ious.append(iou)
    return ious


def med(xs) -> float:
    return float(np.median(xs)) if len(xs) else float("nan")


def timing_lists(*sides: str) -> dict[str, list]:
    """Empty per-stage and end-to-end millisecond lists of each side (``ul_pre`` ... ``es_e2e``)."""
    return {f"{side}_{k}": [] for side in sides for k in (*STAGES, "e2e")}


def timed(t: dict, side: str, fn, frame, stage_ms):
    """``fn(frame)``, its end-to-end ms and its ``stage_ms(result)`` per stage appended to ``t[side_*]``."""
    s = time.perf_counter()
    out = fn(frame)
    t[f"{side}_e2e"].append((time.perf_counter() - s) * 1e3)
    ms = stage_ms(out)
    for k in STAGES:
        t[f"{side}_{k}"].append(ms[k])
    return out


def bench_ultralytics(name: str, fx: dict, frames, repeats: int) -> dict:
    from ultralytics import YOLO

    path = str(FIXTURES / fx["file"])
    ul = YOLO(path, task="segment")
    ul.predict(frames[0], retina_masks=True, verbose=False)  # warm up both
    try:
        ours = edgeseg.load(path)
        ours(frames[0])
    except Exception as e:  # still time Ultralytics, and say why edgeseg could not run the file
        ours, error = None, f"{type(e).__name__}: {e}"[:300]
    t = timing_lists("ul", "es")
    ious, n_ref, n_ours, n_matched = [], 0, 0, 0
    for rep in range(repeats):
        for frame in frames:
            s = time.perf_counter()
            r = ul.predict(frame, retina_masks=True, verbose=False)[0]
            t["ul_e2e"].append((time.perf_counter() - s) * 1e3)
            t["ul_pre"].append(r.speed["preprocess"])
            t["ul_infer"].append(r.speed["inference"])
            t["ul_post"].append(r.speed["postprocess"])
            if ours is None:
                n_ref += len(r.boxes) if rep == 0 else 0
                continue
            o = timed(t, "es", ours, frame, lambda r: r.timings)
            if rep == 0:
                ref_masks = r.masks.data.cpu().numpy() > 0.5 if r.masks is not None else np.zeros((0,) + frame.shape[:2], bool)
                ref_cls = r.boxes.cls.cpu().numpy().astype(int)
                our_masks = o.masks.to_dense() if len(o) else np.zeros((0,) + frame.shape[:2], bool)
                m = match(ref_cls, ref_masks, np.asarray(o.class_ids).astype(int), our_masks)
                ious += m
                n_ref += len(ref_cls)
                n_ours += len(o)
                n_matched += len(m)
    out = {k: med(v) for k, v in t.items()}
    if ours is None:
        out.update(kind="instance", error=error, detections_ultralytics=n_ref)
        return out
    out.update(kind="instance", detections_ultralytics=n_ref, detections_edgeseg=n_ours, matched=n_matched,
               matched_share=n_matched / n_ref if n_ref else float("nan"),
               mean_mask_iou=float(np.mean(ious)) if ious else float("nan"),
               min_mask_iou=float(np.min(ious)) if ious else float("nan"))
    return out


class OriginSemantic:
    """The pipeline a torch user of smp / torchvision / mmseg / PaddleSeg exports writes."""

    def __init__(self, path: Path, fx: dict, resize: str = "stretch", pad_value: float = 0.0):
        import onnxruntime as ort

        self.resize, self.pad_value = resize, pad_value
        self.sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        self.inp = self.sess.get_inputs()[0]
        self.fx = fx
        self.size = tuple(fx["input_size_hw"])

    def __call__(self, frame):
        conv = self.fx["convention"]
        t0 = time.perf_counter()
        x, crop = origin_input(frame, self.inp.type, self.size, conv, self.fx["normalisation"],
                               self.resize != "stretch", self.pad_value)
        t1 = time.perf_counter()
        y = self.sess.run(None, {self.inp.name: x})[0]
        t2 = time.perf_counter()
        # logits to the input size (padding cut off) only where there is padding
        labels = origin_labels(y, conv, frame.shape[:2], self.size, crop, to_input=crop != (0, 0, *self.size))
        t3 = time.perf_counter()
        return labels, {"pre": (t1 - t0) * 1e3, "infer": (t2 - t1) * 1e3, "post": (t3 - t2) * 1e3}


def bench_semantic(name: str, fx: dict, frames, repeats: int, resize: str = "stretch") -> dict:
    path = FIXTURES / fx["file"]
    norm = fx["normalisation"]
    kw = {}
    if "std" in norm and norm.get("scale") == "0..1":  # edgeseg takes them on the 0..255 scale
        kw = {"mean": [255 * v for v in norm["mean"]], "std": [255 * v for v in norm["std"]]}
    if fx["convention"] == "labels":
        kw["classes"] = fx["classes"]
    ours = edgeseg.load(str(path), **kw)
    origin = OriginSemantic(path, fx, resize, float(np.mean(ours.meta.pad_value)))
    ours(frames[0])
    origin(frames[0])
    t = timing_lists("or", "es")
    agree = []
    for rep in range(repeats):
        for frame in frames:
            labels = timed(t, "or", origin, frame, lambda r: r[1])[0]
            o = timed(t, "es", ours, frame, lambda r: r.timings)
            if rep == 0:
                agree.append(float((o.labels.astype(np.int64) == labels.astype(np.int64)).mean()))
    out = {k: med(v) for k, v in t.items()}
    out.update(kind="semantic", pixel_agreement=float(np.mean(agree)), min_pixel_agreement=float(np.min(agree)),
               edgeseg_facts=sorted(kw))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=6)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--size", default="1920x1080", help="WxH of the frames")
    ap.add_argument("--only", nargs="*", help="fixture names (default: all)")
    ap.add_argument("--semantic-resize", choices=("stretch", "letterbox"), default="letterbox",
                    help="the semantic origin pipeline's resize: letterbox (keep ratio, centred pad: what edgeseg "
                         "does, so the agreement measures decoding) or stretch (smp/torchvision tutorials)")
    ap.add_argument("--json", type=Path, help="write the figures here (atomically)")
    args = ap.parse_args(argv)
    w, h = (int(v) for v in args.size.lower().split("x"))
    manifest = json.loads((FIXTURES / "manifest.json").read_text())
    frames = make_frames(args.frames, h, w)
    results = {}
    for name, fx in manifest["fixtures"].items():
        if args.only and name not in args.only:
            continue
        try:
            if fx["task"] == "instance":
                results[name] = bench_ultralytics(name, fx, frames, args.repeats)
            else:
                results[name] = bench_semantic(name, fx, frames, args.repeats, args.semantic_resize)
        except Exception as e:  # one file edgeseg cannot run yet must not hide the others' figures
            results[name] = {"error": f"{type(e).__name__}: {e}"[:300]}
        report(name, results[name])
    summary = {"semantic_resize": args.semantic_resize, "machine": cpu_model(), "cores": os.cpu_count(), "date": _dt.datetime.now(_dt.timezone.utc).isoformat(),
               "size": args.size, "frames": args.frames, "repeats": args.repeats, "results": results}
    if args.json:
        tmp = args.json.with_suffix(".tmp")
        tmp.write_text(json.dumps(summary, indent=1))
        os.replace(tmp, args.json)
    return 0


def report(name: str, r: dict) -> None:
    if "error" in r:
        ul = (f"Ultralytics pre/infer/post {r['ul_pre']:.2f}/{r['ul_infer']:.2f}/{r['ul_post']:.2f} ms, "
              f"{r['detections_ultralytics']} detections; " if "ul_pre" in r else "")
        print(f"{name:30s} {ul}edgeseg failed: {r['error']}", flush=True)
        return
    peer = "ul" if r["kind"] == "instance" else "or"
    pp_peer = r[f"{peer}_pre"] + r[f"{peer}_post"]
    pp_ours = r["es_pre"] + r["es_post"]
    line = (f"{name:30s} peer pre/infer/post {r[f'{peer}_pre']:6.2f}/{r[f'{peer}_infer']:6.2f}/{r[f'{peer}_post']:6.2f} ms "
            f"e2e {1e3 / r[f'{peer}_e2e']:6.1f} FPS | edgeseg {r['es_pre']:6.2f}/{r['es_infer']:6.2f}/{r['es_post']:6.2f} ms "
            f"e2e {1e3 / r['es_e2e']:6.1f} FPS | pre+post {pp_peer / pp_ours:5.1f}x, e2e {r[f'{peer}_e2e'] / r['es_e2e']:4.2f}x")
    if r["kind"] == "instance":
        line += (f" | matched {r['matched']}/{r['detections_ultralytics']} ({100 * r['matched_share']:.1f}%), "
                 f"edgeseg {r['detections_edgeseg']}, mean mask IoU {r['mean_mask_iou']:.4f} (min {r['min_mask_iou']:.4f})")
    else:
        line += f" | pixel agreement {100 * r['pixel_agreement']:.3f}% (min {100 * r['min_pixel_agreement']:.3f}%)"
    print(line, flush=True)


if __name__ == "__main__":
    sys.exit(main())
