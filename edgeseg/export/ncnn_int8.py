"""ncnn post-training INT8, written in ncnn's own int8 layer format.

What ncnn's ``ncnn2table`` + ``ncnn2int8`` tools do (they ship in neither the ``ncnn`` nor the
``pnnx`` wheel), done in Python over the FP32 ``.param``/``.bin`` pair:

* weights: per output channel (per group for ConvolutionDepthWise) symmetric scale
  ``127 / max|w|``, stored as int8 behind ncnn's int8 tag (``0x000D4B38``, padded to 4 bytes);
* activations: the input blob of every Convolution / ConvolutionDepthWise gets one scale
  ``127 / max|x|`` over calibration frames run through the FP32 model with ncnn itself
  (frames letterboxed by edgeseg's own preprocessing);
* the layer's ``int8_scale_term`` (param 8) is set (2 for Convolution, 1 for
  ConvolutionDepthWise) and the scales follow the bias in the ``.bin``, which is where ncnn's
  layers read them; ncnn's int8 kernels then run those layers, everything else stays float.

The ``.bin`` is walked layer by layer; a layer type whose weight layout is not known here makes
the quantisation refuse by name rather than guess offsets.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np

from ..errors import ExportError

TAG_FLOAT32 = 0x00000000
TAG_INT8 = 0x000D4B38
#: Layers quantised, with the int8_scale_term each gets.
QUANTISED = {"Convolution": 2, "ConvolutionDepthWise": 1}
#: Layers that store nothing in the .bin.
NO_WEIGHTS = frozenset({
    "Input", "Split", "ReLU", "Sigmoid", "BinaryOp", "UnaryOp", "Concat", "Pooling", "Interp", "Reduction",
    "Reshape", "Permute", "Slice", "Crop", "Softmax", "Eltwise", "Clip", "Flatten", "ExpandDims", "Squeeze",
    "Padding", "Swish", "HardSigmoid", "HardSwish", "Noop", "TanH", "Softplus", "Mish", "Dropout", "Tile",
    "ELU", "GELU", "Exp", "Log", "Power", "AbsVal", "Threshold"})


@dataclass
class Layer:
    typ: str
    name: str
    bottoms: list[str]
    tops: list[str]
    params: dict[int, str]
    line: int  # index in the param lines


def parse_param(text: str) -> tuple[list[str], list[Layer]]:
    lines = text.splitlines()
    layers = []
    for i, ln in enumerate(lines[2:], 2):
        t = ln.split()
        if not t:
            continue
        nb, nt = int(t[2]), int(t[3])
        params = {}
        for kv in t[4 + nb + nt:]:
            k, v = kv.split("=", 1)
            params[int(k)] = v
        layers.append(Layer(t[0], t[1], t[4:4 + nb], t[4 + nb:4 + nb + nt], params, i))
    return lines, layers


def _int(layer: Layer, key: int, default: int = 0) -> int:
    return int(layer.params.get(key, default))


def _segments(layers: list[Layer], data: bytes) -> dict[str, dict[str, slice]]:
    """Byte ranges of each weighted layer's arrays in the .bin, in param order."""
    pos, out = 0, {}
    for ly in layers:
        if ly.typ in NO_WEIGHTS:
            continue
        if ly.typ in QUANTISED:
            n_out, size = _int(ly, 0), _int(ly, 6)
            if _int(ly, 8) or _int(ly, 19):
                raise ExportError(f"ncnn INT8: layer {ly.name} is already quantised or has dynamic weights")
            (tag,) = struct.unpack_from("<I", data, pos)
            if tag != TAG_FLOAT32:
                raise ExportError(f"ncnn INT8: layer {ly.name} does not store FP32 weights (tag {tag:#x})")
            seg = {"weight": slice(pos + 4, pos + 4 + 4 * size)}
            pos += 4 + 4 * size
            if _int(ly, 5):
                seg["bias"] = slice(pos, pos + 4 * n_out)
                pos += 4 * n_out
            out[ly.name] = seg
        elif ly.typ == "MemoryData":
            dims = [_int(ly, k) for k in (0, 1, 11, 2)]
            if _int(ly, 21, 1) != 1:
                raise ExportError(f"ncnn INT8: MemoryData {ly.name} uses a tagged layout this tool does not read")
            pos += 4 * int(np.prod([d for d in dims if d] or [1]))
        else:
            raise ExportError(f"ncnn INT8: layer type {ly.typ} ({ly.name}) stores weights in a layout this "
                              "quantiser does not read; export --format ncnn without --int8")
    if pos != len(data):
        raise ExportError(f"ncnn INT8: the .bin holds {len(data)} bytes, its layers account for {pos}; "
                          "refusing to rewrite it")
    return out


