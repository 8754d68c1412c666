"""The ``edgeseg`` command line: train, export, run, predict, eval, demo, bench, info.

Every subcommand imports what it needs lazily, so ``edgeseg predict model.onnx ...`` never
imports torch. Errors a user can cause print one clear line (no traceback) and exit with 2.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

from . import __version__, defaults
from .errors import EdgesegError

EPILOG = """\
examples:
  edgeseg demo                                       # shipped model on a synthetic video
  edgeseg train --data synthetic --model liteseg_s --epochs 10 --out runs/s
  edgeseg export runs/s/best --format onnx --out model.onnx
  edgeseg run --camera 0 --show                      # live camera, newest frame always
  edgeseg run --model model.onnx --source video.mp4 --save out.mp4 --stats stats.json
  edgeseg predict model.onnx images/ --out preds/
  edgeseg eval model.onnx --data voc:VOCdevkit/VOC2012 --split val
  edgeseg bench model.onnx runs/s/best --backend all   # latency percentiles per backend
"""


def _size(text: str) -> tuple[int, int]:
    """Parse '256' or '256x512' (height x width)."""
    try:
        parts = [int(p) for p in text.lower().replace(",", "x").split("x")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be N or HxW (e.g. 256 or 256x512), got {text!r}") from None
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2 or min(parts) <= 0:
        raise argparse.ArgumentTypeError(f"size must be N or HxW with positive numbers, got {text!r}")
    return parts[0], parts[1]


def _triple(text: str) -> tuple[float, float, float]:
    try:
        vals = tuple(float(p) for p in text.split(","))
    except ValueError:
        vals = ()
    if len(vals) != 3:
        raise argparse.ArgumentTypeError(f"expected three comma-separated numbers R,G,B, got {text!r}")
    return vals  # type: ignore[return-value]


def _add_model_facts(p: argparse.ArgumentParser) -> None:
    """Options that describe an ONNX model exported without edgeseg's metadata."""
    g = p.add_argument_group("model facts (only for models exported without edgeseg metadata)")
    g.add_argument("--backend", default="auto", help="inference backend: auto, onnxruntime, torch (default: auto)")
    g.add_argument("--num-classes", type=int, help="number of classes the model predicts")
    g.add_argument("--classes", help="comma-separated class names (implies --num-classes)")
    g.add_argument("--imgsz", type=_size, help="network input size N or HxW")
    g.add_argument("--mean", type=_triple, help="RGB mean on the 0..255 scale, e.g. 123.675,116.28,103.53")
    g.add_argument("--std", type=_triple, help="RGB std on the 0..255 scale, e.g. 58.395,57.12,57.375")
    g.add_argument("--output-stride", type=int, help="input size / logits size of the model")


def _add_task(p: argparse.ArgumentParser, what: str = "which shipped model runs when no model is given") -> None:
    p.add_argument("--task", default="semantic", choices=["semantic", "instance"], help=what)


def _add_instance_options(p: argparse.ArgumentParser, conf: float = defaults.SCORE_THRESHOLD) -> None:
    g = p.add_argument_group("instance models")
    g.add_argument("--conf", type=float, default=None,
                   help=f"minimum detection score (default: the model's, else {conf})")
    g.add_argument("--iou", type=float, default=None,
                   help=f"NMS IoU threshold (default: the model's, else {defaults.IOU_THRESHOLD})")
    g.add_argument("--max-det", type=int, default=None,
                   help=f"detections kept per frame (default {defaults.MAX_DETECTIONS})")


def _load_predictor(args: argparse.Namespace, **overrides: Any):
    from .runtime import load

    classes = args.classes.split(",") if getattr(args, "classes", None) else None
    options = dict(score_threshold=getattr(args, "conf", None), iou_threshold=getattr(args, "iou", None),
                   max_detections=getattr(args, "max_det", None))
    options.update(overrides)
    options = {k: v for k, v in options.items() if v is not None}  # load() rejects them for semantic models
    task = getattr(args, "task", "semantic")
    return load(args.model, backend=args.backend, num_classes=args.num_classes, classes=classes,
                input_size=args.imgsz, mean=args.mean, std=args.std, output_stride=args.output_stride,
                task=task if args.model is None else "semantic", **options)


