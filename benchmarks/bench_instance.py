"""Benchmark instance post-processing (edgeseg.ops) against the common full-frame approaches.

    python benchmarks/bench_instance.py [--quick] [--threads N] [--json PATH] [--plot PATH]

(a) YOLO-seg post-processing of one 1920x1080 frame from a 640x640 model (A=8400 candidates,
    C=80 classes, 32 prototypes at 160x160, 30 objects): edgeseg = select_detections +
    assemble_masks(exact); peer = Ultralytics-style torch code: non_max_suppression (greedy numpy
    NMS in place of torchvision.ops.nms, which is not installed) + process_mask_native
    (sigmoid(coeffs @ protos) -> crop the letterbox padding -> bilinear upsample EVERY mask to
    the frame -> crop to the box -> > 0.5, i.e. N x H x W floats). Prints the speed ratio and
    the IoU of every edgeseg mask with the peer's.
(b) paste_masks of 100 28x28 RoI masks into 1920x1080 vs detectron2's paste_masks_in_image as it
    runs on CPU (one mask per chunk, box-local grid_sample, written into an N x H x W bool
    tensor), re-implemented with torch; prints the ratio and the pixel agreement.
(c) Cost vs number of instances (1..100) for (a)'s two pipelines, with the summed box area.

Both sides use the same number of threads (edgeseg pool and torch intra-op). Writes JSON
(atomically) and, when matplotlib is installed, a PNG of (c).
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import sys
import tempfile
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

from edgeseg import _C, ops

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from bench_kernels import median_ms  # noqa: E402
from reference import detectron2_paste  # noqa: E402  (the peer: detectron2 paste on CPU)
from edgeseg.bench import cpu_model  # noqa: E402

try:
    import torch
    import torch.nn.functional as F
except ImportError:  # pragma: no cover
    torch = None

FRAME_HW = (1080, 1920)
INPUT = 640
A, C, M, P = 8400, 80, 32, 160
CONF, IOU, MAX_DET = 0.25, 0.45, 300


# ---- synthetic YOLO-seg head output ---------------------------------------------------------


def make_scene(rng: np.random.Generator, n_obj: int, box_px: Tuple[int, int] = (80, 480),
               logit_slope: float = 1.0):
    """A realistic raw head output for a frame with n_obj objects.

    Returns (out (1, 4 + C + M, A) float32 like a YOLOv8-seg ONNX output, protos (M, P, P),
    letterbox info). Prototype m holds elliptic blobs of the objects k with k % 30 == m: a mask
    logit that rises by `logit_slope` per prototype cell towards the blob centre (0 at 85 % of
    the ellipse, clipped to +-6); each object's 10-20 anchors carry its box (jittered by 3 %), a
    high score for its class and coefficients selecting its prototype (+ 1 % noise).
    """
    H, W = FRAME_HW
    info = ops.letterbox_info(FRAME_HW, INPUT)
    s = info.resized_hw[1] / W
    pad = np.array([info.pad_left, info.pad_top, info.pad_left, info.pad_top], np.float64)
    wh = rng.uniform(*box_px, (n_obj, 2))
    wh[:, 1] *= rng.uniform(0.6, 1.4, n_obj)
    wh = np.minimum(wh, [W - 2, H - 2])
    x0 = rng.uniform(0, W - wh[:, 0])
    y0 = rng.uniform(0, H - wh[:, 1])
    frame_boxes = np.stack([x0, y0, x0 + wh[:, 0], y0 + wh[:, 1]], 1)
    in_boxes = frame_boxes * s + pad  # network input pixels

    # prototypes (cell units)
    cell = INPUT / P
    yy, xx = np.meshgrid(np.arange(P) + 0.5, np.arange(P) + 0.5, indexing="ij")
    protos = np.full((M, P, P), -6.0)
    for k, b in enumerate(in_boxes / cell):
        cx, cy = (b[0] + b[2]) / 2, (b[1] + b[3]) / 2
        ax, ay = 0.45 * (b[2] - b[0]), 0.45 * (b[3] - b[1])
        r = np.sqrt(((xx - cx) / ax) ** 2 + ((yy - cy) / ay) ** 2)
        logit = np.clip(logit_slope * min(ax, ay) * (0.85 - r), -6.0, 6.0)
        protos[k % 30] = np.maximum(protos[k % 30], logit)
    noise = rng.standard_normal((M - 30, P // 8, P // 8))
    protos[30:] = np.kron(noise, np.ones((8, 8)))  # blocky low-frequency texture
    protos = protos.astype(np.float32)

    # head output: background anchors, then ~15 anchors per object
    out = np.zeros((4 + C + M, A), np.float32)
    bg_c = rng.uniform(0, INPUT, (A, 2))
    bg_wh = rng.uniform(8, 200, (A, 2))
    out[0:2] = bg_c.T
    out[2:4] = bg_wh.T
    out[4:4 + C] = (rng.random((C, A)) ** 12 * 0.2).astype(np.float32)  # < CONF
    out[4 + C:] = rng.standard_normal((M, A))
    perm = rng.permutation(A)
    pos = 0
    for k, b in enumerate(in_boxes):
        n = int(rng.integers(10, 20))
        idx = perm[pos:pos + n]
        pos += n
        w, h = b[2] - b[0], b[3] - b[1]
        jit = rng.normal(0, 0.03, (n, 4)) * [w, h, w, h]
        bb = b + jit
        out[0, idx] = (bb[:, 0] + bb[:, 2]) / 2
        out[1, idx] = (bb[:, 1] + bb[:, 3]) / 2
        out[2, idx] = bb[:, 2] - bb[:, 0]
        out[3, idx] = bb[:, 3] - bb[:, 1]
        cls = int(rng.integers(0, C))
        out[4 + cls, idx] = rng.uniform(0.5, 0.95, n)
        coef = np.zeros(M)
        coef[k % 30] = 1.0
        out[4 + C:, idx] = (coef[:, None] + rng.normal(0, 0.01, (M, n)))
    return out[None], protos, info


# ---- edgeseg pipeline -----------------------------------------------------------------------


def ours(out: np.ndarray, protos: np.ndarray, info: ops.LetterboxInfo):
    """Raw head output -> (anchor indices, MaskSet at frame resolution)."""
    p = out[0]
    xywh = p[:4].T  # (A, 4) view, no copy
    boxes = np.empty((A, 4), np.float32)
    np.subtract(xywh[:, :2], xywh[:, 2:] / 2, out=boxes[:, :2])
    np.add(xywh[:, :2], xywh[:, 2:] / 2, out=boxes[:, 2:])
    idx, cls, score = ops.select_detections(boxes, p[4:4 + C].T, IOU, CONF,
                                            max_detections=MAX_DET)
    coeffs = np.ascontiguousarray(p[4 + C:, idx].T)
    H, W = FRAME_HW
    rh, rw = info.resized_hw
    fb = (boxes[idx] - [info.pad_left, info.pad_top, info.pad_left, info.pad_top]) * np.array(
        [W / rw, H / rh, W / rw, H / rh])
    fb = np.clip(fb, 0, [W, H, W, H]).astype(np.float32)
    masks = ops.assemble_masks(coeffs, protos, fb, FRAME_HW, letterbox=info)
    return idx, masks


# ---- peer: Ultralytics-style torch post-processing -------------------------------------------


def greedy_nms_numpy(boxes: np.ndarray, scores: np.ndarray, thr: float) -> np.ndarray:
    """The classic numpy greedy NMS (Fast R-CNN py_cpu_nms); stands in for torchvision.ops.nms."""
    x1, y1, x2, y2 = boxes.T
    areas = (x2 - x1) * (y2 - y1)
    order = scores.argsort()[::-1]
    keep = []
    while order.size > 0:
        i = order[0]
        keep.append(i)
        xx1 = np.maximum(x1[i], x1[order[1:]])
        yy1 = np.maximum(y1[i], y1[order[1:]])
        xx2 = np.minimum(x2[i], x2[order[1:]])
        yy2 = np.minimum(y2[i], y2[order[1:]])
        inter = np.maximum(0.0, xx2 - xx1) * np.maximum(0.0, yy2 - yy1)
        ovr = inter / (areas[i] + areas[order[1:]] - inter)
        order = order[np.flatnonzero(ovr <= thr) + 1]
    return np.array(keep, np.int64)


def crop_mask(masks, boxes):
    n, h, w = masks.shape
    x1, y1, x2, y2 = torch.chunk(boxes[:, :, None], 4, 1)
    r = torch.arange(w, device=masks.device, dtype=x1.dtype)[None, None, :]
    c = torch.arange(h, device=masks.device, dtype=x1.dtype)[None, :, None]
    return masks * ((r >= x1) * (r < x2) * (c >= y1) * (c < y2))


def scale_masks(masks, shape):
    """Ultralytics scale_masks: crop the letterbox padding at mask resolution, upsample."""
    mh, mw = masks.shape[2:]
    gain = min(mh / shape[0], mw / shape[1])
    pad = [(mw - shape[1] * gain) / 2, (mh - shape[0] * gain) / 2]
    top, left = int(round(pad[1] - 0.1)), int(round(pad[0] - 0.1))
    bottom, right = int(round(mh - pad[1] + 0.1)), int(round(mw - pad[0] + 0.1))
    masks = masks[..., top:bottom, left:right]
    return F.interpolate(masks, shape, mode="bilinear", align_corners=False)


def peer(out_t, protos_t, info: ops.LetterboxInfo, interpolate: str = "prob"):
    """Ultralytics non_max_suppression + scale_boxes + process_mask_native (retina masks).

    interpolate="logit" is a diagnostic variant (not Ultralytics): upsample the logits and
    threshold them at 0, the order edgeseg's exact mode defines; it isolates geometry from the
    one semantic difference (Ultralytics and YOLACT upsample sigmoid probabilities)."""
    pred = out_t[0].transpose(0, 1)  # (A, 4 + C + M)
    xc = pred[:, 4:4 + C].amax(1) > CONF
    anchor = torch.nonzero(xc)[:, 0]
    x = pred[xc]
    b = x[:, :4]
    box = torch.cat([b[:, :2] - b[:, 2:] / 2, b[:, :2] + b[:, 2:] / 2], 1)
    conf, j = x[:, 4:4 + C].max(1, keepdim=True)
    keep = conf.view(-1) > CONF
    x = torch.cat((box, conf, j.float(), x[:, 4 + C:]), 1)[keep]
    anchor = anchor[keep]
    order = x[:, 4].argsort(descending=True)[:30000]
    x, anchor = x[order], anchor[order]
    offs = x[:, 5:6] * 7680  # class offsets: class-aware NMS in one call
    i = greedy_nms_numpy((x[:, :4] + offs).numpy(), x[:, 4].numpy(), IOU)[:MAX_DET]
    det, anchor = x[i], anchor[i]
    # scale_boxes to the frame
    H, W = FRAME_HW
    gain = min(INPUT / H, INPUT / W)
    padw = round((INPUT - W * gain) / 2 - 0.1)
    padh = round((INPUT - H * gain) / 2 - 0.1)
    boxes = det[:, :4].clone()
    boxes[:, [0, 2]] -= padw
    boxes[:, [1, 3]] -= padh
    boxes /= gain
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clamp(0, W)
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clamp(0, H)
    # process_mask_native
    c, mh, mw = protos_t.shape
    masks = det[:, 6:] @ protos_t.float().view(c, -1)
    if interpolate == "prob":
        masks = masks.sigmoid()
    masks = scale_masks(masks.view(-1, mh, mw)[None], FRAME_HW)[0]
    masks = crop_mask(masks, boxes)
    return anchor.numpy(), masks.gt_(0.5 if interpolate == "prob" else 0.0)


# ---- runner ----------------------------------------------------------------------------------


def mask_ious(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    inter = (a & b).reshape(len(a), -1).sum(1)
    union = (a | b).reshape(len(a), -1).sum(1)
    return np.where(union > 0, inter / np.maximum(union, 1), 1.0)


def paired_ious(idx, ms, pidx, pm) -> np.ndarray:
    """IoU of each edgeseg mask with the peer's mask of the same anchor."""
    assert sorted(idx.tolist()) == sorted(pidx.tolist()), "the two NMS kept different anchors"
    pos = {a: i for i, a in enumerate(pidx.tolist())}
    return mask_ious(ms.to_dense(), pm.numpy()[[pos[a] for a in idx.tolist()]] > 0.5)


