"""Benchmark edgeseg.ops kernels against the usual numpy / OpenCV / torch ways of doing the same.

    python benchmarks/bench_kernels.py [--quick] [--threads N] [--json PATH] [--no-model]

In one run, on the same inputs: each kernel against its peers (median ms per call, peer time /
edgeseg time, and for bandwidth-bound kernels the achieved bytes/s as a fraction of this
machine's read bandwidth, measured in the same run with 1 thread and with N threads), then the
shipped semantic model end to end on ONNX Runtime (pre + post as a share of the per-frame
latency). Writes JSON, a markdown report and a PNG chart of the ratios next to --json
(atomically). torch peers are skipped when torch is not installed.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

import cv2
import numpy as np

from edgeseg import _C, defaults, ops
from edgeseg.bench import cpu_model

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from reference import ref_letterbox  # noqa: E402  (naive numpy letterbox)

try:  # optional peer
    import torch
    import torch.nn.functional as F
except ImportError:  # pragma: no cover
    torch = None


def median_ms(fn: Callable[[], object], repeat: int, min_time: float = 0.0) -> float:
    fn()  # warm-up (allocations, thread start, caches)
    times: List[float] = []
    t_end = time.perf_counter() + min_time
    while len(times) < repeat or time.perf_counter() < t_end:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        if len(times) >= 10 * repeat:
            break
    return 1e3 * statistics.median(times)


def read_bandwidth_gbs(n_bytes: int, repeat: int, threads: int = 1) -> float:
    """Read bandwidth (GB/s): numpy max of a large float32 array (a SIMD reduction that is
    memory-bound; np.sum's pairwise summation is not, on this machine it reads ~2x slower), split
    over `threads` Python threads (numpy releases the GIL inside the reduction)."""
    from concurrent.futures import ThreadPoolExecutor

    a = np.ones(n_bytes // 4, np.float32)
    parts = np.array_split(a, threads)
    if threads == 1:
        ms = median_ms(lambda: a.max(), repeat)
    else:
        with ThreadPoolExecutor(threads) as pool:
            ms = median_ms(lambda: list(pool.map(np.max, parts)), repeat)
    return a.nbytes / (ms * 1e-3) / 1e9


class Bench:
    def __init__(self, repeat: int, threads: int, bw_gbs: float, bw1_gbs: float):
        self.repeat, self.threads = repeat, threads
        self.bw = {threads: bw_gbs, 1: bw1_gbs}  # read bandwidth with as many threads as edgeseg
        self.rows: List[Dict] = []

    def case(self, kernel: str, case: str, ours: Callable, peers: Dict[str, Optional[Callable]],
             nbytes: Optional[int] = None, extra: Optional[Dict[str, Callable]] = None) -> None:
        """Time edgeseg with N threads and 1 thread, `extra` edgeseg variants and the peers."""
        ops.set_num_threads(self.threads)
        t_ours = median_ms(ours, self.repeat)
        entries = [(f"edgeseg ({self.threads} thr)", t_ours, self.threads)]
        for name, fn in (extra or {}).items():
            entries.append((name, median_ms(fn, self.repeat), self.threads))
        ops.set_num_threads(1)
        entries.append(("edgeseg (1 thr)", median_ms(ours, self.repeat), 1))
        ops.set_num_threads(self.threads)
        for name, fn in peers.items():
            if fn is not None:
                entries.append((name, median_ms(fn, self.repeat), None))
        for name, t, nthr in entries:
            row = {"kernel": kernel, "case": case, "impl": name, "median_ms": round(t, 3),
                   "vs_edgeseg": round(t / t_ours, 2)}
            if nbytes is not None and nthr is not None:
                row["bw_fraction"] = round(nbytes / (t * 1e-3) / 1e9 / self.bw[nthr], 2)
            self.rows.append(row)
            print(f"  {kernel:16s} {case:34s} {name:36s} {t:9.2f} ms", flush=True)


def segmentation_like_logits(rng: np.random.Generator, c: int, h: int, w: int) -> np.ndarray:
    """Smooth logits of a blob-shaped label map (what a segmentation network emits): one-hot of a
    coarse random label map scaled up, blurred, plus mild noise."""
    coarse = rng.integers(0, c, (max(1, h // 16), max(1, w // 16)))
    lab = cv2.resize(coarse.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST)
    x = 6.0 * (np.arange(c)[:, None, None] == lab[None]).astype(np.float32)
    x = np.stack([cv2.GaussianBlur(p, (0, 0), 2.0) for p in x])
    return (x + 0.3 * rng.standard_normal(x.shape)).astype(np.float32)


def end_to_end(repeat: int) -> List[Dict]:
    """Shipped semantic model on ONNX Runtime CPU: pre / infer / post medians per frame size and
    the share of pre + post in the per-frame latency (synthetic moving-scene frames)."""
    import edgeseg
    from edgeseg.data.synthetic import video_frame

    predictor = edgeseg.load()
    predictor.warmup(3)
    h, w = predictor.input_size
    rows = []
    for H, W in [(720, 1280), (1080, 1920), (h, w)]:
        frames = [np.ascontiguousarray(video_frame(t, size=(H, W)).image) for t in range(0, 40, 5)]
        stages: Dict[str, List[float]] = {"pre": [], "infer": [], "post": []}
        for _ in range(max(3, repeat // 2)):
            for f in frames:
                r = predictor(f)
                for k in stages:
                    stages[k].append(r.timings[k])
        med = {k: statistics.median(v) for k, v in stages.items()}
        total = sum(med.values())
        rows.append({"frame": f"{W}x{H}", "input": f"{w}x{h}", **{k: round(v, 3) for k, v in med.items()},
                     "pre_post_share": round((med["pre"] + med["post"]) / total, 3)})
        print(f"  end-to-end {W}x{H} -> {w}x{h}: pre {med['pre']:.2f} infer {med['infer']:.2f} "
              f"post {med['post']:.2f} ms, pre+post {100 * rows[-1]['pre_post_share']:.1f} %",
              flush=True)
    return rows


def markdown(result: Dict) -> str:
    thr = result["edgeseg_threads"]
    lines = [
        f"- Date: {result['date']}; machine: {result['machine']['cpu']} ({result['machine']['arch']}, "
        f"{result['machine']['cores']} cores); SIMD path `{result['simd']}`; edgeseg threads {thr}.",
        f"- Read bandwidth (numpy float32 max, same run): {result['read_bandwidth_gbs_1thr']:.2f} GB/s "
        f"with 1 thread, {result['read_bandwidth_gbs']:.2f} GB/s with {thr}.",
        "- Versions: " + ", ".join(f"{k} {v}" for k, v in result["versions"].items() if v) + ".",
        "",
        f"| kernel | case | implementation | median ms | time / edgeseg ({thr} thr) | % of read BW |",
        "|---|---|---|---:|---:|---:|",
    ]
    for r in result["rows"]:
        frac = f"{100 * r['bw_fraction']:.0f} %" if "bw_fraction" in r else ""
        lines.append(f"| {r['kernel']} | {r['case']} | {r['impl']} | {r['median_ms']:.2f} | "
                     f"{r['vs_edgeseg']:.2f} | {frac} |")
    if result.get("end_to_end"):
        lines += ["", "End to end, shipped semantic model, ONNX Runtime CPU (median ms per frame):", "",
                  "| frame | network input | pre | infer | post | (pre + post) / total |",
                  "|---|---|---:|---:|---:|---:|"]
        for r in result["end_to_end"]:
            lines.append(f"| {r['frame']} | {r['input']} | {r['pre']:.2f} | {r['infer']:.2f} | "
                         f"{r['post']:.2f} | {100 * r['pre_post_share']:.1f} % |")
    return "\n".join(lines) + "\n"


def plot(result: Dict, path: Path) -> bool:
    """Bar chart of peer time / edgeseg time per case (log scale); False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    rows = [r for r in result["rows"] if not r["impl"].startswith("edgeseg")]
    labels = [f"{r['kernel']} {r['case']}\nvs {r['impl']}" for r in rows]
    fig, ax = plt.subplots(figsize=(9, 0.42 * len(rows) + 1.2))
    ax.barh(range(len(rows)), [r["vs_edgeseg"] for r in rows], color="tab:blue")
    ax.set_yticks(range(len(rows)), labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.axvline(1.0, color="k", lw=0.8)
    ax.set_xlabel(f"peer time / edgeseg time ({result['edgeseg_threads']} threads), log scale")
    ax.set_title(f"edgeseg kernels vs peers, {result['machine']['cpu']}, {result['date']}", fontsize=9)
    fig.tight_layout()
    _atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=110), binary=True)
    plt.close(fig)
    return True