# ----------------------------------------------------------------------------------------- train
#: The model ``edgeseg train`` builds when --model is not given.
DEFAULT_TRAIN_MODEL = {"semantic": "liteseg_t", "instance": "yoloseg_n"}

def cmd_train(args: argparse.Namespace) -> int:
    try:
        if args.task == "instance":
            from .train.instance_trainer import InstanceTrainConfig as Config
            from .train.instance_trainer import train_instance as train
        else:
            from .train.trainer import TrainConfig as Config
            from .train.trainer import train
    except ImportError as e:
        raise EdgesegError(f"training needs PyTorch ({e}); install with: pip install 'edgeseg[train]'") from None
    given = dict(
        model=args.model or DEFAULT_TRAIN_MODEL[args.task], data=args.data, epochs=args.epochs,
        batch_size=args.batch_size, lr=args.lr, optimizer=args.optimizer, input_size=args.imgsz, out_dir=args.out,
        seed=args.seed, device=args.device, resume=args.resume, init_from=args.init, workers=args.workers,
        max_iters_per_epoch=args.iters_per_epoch, max_val_samples=args.val_limit,
    )
    if args.task == "semantic":
        given["loss"] = args.loss or "ce+lovasz"
    elif args.loss:
        raise EdgesegError("--loss applies to semantic training; instance models train with their fixed "
                           "classification + box IoU/L1 + in-box mask BCE/Dice losses")
    cfg = Config(**{k: v for k, v in given.items() if v is not None})
    best = train(cfg)
    print(f"best checkpoint: {best}")
    print(f"training curve:  {Path(args.out) / 'curve.png'}")
    return 0


# ---------------------------------------------------------------------------------------- export
def cmd_export(args: argparse.Namespace) -> int:
    fmt, source = args.format, Path(args.source)
    if args.fp16 and args.int8:
        raise EdgesegError("give --fp16 or --int8, not both")
    if fmt == "onnx" and args.fp16:
        raise EdgesegError("--fp16 applies to --format openvino and --format engine; for a smaller, faster "
                           "CPU model use --format onnx --int8")
    if fmt == "openvino" and args.int8:
        raise EdgesegError("OpenVINO INT8 is not built by edgeseg; use --format onnx --int8 (ONNX Runtime INT8 for "
                           "CPUs) or --format openvino [--fp16]")
    engine_only = [f for f, v in (("--workspace", args.workspace), ("--max-batch", args.max_batch),
                                  ("--int8-mode", args.int8_mode), ("--timing-cache", args.timing_cache)) if v is not None]
    if engine_only and fmt != "engine":
        raise EdgesegError(f"{', '.join(engine_only)}: only for --format engine")
    int8_only = [f for f, v in (("--calib", args.calib), ("--calib-images", args.calib_images),
                                ("--calib-method", args.calib_method), ("--keep-float", args.keep_float),
                                ("--int8-ops", args.int8_ops)) if v is not None]
    if int8_only and not args.int8:
        raise EdgesegError(f"{', '.join(int8_only)}: only for INT8 exports; add --int8")
    try:
        from .export.accuracy import DEFAULT_MAX_DROP
    except ImportError as e:
        raise EdgesegError(f"export needs PyTorch and onnx ({e}); install with: pip install 'edgeseg[train]'") from None
    stem = source.with_suffix("") if source.suffix.lower() == ".onnx" else source
    common = dict(input_size=args.imgsz, dynamic=True if args.dynamic else None, opset=args.opset,
                  val=args.val, val_images=args.val_images, min_agreement=args.min_agreement,
                  max_drop=DEFAULT_MAX_DROP if args.accept_drop is None else args.accept_drop, verbose=True)
    calib = dict(calib=args.calib or "synthetic")
    if args.calib_images is not None:
        calib["calib_images"] = args.calib_images
    if args.keep_float is not None:
        calib["keep_float"] = args.keep_float
    if fmt == "onnx" and not args.int8:
        if source.suffix.lower() == ".onnx":
            raise EdgesegError(f"{source} is already ONNX; add --int8 to quantise it, or --format openvino|engine")
        from .export.onnx import export_onnx

        export_onnx(source, args.out or str(source.with_suffix(".onnx")), dynamic=args.dynamic,
                    opset=args.opset or defaults.ONNX_OPSET, input_size=args.imgsz,
                    min_agreement=args.min_agreement, verbose=True)
    elif fmt == "onnx":
        from .export.quantize import default_int8_path, export_onnx_int8

        ops_arg = {"op_types": args.int8_ops} if args.int8_ops is not None else {}
        export_onnx_int8(source, args.out or default_int8_path(source), method=args.calib_method or "minmax",
                         **calib, **ops_arg, **common)
    elif fmt == "openvino":
        from .export.openvino import export_openvino

        out = args.out or f"{stem}_openvino{'_fp16' if args.fp16 else ''}"
        export_openvino(source, out, fp16=args.fp16, **common)
    else:
        from .export.tensorrt import DEFAULT_MAX_BATCH, DEFAULT_WORKSPACE_MB, export_engine

        precision = "fp16" if args.fp16 else "int8" if args.int8 else "fp32"
        out = args.out or f"{stem}{'' if precision == 'fp32' else '.' + precision}.engine"
        export_engine(source, out, precision=precision, int8_mode=args.int8_mode,
                      max_batch=args.max_batch or DEFAULT_MAX_BATCH, workspace_mb=args.workspace or DEFAULT_WORKSPACE_MB,
                      timing_cache=args.timing_cache, device=args.device, **calib, **common)
    return 0


