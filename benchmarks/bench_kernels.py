"""Benchmark edgeseg.ops kernels against the usual numpy / OpenCV / torch ways of doing the same.

    python benchmarks/bench_kernels.py [--quick] [--threads N] [--json PATH]

Prints a markdown table (median ms per call, peer time / edgeseg time, and for bandwidth-bound
kernels the achieved bytes/s as a fraction of the machine's measured read bandwidth) and writes
the same numbers as JSON (atomically). torch peers are skipped when torch is not installed.
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


def read_bandwidth_gbs(n_bytes: int, repeat: int) -> float:
    """Single-thread read bandwidth: numpy sum of a large float32 array (GB/s)."""
    a = np.ones(n_bytes // 4, np.float32)
    ms = median_ms(lambda: a.sum(), repeat)
    return a.nbytes / (ms * 1e-3) / 1e9


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


class Bench:
    def __init__(self, repeat: int, threads: int, bw_gbs: float):
        self.repeat, self.threads, self.bw = repeat, threads, bw_gbs
        self.rows: List[Dict] = []

    def case(self, kernel: str, case: str, ours: Callable, peers: Dict[str, Optional[Callable]],
             nbytes: Optional[int] = None) -> None:
        ops.set_num_threads(self.threads)
        t_ours = median_ms(ours, self.repeat)
        ops.set_num_threads(1)
        t_ours1 = median_ms(ours, self.repeat)
        ops.set_num_threads(self.threads)
        entries = [(f"edgeseg ({self.threads} thr)", t_ours), ("edgeseg (1 thr)", t_ours1)]
        for name, fn in peers.items():
            if fn is not None:
                entries.append((name, median_ms(fn, self.repeat)))
        for name, t in entries:
            row = {"kernel": kernel, "case": case, "impl": name, "median_ms": round(t, 3),
                   "vs_edgeseg": round(t / t_ours, 2)}
            if nbytes is not None and name.startswith("edgeseg"):
                row["bw_fraction"] = round(nbytes / (t * 1e-3) / 1e9 / self.bw, 2)
            self.rows.append(row)
            print(f"  {kernel:16s} {case:28s} {name:34s} {t:9.2f} ms", flush=True)


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="fewer repetitions (noisy but fast)")
    p.add_argument("--threads", type=int, default=ops.get_num_threads(),
                   help="edgeseg threads (default: %(default)s)")
    p.add_argument("--json", type=Path, default=Path(__file__).with_name("bench_kernels.json"),
                   help="where to write results (default: %(default)s)")
    args = p.parse_args(argv)
    repeat = 3 if args.quick else 10
    rng = np.random.default_rng(0)

    bw = read_bandwidth_gbs((128 if args.quick else 512) << 20, repeat)
    print(f"read bandwidth (numpy float32 sum, 1 thread): {bw:.1f} GB/s; simd={_C.simd_name()}")
    b = Bench(repeat, args.threads, bw)

    # ---- argmax
    for c, h, w in [(21, 512, 512), (19, 1024, 2048)]:
        for dt in (np.float32, np.float16):
            x = rng.standard_normal((c, h, w)).astype(dt)
            tx = torch.from_numpy(x) if torch is not None else None
            b.case("argmax", f"{c}x{h}x{w} {np.dtype(dt).name}", lambda: ops.argmax(x), {
                "np.argmax(axis=0)": lambda: np.argmax(x, axis=0),
                "torch.argmax(dim=0)": (lambda: torch.argmax(tx, dim=0)) if tx is not None else None,
            }, nbytes=x.nbytes + h * w)

    # ---- upsample_argmax
    for c, h, w, oh, ow in [(19, 128, 256, 1024, 2048), (21, 64, 64, 512, 512)]:
        x = rng.standard_normal((c, h, w)).astype(np.float32)
        tx = torch.from_numpy(x)[None] if torch is not None else None

        def cv2_peer(x=x, oh=oh, ow=ow):
            up = np.stack([cv2.resize(p, (ow, oh), interpolation=cv2.INTER_LINEAR) for p in x])
            return np.argmax(up, axis=0)

        def torch_peer(tx=tx, oh=oh, ow=ow):
            return F.interpolate(tx, size=(oh, ow), mode="bilinear",
                                 align_corners=False)[0].argmax(0)

        b.case("upsample_argmax", f"{c}x{h}x{w} -> {oh}x{ow} f32",
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
               }, nbytes=src_bytes + out.nbytes)
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

    # ---- report
    print()
    print(f"| kernel | case | implementation | median ms | time / edgeseg ({args.threads} thr) "
          "| % of read BW |")
    print("|---|---|---|---:|---:|---:|")
    for r in b.rows:
        frac = f"{100 * r['bw_fraction']:.0f} %" if "bw_fraction" in r else ""
        print(f"| {r['kernel']} | {r['case']} | {r['impl']} | {r['median_ms']:.2f} | "
              f"{r['vs_edgeseg']:.2f} | {frac} |")
    result = {
        "date": _dt.date.today().isoformat(),
        "machine": {"cpu": cpu_model(), "arch": platform.machine(), "cores": os.cpu_count()},
        "edgeseg_threads": args.threads,
        "simd": _C.simd_name(),
        "quick": args.quick,
        "read_bandwidth_gbs": round(bw, 2),
        "versions": {"numpy": np.__version__, "opencv": cv2.__version__,
                     "torch": torch.__version__ if torch is not None else None},
        "rows": b.rows,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=args.json.parent, prefix=args.json.name, suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(result, f, indent=2)
    os.replace(tmp, args.json)
    print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
