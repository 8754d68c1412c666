"""The deployment exporters take their gate settings (and the options after them) by keyword
only: a positional argument where a gate setting used to be is refused, never bound to another
parameter (a 7th positional argument of export_openvino once was ``val``)."""
from __future__ import annotations

import dataclasses
import importlib
import inspect

import pytest

from edgeseg.export.accuracy import GateSettings

#: (module, exporter, the parameter the old positional gate arguments would now reach)
EXPORTERS = [
    ("edgeseg.export.openvino", "export_openvino", "verbose"),
    ("edgeseg.export.quantize", "export_onnx_int8", "verbose"),
    ("edgeseg.export.tensorrt", "export_engine", "verbose"),
    ("edgeseg.export.litert", "export_litert", "threads"),
    ("edgeseg.export.ncnn", "export_ncnn", "threads"),
]


def _exporter(module: str, name: str):
    return getattr(importlib.import_module(module), name)


@pytest.mark.parametrize("module,name,first_keyword", EXPORTERS)
def test_gate_settings_are_keyword_only(module, name, first_keyword):
    params = inspect.signature(_exporter(module, name)).parameters
    kinds = {k: p.kind for k, p in params.items()}
    assert kinds["gate"] is inspect.Parameter.VAR_KEYWORD
    keyword_only = [k for k, kind in kinds.items() if kind is inspect.Parameter.KEYWORD_ONLY]
    assert keyword_only[0] == first_keyword and "verbose" in keyword_only
    # the gate's settings are GateSettings' fields, none of them a parameter of its own
    assert not {f.name for f in dataclasses.fields(GateSettings)} & set(params)


@pytest.mark.parametrize("module,name,first_keyword", EXPORTERS)
def test_positional_argument_past_the_keyword_only_marker_is_refused(module, name, first_keyword, tmp_path):
    fn = _exporter(module, name)
    names = list(inspect.signature(fn).parameters)
    before = [p.default for p in inspect.signature(fn).parameters.values()][2:names.index(first_keyword)]
    args = [str(tmp_path / "missing"), str(tmp_path / "out"), *before]
    with pytest.raises(TypeError, match="positional argument"):
        fn(*args, "synthetic")  # once ``val`` (openvino, int8, litert, ncnn) or ``verbose`` (engine)


def test_deploy_report_is_still_importable_from_accuracy():
    """Exporter docs named edgeseg.export.accuracy.DeployReport as their return type."""
    from edgeseg.export import deploy
    from edgeseg.export.accuracy import DeployReport, Source, is_checkpoint

    assert (DeployReport, Source, is_checkpoint) == (deploy.DeployReport, deploy.Source, deploy.is_checkpoint)
    with pytest.raises(AttributeError):
        importlib.import_module("edgeseg.export.accuracy").no_such_name