# ------------------------------------------------------------------------------------------- run
def cmd_run(args: argparse.Namespace) -> int:
    import signal
    import threading

    from ._io import write_json
    from .pipeline import (ImageDirSink, JsonlSink, LiveSource, Pipeline, VideoSink, WindowSink,
                           apply_cpp_threads, default_thread_policy, open_source)

    if (args.camera is None) == (args.source is None):
        raise EdgesegError("give exactly one input: --camera N (or /dev/videoN) or --source PATH|URL|DIR|GLOB|synthetic")
    if args.frames is not None and args.frames < 1:
        raise EdgesegError(f"--frames must be >= 1, got {args.frames}")
    policy = default_thread_policy(ort_threads=args.threads)
    apply_cpp_threads(policy)
    predictor = _load_predictor(args, threads=policy.ort_threads)

    live = dict(read_timeout=args.read_timeout, reconnect_timeout=args.reconnect_timeout)
    if args.camera is not None:
        spec: object = int(args.camera) if args.camera.isdigit() else args.camera
        options = dict(live, width=args.width, height=args.height, fps=args.fps)
    else:
        spec = args.source
        text = str(spec)
        if text == "synthetic" or text.startswith("synthetic:"):
            options = dict(live, size=(args.height or 360, args.width or 640))
            if args.fps and ":" not in text:
                options["fps"] = args.fps
        elif text.lower().startswith(("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://",
                                      "tcp://", "srt://")) or text.startswith("/dev/video"):
            options = live
        else:
            options = {}

    pipe: Pipeline | None = None
    source = None
    sinks: list = []
    try:
        if args.show:
            sinks.append(WindowSink("edgeseg run", on_quit=lambda: pipe and pipe.stop("window closed")))
        source = open_source(spec, **options)
        if isinstance(source, LiveSource):
            source.start()  # fail fast (missing camera, bad URL) and learn the real FPS
        if args.save:
            sinks.append(VideoSink(args.save, fps=source.fps or 30.0))
        if args.save_dir:
            sinks.append(ImageDirSink(args.save_dir))
        if args.json:
            sinks.append(JsonlSink(args.json))
    except BaseException:
        for sink in sinks:
            sink.abort()
        if source is not None:
            source.close()
        raise
    pipe = Pipeline(predictor, source, sinks, max_frames=args.frames, realtime=args.realtime,
                    smooth=args.smooth, hud=not args.no_hud, alpha=args.alpha)

    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, lambda *_: pipe.stop("terminated"))
    if not args.quiet:
        print(f"edgeseg run: {source.describe()} -> {predictor!r}; threads {policy.to_dict()}; "
              "Ctrl-C to stop", file=sys.stderr, flush=True)
    try:
        summary = pipe.run()
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    summary["model"] = str(predictor.path)
    summary["backend"] = predictor.backend_name
    summary["threads"] = policy.to_dict()
    print(pipe.stats.table())
    print(f"stopped: {summary['stopped']}")
    for path in pipe.closed:
        print(f"wrote {path}")
    if args.stats:
        write_json(args.stats, summary)
        print(f"stats: {args.stats}")
    return 0


