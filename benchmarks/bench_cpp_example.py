"""Kernel times of the C++ example (examples/cpp, linked to the installed edgeseg::core) against
the same kernels called through edgeseg's Python API on the same inputs.

    python benchmarks/bench_cpp_example.py [--size HxW] [--repeats N] [--threads T] [--prefix DIR]

Builds examples/cpp/segment_image against the installed CMake package (``--prefix``: a
``cmake --install`` prefix or <site-packages>/edgeseg; default: the installed Python package's
copy, else a fresh plain install of the core into a temp prefix), runs it on a synthetic frame, and
times edgeseg.ops.letterbox / upsample_argmax / overlay / nms / paste_masks on the inputs the
example wrote (median of N calls each, same thread count). Prints both and the ratio
Python / C++, i.e. what the Python layer (validation, binding, allocation) adds per call.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from edgeseg import ops  # noqa: E402
from edgeseg.cli._common import size_arg  # noqa: E402
from edgeseg.data.synthetic import generate  # noqa: E402
from test_cpp_package import _cmake, _installed_package_prefix, build_example, write_ppm  # noqa: E402


def _median_ms(fn, n: int) -> float:
    fn()
    t = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        t.append((time.perf_counter() - t0) * 1e3)
    return float(np.median(t))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=size_arg, default=(1080, 1920), help="HxW of the frame")
    ap.add_argument("--repeats", type=int, default=50)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--prefix", type=Path, default=None)
    args = ap.parse_args()
    h, w = args.size
    with tempfile.TemporaryDirectory() as tmp:
        tmp_p = Path(tmp)
        prefix = args.prefix or _installed_package_prefix()
        if prefix is None:
            _cmake("-S", str(ROOT), "-B", str(tmp_p / "core"), "-DCMAKE_BUILD_TYPE=Release")
            _cmake("--build", str(tmp_p / "core"), "--parallel", "2", timeout=900)
            _cmake("--install", str(tmp_p / "core"), "--prefix", str(tmp_p / "prefix"))
            prefix = tmp_p / "prefix"
        exe = build_example(prefix, tmp_p / "example")
        bgr = generate(1, seed=2, size=(h, w)).image
        write_ppm(tmp_p / "in.ppm", bgr)
        out = tmp_p / "out"
        out.mkdir()
        r = subprocess.run([str(exe), str(tmp_p / "in.ppm"), str(out), str(args.repeats), str(args.threads)],
                           capture_output=True, text=True, check=True)
        cpp = json.loads(r.stdout)

        ops.set_num_threads(args.threads)
        tensor, info = ops.letterbox(bgr, 256)
        logits = np.full((4, 32, 32), 0.5, np.float32)
        logits[:3] = tensor[0, :, ::8, ::8]
        labels = ops.upsample_argmax(logits, letterbox=info)
        palette = np.array([[0, 0, 255], [0, 255, 0], [255, 0, 0], [128, 128, 128]], np.uint8)
        boxes = np.fromfile(out / "boxes.f32", np.float32).reshape(-1, 4)
        scores = np.fromfile(out / "scores.f32", np.float32)
        classes = np.fromfile(out / "classes.i64", np.int64)
        roi = np.fromfile(out / "roi_masks.f32", np.float32).reshape(16, 28, 28)
        roi_boxes = np.fromfile(out / "roi_boxes.f32", np.float32).reshape(16, 4)
        n = args.repeats
        py = {
            "letterbox_ms": _median_ms(lambda: ops.letterbox(bgr, 256), n),
            "upsample_argmax_ms": _median_ms(lambda: ops.upsample_argmax(logits, letterbox=info), n),
            "overlay_ms": _median_ms(lambda: ops.overlay(bgr, labels, palette, alpha=0.5), n),
            "nms_ms": _median_ms(lambda: ops.nms(boxes, scores, classes, iou_threshold=0.5, score_threshold=0.05,
                                                 max_candidates=30000, max_detections=300), n),
            "paste_masks_ms": _median_ms(lambda: ops.paste_masks(roi, roi_boxes, (h, w)), n),
        }
    print(f"machine: {platform.machine()} {platform.processor() or ''}, "
          f"{_dt.datetime.now(_dt.timezone.utc):%Y-%m-%d %H:%M} UTC; frame {w}x{h}, {args.threads} threads, "
          f"median of {n}; C++ from {prefix}")
    print(f"{'kernel':<18}{'C++ ms':>10}{'Python ms':>11}{'Py/C++':>8}")
    for k, v in py.items():
        print(f"{k[:-3]:<18}{cpp[k]:>10.3f}{v:>11.3f}{v / cpp[k] if cpp[k] > 0 else float('nan'):>8.2f}")


if __name__ == "__main__":
    main()
