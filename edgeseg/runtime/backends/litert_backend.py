"""LiteRT (TensorFlow Lite) backend: runs ``.tflite`` models written by ``edgeseg export --format
litert`` with the ``ai-edge-litert`` interpreter (XNNPACK on CPUs); no torch, no TensorFlow.

The graph is channels-last (NHWC), as LiteRT kernels want. This backend keeps the channels-first
interface every other backend has: it transposes the (1, 3, h, w) input to NHWC and each
channels-last 4-D output back to NCHW, so predictors are the same for every backend. A
full-integer INT8 model has int8 inputs and outputs: inputs are quantised and outputs
dequantised here with the scales stored in the model. The ModelMeta travels in the flatbuffer's
``metadata`` table under ``edgeseg.meta``, together with the original output names.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ... import defaults
from ...errors import BackendError, InputFileError, ModelError
from .registry import register_backend
from .base import CPUBackend, TensorSpec, positive_threads, stored_meta

#: Flatbuffer metadata entry holding the layout of the edgeseg interface (see :func:`io_record`).
IO_KEY = "edgeseg.io"


def read_metadata(data: bytes) -> dict[str, bytes]:
    """The ``metadata`` table of a ``.tflite`` flatbuffer: name -> bytes."""
    from ai_edge_litert import schema_py_generated as fb

    try:
        model = fb.Model.GetRootAs(data, 0)
        out = {}
        for i in range(model.MetadataLength()):
            entry = model.Metadata(i)
            buf = model.Buffers(entry.Buffer())
            if buf.Offset() > 1:  # data stored after the flatbuffer (large models)
                out[entry.Name().decode()] = bytes(data[buf.Offset():buf.Offset() + buf.Size()])
            else:
                out[entry.Name().decode()] = buf.DataAsNumpy().tobytes() if buf.DataLength() else b""
        return out
    except Exception as e:  # flatbuffers raises assorted errors on corrupt input
        raise ModelError(f"not a readable .tflite flatbuffer ({type(e).__name__}: {e}); re-export the model") from None


def io_record(outputs: list[str], nhwc: list[bool]) -> dict[str, Any]:
    """What the backend needs besides ModelMeta: output names in signature order, and which of
    them are channels-last 4-D tensors."""
    return {"layout": "NHWC", "outputs": list(outputs), "nhwc": [bool(v) for v in nhwc]}


@register_backend
class LiteRTBackend(CPUBackend):
    """Runs a ``.tflite`` model with the LiteRT interpreter.

    Options:
        device: "cpu" only (NPU/GPU delegates are not wired here).
        threads: interpreter threads (default: LiteRT's choice).
    """

    name = "litert"
    suffixes = (".tflite",)
    options = ("device", "threads")
    install_hint = "pip install ai-edge-litert (or pip install 'edgeseg[litert]')"
    engine_module = "ai_edge_litert"

    def __init__(self, path: str | Path, device: str | None = None, threads: int | None = None) -> None:
        super().__init__(path, device=device, threads=threads)
        from ai_edge_litert.interpreter import Interpreter

        threads = positive_threads(threads)
        if not self.path.is_file():
            raise InputFileError(f"LiteRT model not found: {str(self.path)!r}; check the path")
        data = self.path.read_bytes()
        entries = read_metadata(data)
        self._meta = stored_meta(entries[defaults.META_KEY], self.path) if defaults.META_KEY in entries else None
        try:
            self.interp = Interpreter(model_content=data, num_threads=threads)
            self.interp.allocate_tensors()
        except Exception as e:  # LiteRT raises ValueError/RuntimeError with its own text
            raise ModelError(f"LiteRT could not load {str(self.path)!r}: {str(e).strip().splitlines()[0]}") from None
        self._threads = threads
        sig = self.interp.get_signature_list()
        if len(sig) != 1:
            raise ModelError(f"{self.path.name} has {len(sig)} signatures; edgeseg models have one")
        key = next(iter(sig))
        runner = self.interp.get_signature_runner(key)
        ins, outs = runner.get_input_details(), runner.get_output_details()
        if len(ins) != 1:
            raise ModelError(f"{self.path.name} has {len(ins)} inputs; edgeseg models have one image input")
        try:
            io = json.loads(entries[IO_KEY]) if IO_KEY in entries else None
            out_keys = sorted(outs, key=lambda k: (len(k), k))  # output_0, output_1, ..., output_10
            names = [str(n) for n in io["outputs"]] if io else out_keys
            nhwc = list(io["nhwc"]) if io else [False] * len(out_keys)
        except (ValueError, TypeError, KeyError, RecursionError):  # JSONDecodeError is a ValueError
            raise ModelError(f"{self.path.name}: its {IO_KEY!r} metadata is not the JSON edgeseg writes (outputs, "
                             "nhwc); re-export the model") from None
        if len(names) != len(out_keys):
            raise ModelError(f"{self.path.name}: metadata lists {len(names)} outputs, the model has {len(out_keys)}")
        d_in = next(iter(ins.values()))
        self._in_index, self._in_q = d_in["index"], self._quant(d_in)
        self._in_nhwc = io is not None
        in_name = self._meta.input_name if self._meta else next(iter(ins))
        shape = tuple(int(v) for v in d_in["shape"])
        if self._in_nhwc:
            shape = (shape[0], shape[3], shape[1], shape[2])
        self._inputs = [TensorSpec(in_name, shape, np.dtype(np.float32))]
        self._outs = []
        self._outputs = []
        for name, k, flag in zip(names, out_keys, nhwc):
            d = outs[k]
            s = tuple(int(v) for v in d["shape"])
            self._outs.append((name, d["index"], self._quant(d), bool(flag)))
            self._outputs.append(TensorSpec(name, (s[0], s[3], s[1], s[2]) if flag else s, np.dtype(np.float32)))
        self._dtype_in = np.dtype(d_in["dtype"])
        self._int8 = self._in_q is not None

    @staticmethod
    def _quant(detail: dict[str, Any]) -> tuple[float, int] | None:
        if np.dtype(detail["dtype"]) == np.float32:
            return None
        scale, zero = detail["quantization"]
        if not scale:
            raise ModelError(f"tensor {detail['name']!r} is {np.dtype(detail['dtype'])} without quantisation "
                             "parameters; edgeseg runs float or full-integer INT8 LiteRT models")
        return float(scale), int(zero)

    @property
    def provider(self) -> str:
        """e.g. "litert-xnnpack-int8"."""
        return f"litert-xnnpack-{'int8' if self._int8 else 'float'}"

    def infer(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        spec = self._inputs[0]
        x = np.asarray(self._take_inputs(inputs, f"LiteRT model {self.path.name}")[0])
        if tuple(x.shape) != spec.shape:
            raise BackendError(f"LiteRT model {self.path.name} takes a {spec.shape} input (static shapes), "
                               f"got {tuple(x.shape)}")
        if self._in_nhwc:
            x = x.transpose(0, 2, 3, 1)
        if self._in_q is not None:
            scale, zero = self._in_q
            info = np.iinfo(self._dtype_in)
            x = np.clip(np.rint(x / scale) + zero, info.min, info.max).astype(self._dtype_in)
        else:
            x = x.astype(np.float32, copy=False)
        self.interp.set_tensor(self._in_index, np.ascontiguousarray(x))
        self.interp.invoke()
        out = {}
        for name, index, q, flag in self._outs:
            y = self.interp.get_tensor(index)
            y = (y.astype(np.float32) - q[1]) * np.float32(q[0]) if q is not None else y.copy()
            out[name] = np.ascontiguousarray(y.transpose(0, 3, 1, 2)) if flag else y
        return out