# --------------------------------------------------------------------------------------- predict
def cmd_predict(args: argparse.Namespace) -> int:
    from ._io import write_image
    from ._progress import track
    from .pipeline.sources import open_source

    from ._io import write_json

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
    return 0


# ------------------------------------------------------------------------------------------ eval
def cmd_eval(args: argparse.Namespace) -> int:
    from ._io import write_json
    from ._progress import track
    from .data import open_dataset
    from .train.metrics import ConfusionMatrix

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
    if args.json:
        write_json(args.json, report)
        print(f"report: {args.json}")
    return 0


def _eval_instance(args: argparse.Namespace, predictor: Any) -> int:
    """Mask and box AP of an instance model through pycocotools' COCOeval."""
    from ._io import write_json
    from .data import open_instance_dataset
    from .train.coco_eval import evaluate_predictor

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
    if args.json:
        write_json(args.json, report)
        print(f"report: {args.json}")
    return 0


# ------------------------------------------------------------------------------------------ demo
def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    res = run_demo(args.out, frames=args.frames, size=args.size, model=args.model, backend=args.backend,
                   progress=not args.quiet, task=args.task)
    print(res["table"])
    print(f"input video:   {res['input']}")
    print(f"overlay video: {res['overlay']}")
    print(f"latency JSON:  {res['latency']}")
    return 0


# ------------------------------------------------------------------------------------------ info
def cmd_info(args: argparse.Namespace) -> int:
    from . import ops
    from .runtime.backends import available_backends

    info = {"edgeseg": __version__, "cpp_threads": ops.get_num_threads(), "backends": available_backends()}
    if args.model is not None or not args.no_model:
        from .runtime import load

        p = load(args.model)
        info["model"] = {"path": str(getattr(p, "path", "")), "backend": getattr(p, "backend_name", ""),
                         "meta": p.meta.to_dict()}
    print(json.dumps(info, indent=2))
    return 0


# ----------------------------------------------------------------------------------------- bench
def cmd_bench(args: argparse.Namespace) -> int:
    from .bench import format_summary, run_bench

    models = [None if m == "default" else m for m in args.models] or [None]
    report = run_bench(models, task=args.task, backend=args.backend, frame_size=args.imgsz, runs=args.runs,
                       warmup=args.warmup, threads=args.threads, pipeline_frames=args.pipeline_frames,
                       out_dir=args.out, progress=not args.quiet)
    print(format_summary(report))
    for path in report["files"].values():
        print(f"wrote {path}")
    return 0


