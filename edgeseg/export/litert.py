"""Checkpoint or ONNX -> LiteRT (``.tflite``): FP32, FP16 weights, or full-integer INT8.

Route: the FP32 ONNX that passed the parity gate (a checkpoint is exported to it first) is
rebuilt as a static-shape PyTorch module (:mod:`edgeseg.export.onnx_torch`), wrapped to take
and give channels-last tensors, and converted by ``litert-torch`` (Google's PyTorch -> LiteRT
converter, which runs with the pinned torch and needs no TensorFlow). The converter folds the
boundary transposes into NHWC kernels. FP16 (weights stored as float16, dequantised at load)
and INT8 (per-channel int8 weights, int8 activations calibrated on frames passed through
edgeseg's own letterbox, int8 model input/output) are made from the FP32 flatbuffer by
``ai-edge-quantizer``. The ModelMeta is stored in the flatbuffer's ``metadata`` table
(``edgeseg.meta``), read by :class:`~edgeseg.runtime.backends.litert_backend.LiteRTBackend`.

Every export ends with the accuracy gate (strict parity for FP32, mIoU / mask AP drop always);
a model that fails it is kept as ``*.rejected.tflite`` beside its report.
"""
from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from .. import defaults
from ..errors import ExportError
from ..meta import ModelMeta
from .accuracy import GateSettings
from .deploy import DeployReport, export_meta, finish, open_source, staged

PRECISIONS = ("fp32", "fp16", "int8")
INSTALL = "pip install ai-edge-litert litert-torch (or pip install 'edgeseg[export-litert]')"


def default_path(source: str | Path, precision: str = "fp32") -> Path:
    """``model.tflite`` / ``model.fp16.tflite`` / ``model.int8.tflite`` beside the source."""
    src = Path(source)
    stem = src.with_suffix("") if src.suffix.lower() == ".onnx" else src
    return Path(f"{stem}{'' if precision == 'fp32' else '.' + precision}.tflite")


def rejected_path(out: Path) -> Path:
    return out.with_suffix(".rejected.tflite")


def report_path(out: Path) -> Path:
    return out.with_suffix(".parity.json")