def rows_vs_edgeseg(bench: str, case: str, timings: List[Tuple[str, float]]) -> List[Dict]:
    """A row per (implementation, median ms); ``vs_edgeseg`` is its time over the first's (edgeseg's)."""
    base = timings[0][1]
    return [{"bench": bench, "case": case, "impl": impl, "median_ms": round(ms, 3), "vs_edgeseg": round(ms / base, 2)}
            for impl, ms in timings]


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="fewer repetitions and curve points")
    p.add_argument("--threads", type=int, default=min(2, ops.get_num_threads()),
                   help="threads for edgeseg and torch (default: %(default)s)")
    p.add_argument("--json", type=Path, default=Path(__file__).with_name("bench_instance.json"))
    p.add_argument("--plot", type=Path, default=Path(__file__).with_name("bench_instance.png"),
                   help="PNG of the instances curve (needs matplotlib)")
    args = p.parse_args(argv)
    if torch is None:
        print("torch is not installed: the peers of this benchmark need it", file=sys.stderr)
        return 1
    repeat = 3 if args.quick else 10
    min_t = 0.3 if args.quick else 1.0  # edgeseg calls are cheap: sample them for this long

    def fast_ms(fn) -> float:
        return median_ms(fn, repeat, min_t)
    ops.set_num_threads(args.threads)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    H, W = FRAME_HW
    rows: List[Dict] = []
    print(f"threads={args.threads} simd={_C.simd_name()} cpu={cpu_model()}")

    # ---- (a) YOLO-seg post-processing, 30 objects
    out, protos, info = make_scene(rng, 30)
    out_t, protos_t = torch.from_numpy(out), torch.from_numpy(protos)
    idx, ms = ours(out, protos, info)
    pidx, pm = peer(out_t, protos_t, info)
    ious = paired_ious(idx, ms, pidx, pm)
    ious_logit = paired_ious(idx, ms, *peer(out_t, protos_t, info, "logit"))
    sharp = make_scene(np.random.default_rng(1), 30, logit_slope=4.0)
    ious_sharp = paired_ious(*ours(*sharp), *peer(torch.from_numpy(sharp[0]),
                                                   torch.from_numpy(sharp[1]), sharp[2]))
    t_ours = fast_ms(lambda: ours(out, protos, info))
    ops.set_num_threads(1)
    t_ours1 = fast_ms(lambda: ours(out, protos, info))
    ops.set_num_threads(args.threads)
    t_peer = median_ms(lambda: peer(out_t, protos_t, info), max(1, repeat // 2))
    # stage split of ours
    pp = out[0]
    xywh = pp[:4].T
    bx = np.concatenate([xywh[:, :2] - xywh[:, 2:] / 2, xywh[:, :2] + xywh[:, 2:] / 2], 1)
    t_sel = fast_ms(lambda: ops.select_detections(bx, pp[4:4 + C].T, IOU, CONF,
                                                  max_detections=MAX_DET))
    t_rle = fast_ms(lambda: ms.to_rle())
    case_a = f"{len(idx)} inst {W}x{H} A={A} C={C} M={M}@{P}"
    rows += rows_vs_edgeseg("yolo-seg post", case_a, [(f"edgeseg ({args.threads} thr)", t_ours),
                                                     ("edgeseg (1 thr)", t_ours1),
                                                     ("ultralytics-style torch + numpy NMS", t_peer)])
    print(f"(a) {case_a}: edgeseg {t_ours:.2f} ms (select_detections {t_sel:.2f} ms; 1 thr "
          f"{t_ours1:.2f} ms), peer {t_peer:.1f} ms -> {t_peer / t_ours:.1f}x; "
          f"to_rle of all masks {t_rle:.2f} ms", flush=True)
    print(f"    mask IoU vs peer (mean / min): {ious.mean():.4f} / {ious.min():.4f}; "
          f"vs the peer upsampling logits instead of probabilities: {ious_logit.mean():.4f} / "
          f"{ious_logit.min():.4f}; sharp masks (logit slope 4/cell) vs peer: "
          f"{ious_sharp.mean():.4f} / {ious_sharp.min():.4f}", flush=True)
    iou_summary = {k: {"mean": round(float(v.mean()), 5), "min": round(float(v.min()), 5)}
                   for k, v in (("vs_ultralytics", ious), ("vs_peer_logit_interp", ious_logit),
                                ("sharp_vs_ultralytics", ious_sharp))}

    # ---- (b) paste 100 28x28 masks
    N = 100
    g = (np.arange(28) + 0.5) / 28 - 0.5
    r2 = g[None, :] ** 2 + g[:, None] ** 2
    base = np.clip(1.6 * (1 - 5 * r2), 0, 1)
    masks = np.clip(base[None] + rng.normal(0, 0.15, (N, 28, 28)), 0, 1).astype(np.float32)
    wh = rng.uniform(40, 400, (N, 2))
    xy = rng.uniform(-20, 1, (N, 2)) + rng.uniform(0, 1, (N, 2)) * ([W, H] - wh)
    pboxes = np.concatenate([xy, xy + wh], 1).astype(np.float32)
    mt, bt = torch.from_numpy(masks), torch.from_numpy(pboxes)
    ours_p = ops.paste_masks(masks, pboxes, FRAME_HW)
    d2 = detectron2_paste(mt, bt, FRAME_HW, 0.5).numpy()
    od = ours_p.to_dense()
    diff = int((od != d2).sum())
    union = int((od | d2).sum())
    tp = fast_ms(lambda: ops.paste_masks(masks, pboxes, FRAME_HW))
    tpd = fast_ms(lambda: ops.paste_masks(masks, pboxes, FRAME_HW).to_dense())
    td2 = median_ms(lambda: detectron2_paste(mt, bt, FRAME_HW, 0.5), max(1, repeat // 2))
    case_b = f"{N} x 28x28 -> {W}x{H}"
    rows += rows_vs_edgeseg("paste_masks", case_b, [(f"edgeseg ({args.threads} thr)", tp),
                                                   ("edgeseg + to_dense (N x H x W bool)", tpd),
                                                   ("detectron2 CPU path (torch)", td2)])
    agree = 1.0 - diff / max(union, 1)
    print(f"(b) {case_b}: edgeseg {tp:.2f} ms (+to_dense {tpd:.2f} ms), detectron2 {td2:.1f} ms "
          f"-> {td2 / tp:.1f}x ({td2 / tpd:.1f}x incl. dense); {diff} differing pixels of "
          f"{union} mask pixels (agreement {100 * agree:.4f} %)", flush=True)

    # ---- (c) curve over the number of instances
    counts = [1, 5, 10, 30, 100] if args.quick else [1, 2, 5, 10, 20, 30, 50, 75, 100]
    curve = []
    print("(c) instances | box area / frame | edgeseg ms | peer ms | ratio")
    for n in counts:
        o, pr, inf = make_scene(np.random.default_rng(100 + n), n)
        ot, pt = torch.from_numpy(o), torch.from_numpy(pr)
        ii, mm = ours(o, pr, inf)
        area = float(((mm.regions[:, 2] - mm.regions[:, 0]).astype(np.int64)
                      * (mm.regions[:, 3] - mm.regions[:, 1])).sum()) / (H * W)
        to = fast_ms(lambda: ours(o, pr, inf))
        tpe = median_ms(lambda: peer(ot, pt, inf), 1 if n >= 30 else max(1, repeat // 2))
        curve.append({"instances": int(len(ii)), "box_area_frames": round(area, 3),
                      "edgeseg_ms": round(to, 3), "peer_ms": round(tpe, 3)})
        print(f"    {len(ii):4d} | {area:6.2f} | {to:8.2f} | {tpe:9.1f} | {tpe / to:6.1f}x",
              flush=True)

    print()
    print(f"| bench | case | implementation | median ms | time / edgeseg ({args.threads} thr) |")
    print("|---|---|---|---:|---:|")
    for r in rows:
        print(f"| {r['bench']} | {r['case']} | {r['impl']} | {r['median_ms']:.2f} | "
              f"{r['vs_edgeseg']:.2f} |")
    result = {
        "date": _dt.date.today().isoformat(),
        "machine": {"cpu": cpu_model(), "arch": platform.machine(), "cores": os.cpu_count()},
        "threads": args.threads, "simd": _C.simd_name(), "quick": args.quick,
        "versions": {"numpy": np.__version__, "torch": torch.__version__},
        "rows": rows, "yolo_mask_iou_vs_peer": iou_summary,
        "paste_pixel_agreement": {"differing": diff, "union": union, "agreement": agree},
        "curve": curve,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=args.json.parent, prefix=args.json.name, suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(result, f, indent=2)
    os.replace(tmp, args.json)
    print(f"\nwrote {args.json}")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return 0
    fig, ax = plt.subplots(figsize=(6, 4))
    xs = [c["instances"] for c in curve]
    ax.plot(xs, [c["edgeseg_ms"] for c in curve], "o-", label="edgeseg (box-local)")
    ax.plot(xs, [c["peer_ms"] for c in curve], "s-", label="full-frame (Ultralytics style)")
    ax.set_xlabel("instances")
    ax.set_ylabel("ms per frame (1920x1080)")
    ax.set_yscale("log")
    ax.grid(True, alpha=0.3)
    ax.legend()
    ax.set_title(f"YOLO-seg post-processing, {args.threads} thread(s)")
    fig.tight_layout()
    fig.savefig(args.plot, dpi=100)
    print(f"wrote {args.plot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