def _add_bench_parser(sub: Any, fmt: Any) -> None:
    p = sub.add_parser("bench", help="latency percentiles and throughput per backend, on synthetic frames",
                       formatter_class=fmt,
                       description="Time pre / infer / post and end to end (mean, p50, p90, p99, FPS) one frame at "
                                   "a time, then the pipelined throughput (stages overlapped in threads), for each "
                                   "model on each backend, side by side. Prints the machine (CPU, cores, threads, "
                                   "versions); writes OUT/bench.json, OUT/bench.md and OUT/bench.png.")
    p.add_argument("models", nargs="*", metavar="MODEL",
                   help="models (.onnx, checkpoint dir ...); default: the shipped model of --task")
    _add_task(p)
    p.add_argument("--backend", default="auto",
                   help="auto (per model), all (every installed backend that reads the model's format), "
                        "or backend name(s), comma-separated: onnxruntime, torch, ...")
    p.add_argument("--imgsz", type=_size, default=None,
                   help="synthetic frame size HxW, height first (default 720x1280: 720p landscape)")
    p.add_argument("--runs", type=int, default=100, help="timed frames per model and backend")
    p.add_argument("--warmup", type=int, default=10, help="untimed frames first")
    p.add_argument("--pipeline-frames", type=int, default=None,
                   help="frames through the threaded pipeline (default: --runs; 0 = skip)")
    p.add_argument("--threads", type=int, default=None,
                   help="inference threads (ONNX Runtime intra-op / torch); default: cores - 1, as edgeseg run")
    p.add_argument("--out", default="edgeseg_bench", help="output directory")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    p.set_defaults(func=cmd_bench)


