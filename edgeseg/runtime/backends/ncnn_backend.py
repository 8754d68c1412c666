"""ncnn backend: runs ``model.ncnn.param`` + ``model.ncnn.bin`` written by ``edgeseg export
--format ncnn`` with ncnn's Python binding (the mobile CPU runtime; no torch).

ncnn has no metadata field, so the export writes ``model.ncnn.json`` beside the pair: the
ModelMeta plus the blob names and shapes of the edgeseg interface (ncnn drops the batch axis;
outputs are given back with it). ``path`` may be the ``.param`` file or a directory holding one.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ...errors import BackendError, ModelError
from ...meta import ModelMeta
from .registry import register_backend
from .base import CPUBackend, TensorSpec, find_model_file, positive_threads, stored_meta

PARAM_SUFFIX = ".ncnn.param"


def side_file(param: Path) -> Path:
    """``model.ncnn.param`` -> ``model.ncnn.json`` (ModelMeta and the I/O record)."""
    return param.with_suffix(".json")


def find_param(path: str | Path) -> Path:
    """The ``.param`` for ``path``: the file itself, or the one ``*.param`` in a directory
    (``*.rejected.*`` files kept by a failed export are ignored), with its ``.bin``."""
    return find_model_file(path, ".param", "ncnn")


@register_backend
class NcnnBackend(CPUBackend):
    """Runs an ncnn model on the CPU.

    Options:
        device: "cpu" only (ncnn's Vulkan path is not wired here).
        threads: ncnn worker threads (default: ncnn's choice, the big cores).
        fp16: FP16 storage and arithmetic where the CPU has them (ARMv8.2, x86 F16C); default
            False, so FP32 weights compute in FP32.
    """

    name = "ncnn"
    suffixes = (".param",)
    #: An export directory holding one .param (+ .bin, .json) resolves here.
    opens_directories = True
    options = ("device", "threads", "fp16")
    install_hint = "pip install ncnn (or pip install 'edgeseg[ncnn]')"
    engine_module = "ncnn"

    def __init__(self, path: str | Path, device: str | None = None, threads: int | None = None,
                 fp16: bool | None = None) -> None:
        super().__init__(path, device=device, threads=threads, fp16=fp16)
        import ncnn

        threads = positive_threads(threads)
        self.param = find_param(self.path)
        record = self._read_side()
        meta = record.get("meta")
        self._meta = None if meta is None else stored_meta(meta, side_file(self.param), ModelMeta.from_dict)
        self._fp16 = bool(fp16)
        net = ncnn.Net()
        opt = net.opt
        opt.use_fp16_packed = opt.use_fp16_storage = opt.use_fp16_arithmetic = self._fp16
        opt.use_vulkan_compute = False
        if threads is not None:
            opt.num_threads = threads
        self._int8 = bool(record.get("int8", False))
        opt.use_int8_inference = True
        if net.load_param(str(self.param)) != 0 or net.load_model(str(self.param.with_suffix(".bin"))) != 0:
            raise ModelError(f"ncnn could not load {str(self.param)!r}; check that the .param and .bin are "
                             "complete and from the same export")
        self.net = net
        in_blobs, out_blobs = list(net.input_names()), list(net.output_names())
        io = record.get("io") or {}
        self._in_blob = io.get("input_blob", in_blobs[0] if in_blobs else "in0")
        in_name = self._meta.input_name if self._meta else self._in_blob
        in_shape = tuple(io.get("input_shape") or (1, 3, None, None))
        self._inputs = [TensorSpec(in_name, in_shape, np.dtype(np.float32))]
        names = io.get("outputs") or out_blobs
        blobs = io.get("output_blobs") or out_blobs
        shapes = io.get("output_shapes") or [None] * len(blobs)
        missing = [b for b in blobs if b not in out_blobs]
        if missing or len(names) != len(blobs):
            raise ModelError(f"{side_file(self.param).name} does not match {self.param.name} (output blobs "
                             f"{missing or blobs} vs {out_blobs}); copy the files of one export together")
        self._outs = list(zip(names, blobs, shapes))
        self._outputs = [TensorSpec(n, tuple(s) if s else (), np.dtype(np.float32)) for n, _, s in self._outs]

    def _read_side(self) -> dict[str, Any]:
        f = side_file(self.param)
        if not f.is_file():
            return {}
        try:
            record = json.loads(f.read_text())
        except (OSError, json.JSONDecodeError, RecursionError) as e:  # RecursionError: nested thousands deep
            raise ModelError(f"{str(f)!r} is not valid JSON ({e}); re-export the model") from None
        if not isinstance(record, dict):
            raise ModelError(f"{str(f)!r} must hold a JSON object; re-export the model")
        return record

    @property
    def provider(self) -> str:
        """e.g. "ncnn-cpu-fp32", "ncnn-cpu-int8"."""
        return f"ncnn-cpu-{'int8' if self._int8 else 'fp16' if self._fp16 else 'fp32'}"

    def infer(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        import ncnn

        spec = self._inputs[0]
        x = np.asarray(self._take_inputs(inputs, f"ncnn model {self.param.name}")[0], dtype=np.float32)
        if x.ndim != 4 or x.shape[0] != 1 or (spec.is_static and tuple(x.shape) != spec.shape):
            raise BackendError(f"ncnn model {self.param.name} takes one (1, 3, h, w) image"
                               f"{' of ' + str(spec.shape) if spec.is_static else ''}, got {tuple(x.shape)}")
        chw = np.ascontiguousarray(x[0])
        ex = self.net.create_extractor()
        ex.input(self._in_blob, ncnn.Mat(chw))
        out = {}
        for name, blob, shape in self._outs:
            rc, mat = ex.extract(blob)
            if rc != 0:
                raise BackendError(f"ncnn failed to compute {blob!r} of {self.param.name} (code {rc})")
            y = np.array(mat, dtype=np.float32)
            out[name] = y.reshape(shape) if shape else y[None]
        return out
