"""Fuzz model loading from bytes: the bytes are written to a temporary ``.onnx`` file, checked by
edgeseg's own reader (``model_files.check_onnx``), loaded with ``edgeseg.load`` (ONNX Runtime
session, output convention, metadata checks) and, when that succeeds, run on one small frame.

Only EdgesegError subclasses may escape (a file edgeseg refuses, or a model ONNX Runtime cannot
run, each with a message). The seeds are tiny valid models, so mutations reach past the parser.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import atheris

from _harness import run

with atheris.instrument_imports(include=["edgeseg"]):
    import numpy as np

    import edgeseg
    from edgeseg.errors import EdgesegError
    from edgeseg.runtime.model_files import check_onnx

FACTS = dict(mean=(123.675, 116.28, 103.53), std=(58.395, 57.12, 57.375))
FOLDER = Path(tempfile.mkdtemp(prefix="edgeseg-fuzz-model-"))
FRAME = np.zeros((24, 40, 3), np.uint8)


def test_one_input(data: bytes) -> None:
    path = FOLDER / "model.onnx"
    path.write_bytes(data)
    try:
        check_onnx(path)
    except EdgesegError:
        pass
    try:
        model = edgeseg.load(path, threads=1, **FACTS)
        model(FRAME)
    except EdgesegError:
        pass


if __name__ == "__main__":
    os.environ.setdefault("ORT_LOGGING_LEVEL", "4")
    run(test_one_input)