# ---------------------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edgeseg", description="Real-time image segmentation for the edge: train, export, run.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"edgeseg {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    fmt = argparse.ArgumentDefaultsHelpFormatter

    p = sub.add_parser("train", help="train a segmentation model from scratch", formatter_class=fmt,
                       description="Train a model; writes best/ and last/ checkpoints, history.json and curve.png to --out.")
    p.add_argument("--task", default="semantic", choices=["semantic", "instance"],
                   help="semantic: a class per pixel; instance: a mask per object")
    p.add_argument("--model", default=None,
                   help="semantic: fcn, liteseg_t (default), liteseg_s, liteseg_m; "
                        "instance: yoloseg_n (default), yoloseg_s, maskrcnn")
    p.add_argument("--data", default="synthetic",
                   help="synthetic | synthetic:N | voc:PATH | cityscapes:PATH (semantic) | coco:PATH (instance)")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=None, help="peak learning rate (default: 4e-3 for adamw)")
    p.add_argument("--optimizer", default="adamw", choices=["adamw", "sgd"])
    p.add_argument("--loss", default=None, help="semantic only: ce | ce+jaccard | ce+lovasz (default) | lovasz ...")
    p.add_argument("--imgsz", type=_size, default=None,
                   help="network input N or HxW (default 256; semantic: the training crop)")
    p.add_argument("--iters-per-epoch", type=int, default=None, help="cap iterations per epoch")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--workers", type=int, default=None, help="data loader processes (default: min(4, cores-1))")
    p.add_argument("--val-limit", type=int, default=None, help="validate on at most N images")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", action="store_true", help="continue from --out/last")
    p.add_argument("--init", default=None, metavar="CKPT",
                   help="fine-tune: start from this checkpoint's weights (same model and classes)")
    p.add_argument("--out", default="runs/train", help="output directory")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "export", help="export a checkpoint to ONNX, ONNX INT8, OpenVINO or a TensorRT engine",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Export a checkpoint (or an edgeseg .onnx) to a deployable model and gate it: FP32 ONNX must "
                    "match PyTorch label for label; every other format/precision must keep mIoU (semantic) or mask "
                    "AP (instance) within --accept-drop of the reference on validation images, else the model is "
                    "kept as *.rejected.* beside its report and the command fails.",
        epilog="examples:\n"
               "  edgeseg export runs/s/best --format onnx --out model.onnx\n"
               "  edgeseg export runs/s/best --format onnx --int8 --calib frames/ --keep-float head,first\n"
               "  edgeseg export model.onnx --format openvino --out model_ov --fp16\n"
               "  edgeseg export runs/s/best --format engine --fp16 --dynamic --workspace 2048")
    p.add_argument("source", metavar="CKPT|MODEL.onnx",
                   help="checkpoint directory (model.safetensors + config.json), or an .onnx from `edgeseg export`")
    p.add_argument("--format", default="onnx", choices=["onnx", "openvino", "engine"],
                   help="onnx (default): ONNX Runtime; openvino: OpenVINO IR directory; engine: TensorRT "
                        "(needs tensorrt + an NVIDIA GPU)")
    p.add_argument("--out", help="output path (default: beside the source: .onnx, .int8.onnx, _openvino/, .engine)")
    p.add_argument("--fp16", action="store_true", help="openvino: FP16 weights; engine: FP16 kernels")
    p.add_argument("--int8", action="store_true", help="onnx: static QDQ INT8 (ONNX Runtime); engine: INT8")
    g = p.add_argument_group("INT8 calibration")
    g.add_argument("--calib", default=None, metavar="DIR|synthetic",
                   help="calibration images: a folder of representative frames, or synthetic scenes (default)")
    g.add_argument("--calib-images", type=int, default=None, help="calibration images to use (default 32)")
    g.add_argument("--calib-method", default=None, choices=["minmax", "entropy", "percentile"],
                   help="onnx --int8: activation range calibration (default minmax)")
    g.add_argument("--keep-float", default=None, metavar="LIST",
                   help="layers left in float: first, head, none and/or node names, comma-separated (default: first)")
    g.add_argument("--int8-ops", default=None, metavar="LIST",
                   help="onnx --int8: ONNX op types to quantise, comma-separated, or all "
                        "(default: Conv,Relu,Clip,MaxPool, the fastest with ONNX Runtime)")
    g = p.add_argument_group("accuracy gate")
    g.add_argument("--val", default=None, metavar="DATA",
                   help="labelled validation data: synthetic (default), voc:PATH, cityscapes:PATH, coco:PATH")
    g.add_argument("--val-images", type=int, default=None, help="validation images scored (default 32)")
    g.add_argument("--accept-drop", type=float, default=None, metavar="X",
                   help="largest accepted mIoU / mask AP drop vs the reference, as a fraction (default 0.01 = one point)")
    g.add_argument("--min-agreement", type=float, default=defaults.PARITY_MIN_AGREEMENT,
                   help="FP32 exports: minimum label agreement with PyTorch; below it the export fails "
                        f"(default {defaults.PARITY_MIN_AGREEMENT})")
    g = p.add_argument_group("graph")
    g.add_argument("--dynamic", action="store_true", help="dynamic batch and input size")
    g.add_argument("--opset", type=int, default=None, help=f"ONNX opset (default {defaults.ONNX_OPSET})")
    g.add_argument("--imgsz", type=_size, default=None, help="input size (default: the training size)")
    g = p.add_argument_group("TensorRT (--format engine)")
    g.add_argument("--workspace", type=int, default=None, metavar="MB", help="builder workspace limit (default 1024)")
    g.add_argument("--max-batch", type=int, default=None, help="largest batch of a --dynamic engine (default 4)")
    g.add_argument("--int8-mode", default=None, choices=["calibrate", "qdq"],
                   help="calibrate: TensorRT 10 entropy calibration; qdq: explicit Q/DQ (default on TensorRT 11)")
    g.add_argument("--timing-cache", default=None, metavar="PATH",
                   help="persistent timing cache (default ~/.cache/edgeseg/tensorrt/timing_<trt>_<gpu>.cache)")
    g.add_argument("--device", default="cuda", help="CUDA device to build on: cuda (default) or cuda:N")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("run", help="segment a live camera, stream or video in real time", formatter_class=fmt,
                       description="Real-time pipeline: capture -> pre -> infer -> post -> render -> sink in "
                                   "threads with bounded queues. Live sources (camera, URL, synthetic) always "
                                   "deliver the newest frame and reconnect when lost; files and folders are "
                                   "processed frame by frame, in order. Prints p50/p90/p99 per stage at the end.")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--camera", help="camera index (0, 1, ...) or V4L2 device path (/dev/video0)")
    src.add_argument("--source", help="video file, image / folder / glob, rtsp:// or http(s):// URL, "
                                      "or synthetic[:FPS] (a generated live scene)")
    p.add_argument("--model", default=None, help="model (.onnx or checkpoint dir); default: the shipped model "
                                                 "of --task")
    _add_task(p)
    p.add_argument("--frames", type=int, default=None, help="stop after N frames")
    p.add_argument("--save", help="write the overlay video here (.mp4 or .avi)")
    p.add_argument("--save-dir", help="write each overlay frame as a JPEG into this folder")
    p.add_argument("--json", help="write one JSON line per frame (index, capture time, age, stage ms, "
                                  "class histogram or detections) to this .jsonl file")
    p.add_argument("--stats", help="write the latency summary (p50/p90/p99 per stage, FPS, drops) as JSON")
    p.add_argument("--show", action="store_true", help="show the overlay in a window (needs a display and "
                                                       "opencv-python, not -headless); q or Esc stops")
    p.add_argument("--no-hud", action="store_true", help="do not draw FPS / latency on the frames")
    p.add_argument("--alpha", type=float, default=defaults.OVERLAY_ALPHA, help="overlay colour weight")
    p.add_argument("--realtime", action="store_true", help="pace video files at their FPS (like a camera)")
    p.add_argument("--smooth", type=int, nargs="?", const=3, default=0, metavar="K",
                   help="temporal smoothing: per-pixel majority class over the last K frames (K=3 "
                        "without a value); 0 = off")
    p.add_argument("--width", type=int, help="camera: requested width; synthetic: frame width (640)")
    p.add_argument("--height", type=int, help="camera: requested height; synthetic: frame height (360)")
    p.add_argument("--fps", type=float, help="camera: requested FPS; synthetic: frames per second (30)")
    p.add_argument("--threads", type=int, default=None,
                   help="ONNX Runtime intra-op threads (default: cores - 1; the C++ core uses 1-2, "
                        "or $EDGESEG_NUM_THREADS)")
    p.add_argument("--read-timeout", type=float, default=5.0,
                   help="live sources: seconds without a frame before the source counts as lost")
    p.add_argument("--reconnect-timeout", type=float, default=30.0,
                   help="live sources: give up after reconnecting fails for this many seconds")
    p.add_argument("--quiet", action="store_true", help="no start line on stderr")
    _add_instance_options(p)
    _add_model_facts(p)
    p.set_defaults(func=cmd_run)

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
    _add_instance_options(p)
    _add_model_facts(p)
    p.set_defaults(func=cmd_predict)

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
    _add_task(p)
    _add_instance_options(p, conf=defaults.EVAL_SCORE_THRESHOLD)
    _add_model_facts(p)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("demo", help="run the shipped model on a synthetic video (no torch needed)", formatter_class=fmt,
                       description="Generate a synthetic video, segment every frame with the shipped model (or "
                                   "--model), write OUT/overlay.mp4 and OUT/latency.json (p50/p90/p99 per stage).")
    p.add_argument("--out", default="edgeseg_demo", help="output directory")
    p.add_argument("--frames", type=int, default=300, help="length of the generated video")
    p.add_argument("--size", type=_size, default=(480, 480),
                   help="video frame size HxW (the shipped model was trained on square scenes)")
    p.add_argument("--model", default=None, help="model to use instead of the shipped one")
    p.add_argument("--backend", default="auto", help="inference backend: auto, onnxruntime, torch")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    _add_task(p, "which shipped model to show: semantic (class per pixel) or instance (one mask per object)")
    p.set_defaults(func=cmd_demo)

    _add_bench_parser(sub, fmt)

    p = sub.add_parser("info", help="version, backends, threads, and a model's metadata", formatter_class=fmt)
    p.add_argument("model", nargs="?", default=None, help="model to describe (default: the shipped one)")
    p.add_argument("--no-model", action="store_true", help="do not load any model")
    p.set_defaults(func=cmd_info)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``edgeseg`` command."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "model", None) == "default":
        args.model = None
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except EdgesegError as e:
        print(f"edgeseg {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"edgeseg {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
