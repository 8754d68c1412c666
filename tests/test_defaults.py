"""Every default has one source, edgeseg/defaults.py: the Python API, the C++ core's own
defaults and the CLI help read it or are checked against it here."""
from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from edgeseg import defaults, ops

NMS_HEADER = Path(__file__).resolve().parents[1] / "csrc" / "core" / "nms.h"


def _signature_defaults(fn) -> dict:
    return {k: p.default for k, p in inspect.signature(fn).parameters.items() if p.default is not p.empty}


def test_ops_detection_defaults_are_the_package_defaults():
    want = {"iou_threshold": defaults.IOU_THRESHOLD, "max_candidates": defaults.MAX_CANDIDATES,
            "max_detections": defaults.MAX_DETECTIONS}
    assert want.items() <= _signature_defaults(ops.nms).items()
    assert {**want, "score_threshold": defaults.SCORE_THRESHOLD}.items() <= _signature_defaults(
        ops.select_detections).items()
    assert _signature_defaults(ops.assemble_masks)["threshold"] == defaults.MASK_THRESHOLD
    assert _signature_defaults(ops.paste_masks)["threshold"] == defaults.MASK_THRESHOLD
    assert _signature_defaults(ops.overlay)["alpha"] == defaults.OVERLAY_ALPHA
    assert _signature_defaults(ops.overlay_instances)["alpha"] == defaults.OVERLAY_ALPHA


def test_cpp_nms_defaults_equal_the_package_defaults():
    if not NMS_HEADER.is_file():
        pytest.skip("C++ sources not present (installed package)")
    text = NMS_HEADER.read_text()
    body = re.search(r"struct NmsParams \{(.*?)\};", text, re.S)
    assert body, "struct NmsParams not found in nms.h"
    fields = dict(re.findall(r"(\w+)\s*=\s*([^;]+);", body.group(1)))
    assert float(fields["iou_threshold"]) == defaults.IOU_THRESHOLD
    assert int(fields["max_candidates"]) == defaults.MAX_CANDIDATES
    assert int(fields["max_detections"]) == defaults.MAX_DETECTIONS
    assert float(fields["score_threshold"]) == _signature_defaults(ops.nms)["score_threshold"]


