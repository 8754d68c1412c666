"""ModelMeta is the door every model file passes: each field is type- and range-checked when read."""
from __future__ import annotations

import json

import pytest

from edgeseg import ModelError, ModelMeta
from edgeseg.runtime.instance import InstanceThresholds

BASE = dict(task="semantic", classes=["a", "b"], input_size=[64, 64])


@pytest.mark.parametrize("bad, words", [
    (dict(classes=7), "list of class names"),
    (dict(classes="ab"), "list of class names"),
    (dict(classes=[]), "empty"),
    (dict(classes=[["x"]]), "string"),
    (dict(pad_value="grey"), "pad_value"),
    (dict(pad_value=300), "pad_value"),
    (dict(input_size=[100000, 100000]), "16384"),
    (dict(input_size="big"), "input_size"),
    (dict(palette=[[300, 0, 0], [0, 0, 0]]), "0, 255"),
    (dict(palette=[[0, 0], [0, 0, 0]]), "palette"),
    (dict(mean=[float("nan"), 0, 0]), "finite"),
    (dict(std=[float("inf"), 1, 1]), "finite"),
    (dict(std=[0, 1, 1]), "positive"),
    (dict(mean="0,0,0"), "3 numbers"),
    (dict(output_stride=-1), "output_stride"),
    (dict(output_stride=2.5), "output_stride"),
    (dict(layout="X"), "layout"),
    (dict(format_version="2"), "format_version"),
    (dict(format_version=99), "newer"),
    (dict(extra=[1]), "extra"),
    (dict(output_names="logits"), "output_names"),
    (dict(task="depth"), "task"),
])
def test_bad_metadata_values_are_refused_clearly(bad, words):
    with pytest.raises(ModelError, match=words):
        ModelMeta.from_json(json.dumps({**BASE, **bad}))


def test_metadata_round_trip_and_non_object():
    m = ModelMeta.from_dict(BASE)
    assert ModelMeta.from_json(m.to_json()) == m
    with pytest.raises(ModelError, match="JSON object"):
        ModelMeta.from_json("[1, 2]")
    with pytest.raises(ModelError, match="not valid JSON"):
        ModelMeta.from_json("{")


@pytest.mark.parametrize("extra", [{"score_threshold": float("nan")}, {"iou_threshold": "0.5"},
                                   {"max_detections": 1e9}, {"max_candidates": "many"}, {"score_threshold": 2}])
def test_bad_stored_thresholds_are_refused(extra):
    meta = ModelMeta.from_dict({**BASE, "task": "instance", "extra": extra})
    with pytest.raises(ModelError):
        InstanceThresholds.for_model(meta)
