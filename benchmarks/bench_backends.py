"""CPU deployment targets side by side: the shipped semantic model on ONNX Runtime FP32, ONNX
Runtime INT8 (static QDQ), OpenVINO FP32 / FP16, LiteRT FP32 / INT8 (XNNPACK) and ncnn FP32 /
INT8, latency and mIoU in one run. LiteRT and ncnn are built for ARM CPUs: their x86 figures here say
how they run on this machine, not on an ARM board.

    python benchmarks/bench_backends.py [--quick] [--threads N] [--runs N] [--val-images N]
                                        [--model edgeseg/assets/semantic_default.onnx] [--json PATH]

The INT8 model and the OpenVINO IRs are exported from the shipped FP32 ONNX with the normal
exporters (so each passed, or failed, the accuracy gate; the verdict is recorded). Latency is the
``infer`` stage alone (``backend.infer`` on one letterboxed (1, 3, h, w) frame), measured
round-robin (one call of each variant in turn; with --threads > 1, blocks of 20 calls after 5
untimed ones, as idle runtimes' spinning thread pools would otherwise steal the cores) so that load
from other processes hits every variant alike; medians and p90 in milliseconds, ratios against ONNX Runtime FP32. Every variant
gets the same intra-op thread count. mIoU is measured on synthetic validation scenes through each
variant's full predictor (letterbox, backend, fused upsample+argmax), with the label agreement
against FP32. Target: INT8 >= 1.5x faster than FP32 with an mIoU drop <= 1 point.

Writes JSON (atomically) with the machine, versions, settings and every figure.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

import edgeseg
from edgeseg import defaults
from edgeseg.bench import cpu_model
from edgeseg._io import write_json
from edgeseg.data import open_dataset
from edgeseg.runtime.backends import open_backend
from edgeseg.runtime import SemanticPredictor, default_model_path, preprocess
from edgeseg.eval.confusion import ConfusionMatrix


#: (label, how to build it). "ort-int8" is the default export (convolutions + fused activations
#: quantised); "ort-int8-all" quantises every op ONNX Runtime can: the data point behind that default.
VARIANTS = ("ort-fp32", "ort-int8", "ort-int8-all", "openvino-fp32", "openvino-fp16", "litert-fp32", "litert-int8",
            "ncnn-fp32", "ncnn-int8")
#: Variant label prefix -> backend that runs it.
BACKEND_OF = {"ort": "onnxruntime", "openvino": "openvino", "litert": "litert", "ncnn": "ncnn"}


def build_variants(model: Path, work: Path, calib_images: int, gate_images: int,
                   only: tuple[str, ...] = VARIANTS) -> dict[str, dict[str, Any]]:
    """Export the variants ``only`` (ort-fp32 always) from ``model``; returns label -> {path,
    backend, export facts}."""
    from edgeseg.errors import ExportError
    from edgeseg.export.litert import export_litert
    from edgeseg.export.ncnn import export_ncnn
    from edgeseg.export.openvino import export_openvino
    from edgeseg.export.quantize import export_onnx_int8

    out: dict[str, dict[str, Any]] = {"ort-fp32": {"path": model, "backend": "onnxruntime", "gate": None}}
    jobs: dict[str, Callable[[], Any]] = {
        "ort-int8": lambda: export_onnx_int8(model, work / "int8.onnx", calib_images=calib_images,
                                             val_images=gate_images, parity_images=0, verbose=False),
        "ort-int8-all": lambda: export_onnx_int8(model, work / "int8all.onnx", calib_images=calib_images,
                                                 op_types="all", val_images=gate_images, parity_images=0,
                                                 verbose=False),
        "openvino-fp32": lambda: export_openvino(model, work / "ov32", val_images=gate_images, parity_images=0,
                                                 verbose=False),
        "openvino-fp16": lambda: export_openvino(model, work / "ov16", fp16=True, val_images=gate_images,
                                                 parity_images=0, verbose=False),
        "litert-fp32": lambda: export_litert(model, work / "m.tflite", val_images=gate_images, parity_images=0,
                                             verbose=False),
        "litert-int8": lambda: export_litert(model, work / "m.int8.tflite", precision="int8",
                                             calib_images=calib_images, val_images=gate_images, parity_images=0,
                                             verbose=False),
        "ncnn-fp32": lambda: export_ncnn(model, work / "ncnn", val_images=gate_images, parity_images=0,
                                         verbose=False),
        "ncnn-int8": lambda: export_ncnn(model, work / "ncnn8", int8=True, calib_images=calib_images,
                                         val_images=gate_images, parity_images=0, verbose=False),
    }
    for label, job in jobs.items():
        if label not in only:
            continue
        t0 = time.perf_counter()
        try:
            rep = job()
            path, gate = rep.path, rep.gate.accuracy.to_dict()
        except ExportError as e:  # rejected by the gate: reported, not timed
            print(f"{label}: {e}", file=sys.stderr)
            path, gate = None, {"passed": False, "error": str(e)}
        out[label] = {"path": path, "backend": BACKEND_OF[label.split("-", 1)[0]],
                      "gate": gate, "export_s": round(time.perf_counter() - t0, 2)}
    return out


def time_infer(backends: dict[str, Any], x: np.ndarray, input_name: str, runs: int, warmup: int,
               block: int = 1) -> dict[str, dict[str, float]]:
    """Round-robin timing of ``backend.infer`` per variant: median / p90 / mean ms.

    ``block`` calls of one variant at a time. With one thread, block 1 (one call of each in turn)
    spreads load from other processes evenly. With more threads, idle runtimes' thread pools
    keep spinning for a while after each call and steal the cores from the next variant: then
    blocks of calls are timed, each after ``warmup`` untimed calls, so the other pools have gone
    to sleep.
    """
    feed = {input_name: x}
    for be in backends.values():
        for _ in range(warmup):
            be.infer(feed)
    samples: dict[str, list[float]] = {k: [] for k in backends}
    while any(len(v) < runs for v in samples.values()):
        for k, be in backends.items():
            if block > 1:
                for _ in range(warmup):
                    be.infer(feed)
            for _ in range(min(block, runs - len(samples[k]))):
                t = time.perf_counter()
                be.infer(feed)
                samples[k].append((time.perf_counter() - t) * 1e3)
    return {k: {"median_ms": float(np.median(v)), "p90_ms": float(np.percentile(v, 90)),
                "mean_ms": float(np.mean(v)), "runs": len(v)} for k, v in samples.items()}


def score(predictors: dict[str, SemanticPredictor], n: int) -> dict[str, dict[str, float]]:
    """mIoU of each variant on ``n`` synthetic validation scenes, and label agreement with FP32."""
    data = open_dataset("synthetic", "val")
    n = min(n, len(data))
    cms = {k: ConfusionMatrix(len(data.classes), defaults.IGNORE_INDEX) for k in predictors}
    agree = {k: 0 for k in predictors}
    total = 0
    for i in range(n):
        image, label = data[i]
        labels = {k: p(image).labels for k, p in predictors.items()}
        ref = labels["ort-fp32"]
        total += ref.size
        for k, lab in labels.items():
            cms[k].update(lab, label)
            agree[k] += int((lab == ref).sum())
    return {k: {"miou": cms[k].miou(), "agreement_vs_fp32": agree[k] / total, "images": n} for k in predictors}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--model", type=Path, default=default_model_path("semantic"), help="FP32 edgeseg ONNX")
    p.add_argument("--quick", action="store_true", help="few runs and images (noisy; for a busy machine)")
    p.add_argument("--threads", type=int, default=1, help="intra-op threads of every variant (default 1)")
    p.add_argument("--runs", type=int, default=None, help="timed calls per variant (default 200, quick 30)")
    p.add_argument("--val-images", type=int, default=None, help="mIoU images (default 200, quick 24)")
    p.add_argument("--calib-images", type=int, default=32, help="INT8 calibration images")
    p.add_argument("--variants", default=",".join(VARIANTS),
                   help="comma-separated variants to build (ort-fp32, the baseline, always runs); default all")
    p.add_argument("--json", type=Path, default=Path(__file__).with_name("bench_backends.json"))
    args = p.parse_args()
    only = tuple(v.strip() for v in args.variants.split(",") if v.strip())
    unknown = sorted(set(only) - set(VARIANTS))
    if unknown:
        p.error(f"unknown variant(s) {unknown}; choose from {', '.join(VARIANTS)}")
    runs = args.runs or (30 if args.quick else 200)
    n_val = args.val_images or (24 if args.quick else 200)

    with tempfile.TemporaryDirectory(prefix="edgeseg-bench-") as tmp:
        variants = build_variants(args.model, Path(tmp), args.calib_images, min(n_val, 32), only)
        backends, predictors = {}, {}
        for label, v in variants.items():
            if v["path"] is None:
                continue
            be = open_backend(v["path"], v["backend"], threads=args.threads)
            backends[label] = be
            predictors[label] = SemanticPredictor(be, be.meta)
        meta = backends["ort-fp32"].meta
        frame = open_dataset("synthetic", "val")[0][0]
        x, _ = preprocess(frame, meta)
        block = 1 if args.threads == 1 else 20
        latency = time_infer(backends, x, meta.input_name, runs, warmup=5, block=block)
        accuracy = score(predictors, n_val)

    base_ms, base_miou = latency["ort-fp32"]["median_ms"], accuracy["ort-fp32"]["miou"]
    rows = [{"variant": k, "gate": v["gate"], "rejected": True} for k, v in variants.items() if v["path"] is None]
    for label in backends:
        rows.append({"variant": label, "provider": backends[label].provider, **latency[label],
                     "speedup_vs_ort_fp32": base_ms / latency[label]["median_ms"], **accuracy[label],
                     "miou_drop_points": 100 * (base_miou - accuracy[label]["miou"]),
                     "gate": variants[label]["gate"], "export_s": variants[label].get("export_s")})
    report = {
        "date": _dt.datetime.now().isoformat(timespec="seconds"),
        "machine": {"cpu": cpu_model(), "platform": platform.platform(), "python": platform.python_version()},
        "versions": {"edgeseg": edgeseg.__version__, "onnxruntime": _version("onnxruntime"),
                     "openvino": _version("openvino"), "ai_edge_litert": _version("ai_edge_litert"),
                     "litert_torch": _version("litert_torch"), "ncnn": _version("ncnn"), "pnnx": _version("pnnx")},
        "model": str(args.model), "input_size": list(meta.input_size), "threads": args.threads,
        "runs": runs, "quick": args.quick, "rows": rows,
    }
    write_json(args.json, report)
    print(f"{args.model.name} ({meta.arch}, input {meta.input_size[0]}x{meta.input_size[1]}), "
          f"{args.threads} thread(s), {runs} runs round-robin"
          f"{'' if args.threads == 1 else ' in blocks of 20 (after 5 untimed calls each)'}, "
          f"mIoU on {n_val} synthetic val scenes")
    print("| variant | provider | infer median ms | p90 ms | speed vs ORT FP32 | mIoU | drop (points) | "
          "agreement vs FP32 | gate |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        if r.get("rejected"):
            print(f"| {r['variant']} | rejected by the accuracy gate (see JSON) | | | | | | | FAIL |")
            continue
        gate = "-" if r["gate"] is None else ("pass" if r["gate"].get("passed") else "FAIL")
        print(f"| {r['variant']} | {r['provider']} | {r['median_ms']:.2f} | {r['p90_ms']:.2f} | "
              f"{r['speedup_vs_ort_fp32']:.2f}x | {r['miou']:.4f} | {r['miou_drop_points']:+.2f} | "
              f"{100 * r['agreement_vs_fp32']:.2f}% | {gate} |")
    print(f"wrote {args.json}")
    return 0


def _version(name: str) -> str | None:
    try:
        return __import__(name).__version__
    except ImportError:
        return None


if __name__ == "__main__":
    sys.exit(main())