def _convert_fp32(onnx_path: Path, meta: ModelMeta, what: str) -> tuple[bytes, list[bool]]:
    """FP32 flatbuffer bytes of the ONNX graph (NHWC in and out) and which outputs are NHWC."""
    import torch

    os.environ.setdefault("LITERT_TORCH_SHOW_PROGRESS", "n")
    import litert_torch

    from .onnx_torch import load_module

    h, w = meta.input_size
    graph = load_module(onnx_path, (h, w), "litert", what)
    with torch.no_grad():
        nhwc = [o.ndim == 4 for o in graph(torch.zeros(1, 3, h, w))]

    class ChannelsLast(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = graph

        def forward(self, x: Any) -> tuple[Any, ...]:
            outs = self.net(x.permute(0, 3, 1, 2))
            return tuple(o.permute(0, 2, 3, 1) if flag else o for o, flag in zip(outs, nhwc))

    try:
        edge = litert_torch.convert(ChannelsLast().eval(), (torch.zeros(1, h, w, 3),))
    except Exception as e:  # the converter raises assorted lowering errors
        raise ExportError(f"litert-torch could not convert {what}: {type(e).__name__}: "
                          f"{str(e).strip().splitlines()[0] if str(e).strip() else ''}") from None
    with tempfile.TemporaryDirectory(prefix="edgeseg-litert-") as work:
        path = Path(work) / "model.tflite"
        edge.export(str(path))
        return path.read_bytes(), nhwc


def _quantize(data: bytes, precision: str, frames: Iterable[np.ndarray], meta: ModelMeta) -> bytes:
    """FP16 weights or full-integer INT8 of an FP32 flatbuffer (ai-edge-quantizer)."""
    from ai_edge_quantizer import qtyping, quantizer, recipe
    from ai_edge_quantizer.algorithm_manager import AlgorithmName

    with tempfile.TemporaryDirectory(prefix="edgeseg-litert-q-") as work:
        path = Path(work) / "fp32.tflite"
        path.write_bytes(data)
        if precision == "fp16":
            q = quantizer.Quantizer(str(path))
            q.add_weight_only_config(regex=".*", operation_name=qtyping.TFLOperationName.ALL_SUPPORTED,
                                     num_bits=16, algorithm_key=AlgorithmName.FLOAT_CASTING)
            return bytes(q.quantize().quantized_model)
        from ..runtime.base import preprocess

        q = quantizer.Quantizer(str(path), recipe.static_wi8_ai8())
        key, name = _signature(data)
        batches = [{name: np.ascontiguousarray(preprocess(f, meta, np.float32)[0].transpose(0, 2, 3, 1))}
                   for f in frames]
        if not batches:
            raise ExportError("INT8 calibration needs at least one image")
        return bytes(q.quantize(q.calibrate({key: batches})).quantized_model)


def _signature(data: bytes) -> tuple[str, str]:
    """(signature key, input name) of a single-signature flatbuffer."""
    from ai_edge_litert.interpreter import Interpreter

    sig = Interpreter(model_content=data).get_signature_list()
    key = next(iter(sig))
    return key, sig[key]["inputs"][0]


def _with_metadata(data: bytes, entries: dict[str, bytes]) -> bytes:
    """``data`` with ``entries`` set in the flatbuffer's metadata table."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as fb

    model = fb.ModelT.InitFromPackedBuf(bytearray(data), 0)
    for b in model.buffers or []:  # weights stored after the flatbuffer: move them inside
        if getattr(b, "offset", 0) > 1:
            b.data = np.frombuffer(data[b.offset:b.offset + b.size], np.uint8)
            b.offset = b.size = 0
    if len(data) >= 2**31 - 2**20:
        raise ExportError("the converted model is over 2 GB; edgeseg cannot add its metadata to it")
    model.metadata = [m for m in (model.metadata or []) if m.name.decode() not in entries]
    for name, payload in entries.items():
        buf = fb.BufferT()
        buf.data = np.frombuffer(payload, np.uint8)
        model.buffers.append(buf)
        md = fb.MetadataT()
        md.name, md.buffer = name, len(model.buffers) - 1
        model.metadata.append(md)
    builder = flatbuffers.Builder(len(data) + 4096)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def export_litert(
    source: str | Path,
    out: str | Path | None = None,
    precision: str = "fp32",
    calib: str = "synthetic",
    calib_images: int | None = None,
    input_size: int | tuple[int, int] | None = None,
    dynamic: bool | None = None,
    opset: int | None = None,
    *,
    threads: int | None = None,
    verbose: bool = True,
    **gate: Any,
) -> DeployReport:
    """Export a checkpoint (or an edgeseg ``.onnx``) to a LiteRT ``.tflite`` and gate it.

    Args:
        source: a checkpoint directory, or an ``.onnx`` written by ``edgeseg export``.
        out: the ``.tflite`` to write (default :func:`default_path`).
        precision: "fp32", "fp16" (float16 weights) or "int8" (full integer, calibrated).
        calib, calib_images: INT8 calibration frames (``"synthetic"`` or a folder; default 32).
        input_size, dynamic, opset: as for ONNX (checkpoint sources; LiteRT needs static shapes).
        threads: interpreter threads while gating.
        verbose: print the summary.
        **gate: the fields of :class:`~edgeseg.export.accuracy.GateSettings`.

    Returns a DeployReport; raises ExportError when conversion or the gate fails (the model
    is then kept as ``*.rejected.tflite``), or when the graph has an op without a LiteRT
    equivalent (named in the message).
    """
    settings = GateSettings(**gate)
    if precision not in PRECISIONS:
        raise ExportError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    try:
        import ai_edge_litert  # noqa: F401
        import litert_torch
        if precision != "fp32":
            import ai_edge_quantizer  # noqa: F401
    except ImportError as e:
        raise ExportError(f"--format litert needs LiteRT and its converter ({e.name} is missing): {INSTALL}") from None
    from ..runtime.backends.litert_backend import IO_KEY, LiteRTBackend, io_record
    from .quantize import calibration_frames

    t0 = time.perf_counter()
    dst = Path(out) if out is not None else default_path(source, precision)
    if dst.suffix.lower() != ".tflite":
        raise ExportError(f"a LiteRT model is written to a .tflite file, got {str(dst)!r}")
    with tempfile.TemporaryDirectory(prefix="edgeseg-litert-") as work:
        src = open_source(source, work, input_size=input_size, dynamic=dynamic, opset=opset, gate=settings,
                          static="litert")
        data, nhwc = _convert_fp32(src.onnx, src.meta, src.path.name)
        details: dict[str, Any] = {"litert_torch": litert_torch.__version__, "weights": precision,
                                   "layout": "NHWC"}
        if precision != "fp32":
            n = defaults.CALIB_IMAGES if calib_images is None else int(calib_images)
            frames = calibration_frames(calib, n) if precision == "int8" else []
            data = _quantize(data, precision, frames, src.meta)
            if precision == "int8":
                details.update(calibration=str(calib), calib_images=n)
        meta = export_meta(src.meta, format="litert", precision=precision, graph_layout="NHWC",
                           litert_torch=litert_torch.__version__, source=src.path.name)
        data = _with_metadata(data, {
            defaults.META_KEY: meta.to_json().encode(),
            IO_KEY: json.dumps(io_record(list(src.meta.output_names), nhwc)).encode()})
        dst.parent.mkdir(parents=True, exist_ok=True)
        with staged(dst, ".tflite") as tmp:
            tmp.write_bytes(data)
            return finish(src, LiteRTBackend(tmp, threads=threads), settings, [(tmp, dst, rejected_path(dst))],
                          t0=t0, verbose=verbose, hint="export FP32 or FP16" if precision == "int8" else
                          "report the architecture (an FP32 LiteRT model should match the checkpoint)",
                          format="litert", precision=precision, path=dst, meta=meta, size_bytes=len(data),
                          report_path=report_path(dst), details=details)


__all__ = ["export_litert", "default_path", "PRECISIONS"]
