"""Fuzz the metadata readers: ModelMeta.from_json (edgeseg's own, stored in every export) and the
literal-only parser of foreign metadata (Ultralytics' Python-literal strings), alone and through
the Ultralytics convention's detect on a YOLOv8-seg shaped graph.

Input: first byte picks the target, the rest is the text (UTF-8, bad bytes replaced). For the
Ultralytics props, the text is split on ASCII record separators (0x1e) into the values of
``names``, ``imgsz``, ``stride``, ``task``, ``args``, ``end2end``, ``batch`` in that order.
Only ModelError (an EdgesegError) may escape.
"""
from __future__ import annotations

from pathlib import Path

import atheris

from _harness import run

with atheris.instrument_imports(include=["edgeseg"]):
    import numpy as np

    from edgeseg.errors import EdgesegError
    from edgeseg.meta import ModelMeta
    from edgeseg.runtime.backends import TensorSpec
    from edgeseg.runtime.conventions.base import GraphView, parse_literal
    from edgeseg.runtime.conventions.ultralytics import UltralyticsConvention, _props

KEYS = ("names", "imgsz", "stride", "task", "args", "end2end", "batch")
F32 = np.dtype("float32")
INPUTS = [TensorSpec("images", (1, 3, 640, 640), F32)]
OUTPUTS = [TensorSpec("output0", (1, 116, 8400), F32), TensorSpec("output1", (1, 32, 160, 160), F32)]


def _graph(text: str) -> GraphView:
    props = {k: v for k, v in zip(KEYS, text.split("\x1e")) if v != "\x00"}  # NUL: key absent
    return GraphView(Path("fuzz-model"), INPUTS, OUTPUTS, props)


def test_one_input(data: bytes) -> None:
    if not data:
        return
    target, text = data[0] % 4, data[1:].decode("utf-8", "replace")
    try:
        if target == 0:
            meta = ModelMeta.from_json(text)
            assert ModelMeta.from_json(meta.to_json()) == meta  # what was accepted round-trips
        elif target == 1:
            parse_literal(text, "names", "fuzz")
        elif target == 2:
            _props(_graph(text))
        else:
            UltralyticsConvention().detect(_graph(text), {})
    except EdgesegError:
        pass


if __name__ == "__main__":
    run(test_one_input)