def _atomic_write(path: Path, write: Callable, binary: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb" if binary else "w") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="fewer repetitions (noisy but fast)")
    p.add_argument("--threads", type=int, default=ops.get_num_threads(),
                   help="edgeseg threads (default: %(default)s)")
    p.add_argument("--json", type=Path, default=Path(__file__).with_name("bench_kernels.json"),
                   help="where to write results; the .md report and .png chart go beside it "
                        "(default: %(default)s)")
    p.add_argument("--no-model", action="store_true",
                   help="skip the end-to-end measurement of the shipped model")
    args = p.parse_args(argv)
    repeat = 3 if args.quick else 10
    rng = np.random.default_rng(0)

    bw_bytes = (128 if args.quick else 512) << 20
    bw1 = read_bandwidth_gbs(bw_bytes, repeat)
    bw = read_bandwidth_gbs(bw_bytes, repeat, args.threads) if args.threads > 1 else bw1
    print(f"read bandwidth (numpy float32 max): {bw1:.1f} GB/s with 1 thread, {bw:.1f} GB/s with "
          f"{args.threads}; simd={_C.simd_name()}")
    b = Bench(repeat, args.threads, bw, bw1)

    # ---- argmax
    for c, h, w in [(21, 512, 512), (19, 1024, 2048)]:
        for dt in (np.float32, np.float16):
            x = rng.standard_normal((c, h, w)).astype(dt)
            tx = torch.from_numpy(x) if torch is not None else None
            b.case("argmax", f"{c}x{h}x{w} {np.dtype(dt).name}", lambda: ops.argmax(x), {
                "np.argmax(axis=0)": lambda: np.argmax(x, axis=0),
                "torch.argmax(dim=0)": (lambda: torch.argmax(tx, dim=0)) if tx is not None else None,
            }, nbytes=x.nbytes + h * w)

    # ---- upsample_argmax: random logits (every cell blended: the worst case) and the smooth
    # logits of a real label map (most cells label-uniform)
    for kind, c, h, w, oh, ow in [("random", 19, 128, 256, 1024, 2048), ("random", 21, 64, 64, 512, 512),
                                  ("seg-like", 19, 128, 256, 1024, 2048), ("seg-like", 21, 64, 64, 512, 512)]:
        x = (rng.standard_normal((c, h, w)).astype(np.float32) if kind == "random"
             else segmentation_like_logits(rng, c, h, w))
        tx = torch.from_numpy(x)[None] if torch is not None else None

        def cv2_peer(x=x, oh=oh, ow=ow):
            up = np.stack([cv2.resize(p, (ow, oh), interpolation=cv2.INTER_LINEAR) for p in x])
            return np.argmax(up, axis=0)

        def torch_peer(tx=tx, oh=oh, ow=ow):
            return F.interpolate(tx, size=(oh, ow), mode="bilinear",
                                 align_corners=False)[0].argmax(0)

        b.case("upsample_argmax", f"{c}x{h}x{w} -> {oh}x{ow} f32 {kind}",
               lambda x=x, oh=oh, ow=ow: ops.upsample_argmax(x, (oh, ow)), {
                   "torch interpolate + argmax": torch_peer if tx is not None else None,
                   "cv2.resize per channel + np.argmax": cv2_peer,
               })

    # ---- letterbox
    mean = np.array(defaults.MEAN_RGB, np.float32)
    std = np.array(defaults.STD_RGB, np.float32).reshape(1, 3, 1, 1)
    for (W, H), s in [((1920, 1080), 640), ((1280, 720), 512)]:
        img = cv2.GaussianBlur(rng.integers(0, 256, (H, W, 3), dtype=np.uint8), (5, 5), 0)
        info = ops.letterbox_info((H, W), s)
        rh, rw = info.resized_hw
        top, left = info.pad_top, info.pad_left
        out = np.empty((1, 3, s, s), np.float32)
        # Bytes touched: the source rows bilinear sampling reads (<= 2 per output row) + output.
        src_bytes = min(H, 2 * rh) * W * 3

        def cv2_chain(img=img, rh=rh, rw=rw, top=top, left=left, s=s):
            r = cv2.resize(img, (rw, rh), interpolation=cv2.INTER_LINEAR)
            r = cv2.copyMakeBorder(r, top, s - rh - top, left, s - rw - left, cv2.BORDER_CONSTANT,
                                   value=(defaults.PAD_VALUE,) * 3)
            blob = cv2.dnn.blobFromImage(r, 1.0, (s, s), tuple(float(m) for m in mean),
                                         swapRB=True, crop=False, ddepth=cv2.CV_32F)
            blob /= std
            return blob

        b.case("letterbox", f"{W}x{H} -> {s}x{s} f32",
               lambda img=img, s=s, out=out: ops.letterbox(img, s, out=out), {
                   "cv2 resize+border+blobFromImage": cv2_chain,
                   "naive numpy (tests/reference.py)": lambda img=img, s=s: ref_letterbox(
                       img, s, defaults.MEAN_RGB, defaults.STD_RGB, defaults.PAD_VALUE),
               }, nbytes=src_bytes + out.nbytes,
               extra={f"edgeseg ({args.threads} thr, new output array)":
                      lambda img=img, s=s: ops.letterbox(img, s)})
        out16 = np.empty((1, 3, s, s), np.float16)
        b.case("letterbox", f"{W}x{H} -> {s}x{s} f16",
               lambda img=img, s=s, out16=out16: ops.letterbox(img, s, dtype=np.float16,
                                                               out=out16), {},
               nbytes=src_bytes + out16.nbytes)

    # ---- overlay
    H, W, K = 1080, 1920, 21
    img = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    lab = np.ascontiguousarray(
        cv2.resize(rng.integers(0, K, (H // 8, W // 8)).astype(np.uint8), (W, H),
                   interpolation=cv2.INTER_NEAREST))
    pal = rng.integers(0, 256, (K, 3), dtype=np.uint8)
    pal256 = np.zeros((256, 3), np.uint8)
    pal256[:K] = pal
    out = np.empty_like(img)
    b.case("overlay", f"{W}x{H} K={K}", lambda: ops.overlay(img, lab, pal, 0.5, out=out), {
        "np palette gather + cv2.addWeighted": lambda: cv2.addWeighted(img, 0.5, pal256[lab], 0.5, 0),
    }, nbytes=img.nbytes + lab.nbytes + out.nbytes)

    e2e = [] if args.no_model else end_to_end(repeat)

    result = {
        "date": _dt.date.today().isoformat(),
        "machine": {"cpu": cpu_model(), "arch": platform.machine(), "cores": os.cpu_count()},
        "edgeseg_threads": args.threads,
        "simd": _C.simd_name(),
        "quick": args.quick,
        "read_bandwidth_gbs": round(bw, 2),
        "read_bandwidth_gbs_1thr": round(bw1, 2),
        "versions": {"numpy": np.__version__, "opencv": cv2.__version__,
                     "torch": torch.__version__ if torch is not None else None,
                     "onnxruntime": _ort_version()},
        "rows": b.rows,
        "end_to_end": e2e,
    }
    report = markdown(result)
    print()
    print(report)
    _atomic_write(args.json, lambda f: json.dump(result, f, indent=2))
    md = args.json.with_suffix(".md")
    _atomic_write(md, lambda f: f.write(report))
    png = args.json.with_suffix(".png")
    wrote = [args.json, md] + ([png] if plot(result, png) else [])
    print("wrote " + ", ".join(str(w) for w in wrote))
    return 0


def _ort_version() -> Optional[str]:
    try:
        import onnxruntime

        return onnxruntime.__version__
    except ImportError:  # pragma: no cover
        return None


if __name__ == "__main__":
    raise SystemExit(main())
