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