def _round(x: np.ndarray) -> np.ndarray:
    """ncnn's float -> int8: round half away from zero, clamp to [-127, 127]."""
    return np.clip(np.sign(x) * np.floor(np.abs(x) + 0.5), -127, 127).astype(np.int8)


def activation_scales(param: Path, bin_: Path, blobs: list[str], input_blob: str,
                      tensors: Iterable[np.ndarray]) -> dict[str, float]:
    """127 / max|x| of each blob over the calibration tensors ((1, 3, h, w) float32)."""
    import ncnn

    net = ncnn.Net()
    net.opt.use_fp16_packed = net.opt.use_fp16_storage = net.opt.use_fp16_arithmetic = False
    net.opt.lightmode = False  # keep intermediate blobs for extraction
    if net.load_param(str(param)) != 0 or net.load_model(str(bin_)) != 0:
        raise ExportError("ncnn INT8: the FP32 model does not load for calibration")
    peak = {b: 0.0 for b in blobs}
    n = 0
    for x in tensors:
        chw = np.ascontiguousarray(x[0], dtype=np.float32)
        ex = net.create_extractor()
        ex.input(input_blob, ncnn.Mat(chw))
        for b in blobs:
            rc, mat = ex.extract(b)
            if rc != 0:
                raise ExportError(f"ncnn INT8: calibration could not compute blob {b!r}")
            peak[b] = max(peak[b], float(np.abs(np.array(mat)).max()))
        n += 1
    if n == 0:
        raise ExportError("ncnn INT8 calibration needs at least one image")
    return {b: (127.0 / v if v > 0 else 1.0) for b, v in peak.items()}


def quantize(param: Path, bin_: Path, out_param: Path, out_bin: Path, input_blob: str,
             tensors: Iterable[np.ndarray], keep_float: Iterable[str] = ("first",)) -> dict[str, object]:
    """Write the INT8 pair; returns what was quantised (for the report). ``keep_float``: layers
    left in FP32: "first" (the convolutions reading the image), "none", or ncnn layer names."""
    lines, layers = parse_param(param.read_text())
    data = bin_.read_bytes()
    segs = _segments(layers, data)
    keep = set()
    for word in keep_float:
        if word == "first":  # the convolutions reading the image: 3 input channels, lossy and slow in INT8
            keep |= {ly.name for ly in layers if ly.typ in QUANTISED and ly.bottoms[0] == input_blob}
        elif word != "none":
            if word not in {ly.name for ly in layers}:
                raise ExportError(f"ncnn INT8: --keep-float names layer {word!r}, which the model does not have")
            keep.add(word)
    targets = [ly for ly in layers if ly.typ in QUANTISED and ly.name not in keep]
    if not targets:
        raise ExportError("ncnn INT8: the model has no convolution to quantise")
    act = activation_scales(param, bin_, sorted({ly.bottoms[0] for ly in targets}), input_blob, tensors)
    chunks, pos = [], 0
    for ly in targets:
        seg = segs[ly.name]
        w = np.frombuffer(data[seg["weight"]], np.float32)
        groups = _int(ly, 7, 1) if ly.typ == "ConvolutionDepthWise" else _int(ly, 0)
        wg = w.reshape(groups, -1)
        peak = np.abs(wg).max(axis=1)
        scales = np.where(peak > 0, 127.0 / np.where(peak > 0, peak, 1.0), 1.0).astype(np.float32)
        q = _round(wg * scales[:, None]).reshape(-1)
        pad = (-len(q)) % 4
        end = seg["bias"].stop if "bias" in seg else seg["weight"].stop
        chunks += [data[pos:seg["weight"].start - 4], struct.pack("<I", TAG_INT8), q.tobytes(), b"\0" * pad]
        if "bias" in seg:
            chunks.append(data[seg["bias"]])
        chunks += [scales.tobytes(), np.float32(act[ly.bottoms[0]]).tobytes()]
        pos = end
        lines[ly.line] = lines[ly.line].rstrip() + f" 8={QUANTISED[ly.typ]}"
    chunks.append(data[pos:])
    out_bin.write_bytes(b"".join(chunks))
    out_param.write_text("\n".join(lines) + "\n")
    return {"quantised_layers": len(targets), "kept_float": sorted(keep),
            "layer_types": sorted({ly.typ for ly in targets})}


__all__ = ["quantize", "activation_scales", "parse_param"]