def test_cli_help_states_the_package_defaults(capsys):
    from edgeseg.cli import main

    with pytest.raises(SystemExit):
        main(["export", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for value in (defaults.CALIB_IMAGES, defaults.GATE_VAL_IMAGES, defaults.GATE_MAX_DROP,
                  defaults.TRT_WORKSPACE_MB, defaults.TRT_MAX_BATCH, defaults.ONNX_OPSET):
        assert f"(default {value}" in text
    with pytest.raises(SystemExit):
        main(["predict", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert f"else {defaults.IOU_THRESHOLD})" in text and f"(default {defaults.MAX_DETECTIONS})" in text


def test_tracker_defaults_are_the_package_defaults():
    from dataclasses import fields

    from edgeseg.tracking import TrackerConfig

    want = {"matching": defaults.TRACK_MATCHING, "high": defaults.TRACK_HIGH_SCORE, "low": defaults.TRACK_LOW_SCORE,
            "new_track": defaults.TRACK_NEW_SCORE, "match_iou": defaults.TRACK_MATCH_IOU,
            "low_match_iou": defaults.TRACK_LOW_MATCH_IOU, "tentative_iou": defaults.TRACK_TENTATIVE_IOU,
            "buffer": defaults.TRACK_BUFFER}
    assert want.items() <= {f.name: f.default for f in fields(TrackerConfig)}.items()


def _defaults_of(module: str, qualname: str) -> dict:
    import importlib

    obj = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    if isinstance(obj, type) and hasattr(obj, "__dataclass_fields__"):
        from dataclasses import MISSING, fields

        return {f.name: f.default for f in fields(obj) if f.default is not MISSING}
    return _signature_defaults(obj)


#: (module, callable, {parameter: name in defaults.py}) of the public knobs that read defaults.py.
READS_DEFAULTS = [
    ("edgeseg.runtime.model_files", "check_onnx", {"budget": "MODEL_BYTES_BUDGET"}),
    ("edgeseg.pipeline.sinks.web", "WebSink", {"max_clients": "WEB_MAX_CLIENTS", "quality": "WEB_JPEG_QUALITY"}),
    ("edgeseg.pipeline.sinks.video", "VideoSink", {"fps": "VIDEO_FPS"}),
    ("edgeseg.pipeline.sources.live", "LiveSource", {"read_timeout": "LIVE_READ_TIMEOUT", "backoff": "LIVE_BACKOFF",
                                                     "reconnect_timeout": "LIVE_RECONNECT_TIMEOUT",
                                                     "backoff_max": "LIVE_BACKOFF_MAX"}),
    ("edgeseg.pipeline.sources.synthetic", "SyntheticSource", {"size": "SYNTHETIC_SOURCE_SIZE", "fps": "VIDEO_FPS"}),
    ("edgeseg.bench", "ReplaySource", {"fps": "VIDEO_FPS"}),
    ("edgeseg.bench", "run_bench", {"runs": "BENCH_RUNS", "warmup": "BENCH_WARMUP"}),
    ("edgeseg.bench", "measure_sequential", {"warmup": "BENCH_WARMUP"}),
    ("edgeseg.data.synthetic", "make_video", {"fps": "VIDEO_FPS"}),
    ("edgeseg.export.quantize", "calibration_frames", {"seed": "CALIB_SEED", "n": "CALIB_IMAGES"}),
    ("edgeseg.export.quantize", "quantize_onnx", {"keep_float": "INT8_KEEP_FLOAT", "seed": "CALIB_SEED"}),
    ("edgeseg.export.quantize", "export_onnx_int8", {"keep_float": "INT8_KEEP_FLOAT", "op_types": "INT8_OP_TYPES"}),
    ("edgeseg.eval.tracking", "VideoStability", {"ignore_index": "IGNORE_INDEX"}),
    ("edgeseg.eval.ap50", "AP50", {"max_dets": "COCO_MAX_DETS"}),
    ("edgeseg.tracking.semantic", "ModeFilter", {"k": "SMOOTH_MODE_FRAMES"}),
    ("edgeseg.tracking.semantic", "Hysteresis", {"n": "SMOOTH_HYSTERESIS_FRAMES"}),
    ("edgeseg.tracking.semantic", "ProbabilityEMA", {"a": "SMOOTH_EMA_WEIGHT"}),
    ("edgeseg.tracking.semantic", "FlowEMA", {"a": "SMOOTH_EMA_WEIGHT"}),
    ("edgeseg.batch.runner", "run_batch", {"retries": "BATCH_RETRIES"}),
    ("edgeseg.integrations.ray.runner", "RayRunner", {"retries": "BATCH_RETRIES"}),
    ("edgeseg.demo", "run_demo", {"frames": "DEMO_FRAMES", "size": "DEMO_FRAME_SIZE"}),
]


@pytest.mark.parametrize("module, name, want", READS_DEFAULTS, ids=[f"{m}.{n}" for m, n, _ in READS_DEFAULTS])
def test_public_signatures_read_the_package_defaults(module, name, want):
    got = _defaults_of(module, name)
    assert {k: getattr(defaults, v) for k, v in want.items()}.items() <= got.items()


def test_module_level_names_are_the_package_defaults():
    from edgeseg.export import quantize
    from edgeseg.pipeline.sinks import web
    from edgeseg.runtime import model_files
    from edgeseg.runtime.conventions import binary

    assert model_files.DEFAULT_BUDGET == defaults.MODEL_BYTES_BUDGET == 4 << 30
    assert web.DEFAULT_MAX_CLIENTS == defaults.WEB_MAX_CLIENTS
    assert quantize.DEFAULT_KEEP_FLOAT == defaults.INT8_KEEP_FLOAT
    assert quantize.DEFAULT_OP_TYPES == defaults.INT8_OP_TYPES
    assert quantize.CALIB_SEED == defaults.CALIB_SEED
    assert binary.THRESHOLD == defaults.BINARY_THRESHOLD
    assert defaults.COCO_MAX_DETS == 100  # COCOeval's maxDets, not a tunable


def test_smoothing_specs_without_a_value_use_the_package_defaults():
    from edgeseg.tracking.semantic import make_stabiliser

    assert make_stabiliser("mode").k == defaults.SMOOTH_MODE_FRAMES
    assert make_stabiliser("hysteresis").n == defaults.SMOOTH_HYSTERESIS_FRAMES
    assert make_stabiliser("ema").a == make_stabiliser("flow-ema").a == defaults.SMOOTH_EMA_WEIGHT


def test_cli_options_default_to_the_package_defaults(capsys):
    from edgeseg.cli import build_parser, main

    parser = build_parser()
    run = parser.parse_args(["run", "--source", "synthetic", "--smooth"])
    assert run.smooth == str(defaults.SMOOTH_MODE_FRAMES)
    assert (run.read_timeout, run.reconnect_timeout) == (defaults.LIVE_READ_TIMEOUT, defaults.LIVE_RECONNECT_TIMEOUT)
    batch = parser.parse_args(["batch", "m.onnx", "in.mp4", "--out", "o", "--smooth"])
    assert batch.smooth == defaults.SMOOTH_MODE_FRAMES
    assert batch.retries == defaults.BATCH_RETRIES
    demo = parser.parse_args(["demo"])
    assert (demo.frames, demo.size) == (defaults.DEMO_FRAMES, defaults.DEMO_FRAME_SIZE)
    bench = parser.parse_args(["bench"])
    assert (bench.runs, bench.warmup) == (defaults.BENCH_RUNS, defaults.BENCH_WARMUP)

    def help_text(command: str) -> str:
        with pytest.raises(SystemExit):
            main([command, "--help"])
        return " ".join(capsys.readouterr().out.split())

    text = help_text("run")
    h, w = defaults.SYNTHETIC_SOURCE_SIZE
    assert f"frame width ({w})" in text and f"frame height ({h})" in text
    assert f"frames per second ({defaults.VIDEO_FPS:g})" in text
    assert f"K={defaults.SMOOTH_MODE_FRAMES} without a value" in text
    assert f"threshold (default {defaults.BINARY_THRESHOLD})" in text
    text = help_text("export")
    assert f"(default: {','.join(defaults.INT8_KEEP_FLOAT)})" in text
    assert f"(default: {','.join(defaults.INT8_OP_TYPES)}," in text
    h, w = defaults.BENCH_FRAME_SIZE
    assert f"(default {h}x{w}:" in help_text("bench")
