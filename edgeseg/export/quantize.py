"""INT8 for CPU deployments: static QDQ quantisation of an edgeseg ONNX with ONNX Runtime.

    edgeseg export CKPT --format onnx --int8 [--calib DIR|synthetic] [--keep-float head,first]

The FP32 ONNX (a checkpoint is exported first, under the strict ONNX parity gate) is prepared
with ``quant_pre_process`` (shape inference + graph optimisation) and quantised with
``onnxruntime.quantization.quantize_static`` in the QDQ format: per-channel symmetric INT8
weights, per-tensor activations calibrated on images fed through edgeseg's own letterbox
(:func:`edgeseg.runtime.base.preprocess`), so calibration sees exactly what the runtime
feeds. Layers can be kept in float: ``first`` (the first convolution: 3 input channels make it
slow and lossy in INT8), ``head`` (the convolutions that produce the outputs), or node names.
The ModelMeta is carried over (with the quantisation settings under ``extra.export``).

Defaults, and why (measured on this project's 2-core AVX-512-VNNI CPU, ONNX Runtime 1.32, the
shipped liteseg_t at 288x288, one thread): activations ``uint8`` (U8S8) run ~2x faster than
``int8`` (S8S8) activations there; keeping the first convolution in float is faster than
quantising it; full-window AveragePools are rewritten into the equal depthwise convolutions
first, so they run in INT8 instead of bouncing to float. ``activations="int8"`` with
``symmetric=True`` gives the Q/DQ layout TensorRT needs (zero points 0), which
:mod:`edgeseg.export.tensorrt` uses.

Every INT8 export ends with the accuracy gate of :mod:`edgeseg.export.accuracy` (mIoU / mask
AP drop <= 1 point by default); a failing model is kept as ``*.rejected.onnx`` with its report.
"""
from __future__ import annotations

import os
import tempfile
import time
from collections import deque
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from .. import defaults
from .._io import IMAGE_SUFFIXES, atomic_path, read_image
from ..errors import ExportError
from ..meta import ModelMeta
from .accuracy import GateSettings
from .deploy import DeployReport, export_meta, finish, open_source, staged
from .onnx import parity_path, rejected_path, store_meta
from .parity import FRAME_SIZES

#: Seed of synthetic calibration scenes: a stream of its own (train uses 0, val 1_000_003,
#: test 2_000_003), so the gate never scores on images the quantiser calibrated on.
CALIB_SEED = defaults.CALIB_SEED
#: Layers kept in float by default (see the module docstring).
DEFAULT_KEEP_FLOAT: tuple[str, ...] = defaults.INT8_KEEP_FLOAT
#: Op types an ONNX Runtime INT8 export quantises by default: convolutions with the activations
#: ONNX Runtime fuses into them, and max pooling. Full-window average pools are quantised as
#: depthwise convolutions (:func:`avgpools_to_depthwise`), and concats of quantised inputs are
#: fused by ONNX Runtime itself. Quantising the rest too (Add, Mul, Resize, ...) puts
#: Quantize/DequantizeLinear pairs around ops that ONNX Runtime runs no faster in INT8; on the
#: shipped semantic model "all" now runs level with this set (1.37-1.41x FP32 both,
#: benchmarks/RESULTS.md). "all" selects every op.
DEFAULT_OP_TYPES: tuple[str, ...] = defaults.INT8_OP_TYPES
#: Special --keep-float words; anything else is a node name.
KEEP_FLOAT_WORDS = ("first", "head", "none")
METHODS = ("minmax", "entropy", "percentile")
ACTIVATIONS = ("uint8", "int8")
#: Ops that carry weights: where "first" and "head" stop looking.
WEIGHTED_OPS = frozenset({"Conv", "ConvTranspose", "Gemm", "MatMul"})


# ----------------------------------------------------------------------------- calibration data
def calibration_frames(calib: str | os.PathLike = "synthetic", n: int = defaults.CALIB_IMAGES,
                       seed: int = CALIB_SEED) -> Iterator[np.ndarray]:
    """BGR uint8 calibration frames: ``"synthetic"`` (or ``"synthetic:N"``, N overriding ``n``)
    generates scenes of several sizes; a directory yields its images (sorted by name, at most
    ``n``; jpg/png/bmp/tif/webp). Raises ExportError for a missing or image-less folder."""
    if n < 1:
        raise ExportError(f"calibration needs at least 1 image, got {n}")
    text = str(calib)
    if text == "synthetic" or text.startswith("synthetic:"):
        from ..data.synthetic import generate

        if ":" in text:
            try:
                n = int(text.split(":", 1)[1])
            except ValueError:
                raise ExportError(f"calibration spec {text!r}: expected synthetic:N with an integer N") from None
        for i in range(n):
            yield generate(i, seed=seed, size=FRAME_SIZES[i % len(FRAME_SIZES)]).image
        return
    folder = Path(calib)
    if not folder.is_dir():
        raise ExportError(f"calibration data {text!r} is neither 'synthetic' nor a folder of images; "
                          "pass --calib DIR (a folder of representative frames) or --calib synthetic")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise ExportError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in calibration folder {str(folder)!r}")
    for p in files[:n]:
        yield read_image(p)


def _reader_base() -> type:
    from onnxruntime.quantization import CalibrationDataReader

    return CalibrationDataReader


def calibration_reader(frames: Iterable[np.ndarray], meta: ModelMeta,
                       input_size: tuple[int, int] | None = None) -> Any:
    """An ``onnxruntime.quantization.CalibrationDataReader`` that letterboxes ``frames`` with
    the runtime's preprocessing into ``{meta.input_name: (1, 3, h, w) float32}`` batches."""
    from ..runtime.base import preprocess

    class LetterboxCalibrationReader(_reader_base()):  # type: ignore[misc]
        def __init__(self) -> None:
            self.tensors = [preprocess(f, meta, np.float32, input_size=input_size)[0] for f in frames]
            if not self.tensors:
                raise ExportError("no calibration images")
            self.rewind()

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._it, None)

        def rewind(self) -> None:
            self._it = iter({meta.input_name: t} for t in self.tensors)

        def __len__(self) -> int:
            return len(self.tensors)

    return LetterboxCalibrationReader()


# ----------------------------------------------------------------------------- float layers
def _nearest_weighted(start: Iterable[str], step: Callable[[str], Iterable[Any]],
                      onward: Callable[[Any], Iterable[str]]) -> list[str]:
    """Names of the weighted nodes met first on every path of a breadth-first walk: from the
    tensors ``start``, ``step(tensor)`` gives the nodes to visit, and the walk goes on through
    an unweighted node's tensors ``onward(node)``."""
    queue = deque(start)
    seen_t: set[str] = set()
    found: list[str] = []
    while queue:
        t = queue.popleft()
        if t in seen_t:
            continue
        seen_t.add(t)
        for node in step(t):
            if node.op_type in WEIGHTED_OPS:
                if node.name not in found:
                    found.append(node.name)
            else:
                queue.extend(onward(node))
    return found


def first_weighted_nodes(graph: Any) -> list[str]:
    """Names of the weighted nodes (Conv, Gemm, ...) nearest the graph inputs: walking forward
    from the inputs, the first weighted node met on every path."""
    consumers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    inits = {t.name for t in graph.initializer}
    return _nearest_weighted((i.name for i in graph.input if i.name not in inits),
                             lambda t: consumers.get(t, []), lambda node: node.output)


def head_weighted_nodes(graph: Any) -> list[str]:
    """Names of the weighted nodes that produce the graph outputs: walking back from each
    output through unweighted ops (decode, reshape, resize, ...), the first weighted node met."""
    producers = {out: node for node in graph.node for out in node.output}
    return _nearest_weighted((o.name for o in graph.output), lambda t: [producers[t]] if t in producers else [],
                             lambda node: node.input)


def resolve_keep_float(model: Any, keep: Sequence[str] | str | None) -> list[str]:
    """Node names to leave in float for ``keep``: "first", "head", "none" and/or node names
    (a comma-separated string or a sequence). Unknown node names raise ExportError."""
    if keep is None:
        return []
    words = [w.strip() for w in (keep.split(",") if isinstance(keep, str) else keep) if str(w).strip()]
    if "none" in words:
        if len(words) > 1:
            raise ExportError(f"--keep-float 'none' cannot be combined with other entries, got {words}")
        return []
    names = {n.name for n in model.graph.node}
    out: list[str] = []
    for w in words:
        if w == "first":
            picked = first_weighted_nodes(model.graph)
        elif w == "head":
            picked = head_weighted_nodes(model.graph)
        elif w in names:
            picked = [w]
        else:
            convs = [n.name for n in model.graph.node if n.op_type in WEIGHTED_OPS][:6]
            raise ExportError(f"--keep-float: {w!r} is neither one of {KEEP_FLOAT_WORDS} nor a node of the "
                              f"model (weighted nodes are named like {convs})")
        out.extend(p for p in picked if p not in out)
    return out


def resolve_op_types(op_types: Sequence[str] | str | None) -> list[str] | None:
    """Op types to quantise from a list or a comma-separated string; None for "all"."""
    if op_types is None:
        return None
    items = [t.strip() for t in op_types.split(",")] if isinstance(op_types, str) else [str(t) for t in op_types]
    items = [t for t in items if t]
    if not items:
        raise ExportError('no op types to quantise given; name some (e.g. "Conv,Relu") or "all"')
    if any(t.lower() == "all" for t in items):
        return None
    bad = [t for t in items if not t.isidentifier() or not t[0].isupper()]
    if bad:
        raise ExportError(f"op types must be ONNX op names such as Conv, Relu, MaxPool (or all), got {bad}")
    return items


def _name_nodes(model: Any) -> None:
    """Give unnamed nodes unique names (nodes_to_exclude and reports need them)."""
    used = {n.name for n in model.graph.node if n.name}
    for i, node in enumerate(model.graph.node):
        if not node.name:
            name = f"{node.op_type}_{i}"
            while name in used:
                name += "_"
            node.name = name
            used.add(name)


# ----------------------------------------------------------------------------- graph rewrites
def _channels(model: Any, tensor: str) -> int | None:
    """Channel count (dim 1) of ``tensor`` from the shape-inferred graph, if known."""
    for vi in list(model.graph.value_info) + list(model.graph.input):
        if vi.name == tensor:
            dims = vi.type.tensor_type.shape.dim
            if len(dims) == 4 and dims[1].HasField("dim_value") and dims[1].dim_value > 0:
                return int(dims[1].dim_value)
    return None


def avgpools_to_depthwise(model: Any) -> list[str]:
    """Rewrite, in place, every 2-D ``AveragePool`` that averages over a full window (padding
    counted, or none) into the equal depthwise ``Conv`` with constant weights 1/(kh*kw).

    The float results agree (up to summation order); the point is INT8: ONNX Runtime runs the
    depthwise convolution on quantised NHWC data, where an AveragePool sends the tensor back to
    float (DequantizeLinear, layout reorders, QuantizeLinear) and its Concat with it. On the
    shipped semantic model this made the INT8 model ~5-10 % faster (benchmarks/RESULTS.md). The
    weights are exact in INT8 (symmetric per-channel: all equal the channel's max, code 127).
    Returns the names of the rewritten nodes.
    """
    import onnx
    from onnx import helper, numpy_helper

    done: list[str] = []
    nodes = []
    for node in model.graph.node:
        a = {x.name: helper.get_attribute_value(x) for x in node.attribute}
        kernel = list(a.get("kernel_shape", []))
        pads = list(a.get("pads", [0] * 2 * len(kernel)))
        C = _channels(model, node.input[0]) if node.op_type == "AveragePool" and node.input else None
        if (C is None or len(kernel) != 2 or a.get("ceil_mode", 0) != 0
                or a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET")
                or any(d != 1 for d in a.get("dilations", [1, 1]))
                or (a.get("count_include_pad", 0) != 1 and any(pads))):
            nodes.append(node)
            continue
        weight = f"{node.name or node.output[0]}_depthwise_weight"
        model.graph.initializer.append(numpy_helper.from_array(
            np.full((C, 1, kernel[0], kernel[1]), 1.0 / (kernel[0] * kernel[1]), np.float32), weight))
        nodes.append(helper.make_node("Conv", [node.input[0], weight], list(node.output),
                                      name=f"{node.name}_depthwise", group=C, kernel_shape=kernel,
                                      strides=list(a.get("strides", [1, 1])), pads=pads))
        done.append(node.name)
    if done:
        del model.graph.node[:]
        model.graph.node.extend(nodes)
        onnx.checker.check_model(model)
    return done


# ----------------------------------------------------------------------------- quantise
def quantize_onnx(
    src: str | Path,
    dst: str | Path,
    meta: ModelMeta,
    calib: str | os.PathLike = "synthetic",
    calib_images: int = defaults.CALIB_IMAGES,
    keep_float: Sequence[str] | str | None = DEFAULT_KEEP_FLOAT,
    per_channel: bool = True,
    method: str = "minmax",
    activations: str = "uint8",
    symmetric: bool = False,
    op_types: Sequence[str] | str | None = None,
    seed: int = CALIB_SEED,
    quantize_bias: bool = True,
) -> dict[str, Any]:
    """Quantise the FP32 ONNX ``src`` into a QDQ INT8 ONNX at ``dst`` (written atomically).

    Args:
        meta: the model's ModelMeta (normalisation for calibration; stored in ``dst`` with
            the quantisation settings under ``extra.export.quantization``).
        calib, calib_images: calibration frames (see :func:`calibration_frames`).
        keep_float: layers left in float (see :func:`resolve_keep_float`).
        per_channel: per-output-channel weight scales (recommended for convolutions).
        method: calibration method: "minmax", "entropy" or "percentile".
        activations: "uint8" (U8S8; fastest with ONNX Runtime on x86) or "int8" (S8S8).
        symmetric: symmetric activations (zero point 0; TensorRT needs it, with "int8").
        op_types: op types to quantise; None or "all": every op ONNX Runtime can quantise.
        seed: seed of synthetic calibration scenes.
        quantize_bias: store biases as int32 behind a DequantizeLinear (ONNX Runtime's default);
            False keeps them float, the Q/DQ layout TensorRT's explicit quantization takes.

    Returns the settings used (JSON-able), including the nodes kept in float.
    """
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if method not in METHODS:
        raise ExportError(f"calibration method must be one of {METHODS}, got {method!r}")
    op_types = resolve_op_types(op_types)
    if activations not in ACTIVATIONS:
        raise ExportError(f"activations must be one of {ACTIVATIONS}, got {activations!r}")
    src, dst = Path(src), Path(dst)
    calib_method = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
                    "percentile": CalibrationMethod.Percentile}[method]
    t0 = time.perf_counter()
    reader = calibration_reader(calibration_frames(calib, calib_images, seed), meta)
    with tempfile.TemporaryDirectory(prefix="edgeseg-q-") as work:
        prepared = Path(work) / "prepared.onnx"
        try:
            quant_pre_process(str(src), str(prepared), skip_symbolic_shape=False)
        except Exception:  # noqa: BLE001 - symbolic shape inference fails on some graphs; plain is fine
            try:
                quant_pre_process(str(src), str(prepared), skip_symbolic_shape=True)
            except Exception as e:  # noqa: BLE001
                raise ExportError(f"ONNX Runtime's quantisation pre-processing of {src.name} failed: "
                                  f"{type(e).__name__}: {e}") from None
        model = onnx.load(str(prepared))
        _name_nodes(model)
        depthwise = avgpools_to_depthwise(model) if op_types is None or "Conv" in op_types else []
        onnx.save(model, str(prepared))
        excluded = resolve_keep_float(model, keep_float)
        with atomic_path(dst) as tmp:
            try:
                quantize_static(
                    str(prepared), str(tmp), reader, quant_format=QuantFormat.QDQ, per_channel=per_channel,
                    activation_type=QuantType.QUInt8 if activations == "uint8" else QuantType.QInt8,
                    weight_type=QuantType.QInt8, calibrate_method=calib_method, nodes_to_exclude=excluded,
                    op_types_to_quantize=list(op_types) if op_types else None,
                    extra_options={"ActivationSymmetric": bool(symmetric), "WeightSymmetric": True,
                                   "QuantizeBias": bool(quantize_bias)})
            except ExportError:
                raise
            except Exception as e:  # noqa: BLE001 - ORT's quantiser raises many types
                raise ExportError(f"ONNX Runtime quantisation of {src.name} failed: {type(e).__name__}: {e}") from None
            settings = {"format": "QDQ", "weights": "int8 symmetric" + (" per-channel" if per_channel else ""),
                        "activations": activations + (" symmetric" if symmetric else ""),
                        "bias": "int32" if quantize_bias else "float",
                        "method": method, "calibration": str(calib), "calibration_images": len(reader),
                        "kept_float": excluded, "op_types": list(op_types) if op_types else "all",
                        "avgpool_as_depthwise_conv": depthwise,
                        "onnxruntime": _ort_version(), "seconds": round(time.perf_counter() - t0, 2)}
            q = onnx.load(str(tmp))
            qmeta = export_meta(meta, precision="int8", quantization=settings)
            store_meta(q, qmeta)
            try:
                onnx.checker.check_model(q)
            except onnx.checker.ValidationError as e:
                raise ExportError(f"the quantised graph fails onnx.checker: {e}") from None
            onnx.save(q, str(tmp))
    return settings


def _ort_version() -> str:
    import onnxruntime

    return onnxruntime.__version__


# ----------------------------------------------------------------------------- export
def default_int8_path(source: str | Path) -> Path:
    """``CKPT.int8.onnx`` beside a checkpoint directory, ``model.int8.onnx`` beside an ONNX."""
    p = Path(source)
    return p.with_name(p.stem + ".int8.onnx") if p.suffix.lower() == ".onnx" else p.with_name(p.name + ".int8.onnx")


def export_onnx_int8(
    source: str | Path,
    out: str | Path,
    calib: str | os.PathLike = "synthetic",
    calib_images: int = defaults.CALIB_IMAGES,
    keep_float: Sequence[str] | str | None = DEFAULT_KEEP_FLOAT,
    per_channel: bool = True,
    method: str = "minmax",
    activations: str = "uint8",
    op_types: Sequence[str] | str | None = DEFAULT_OP_TYPES,
    input_size: int | tuple[int, int] | None = None,
    dynamic: bool | None = None,
    opset: int | None = None,
    *,
    verbose: bool = True,
    **gate: Any,
) -> DeployReport:
    """Export a checkpoint (or an edgeseg FP32 ``.onnx``) to a QDQ INT8 ONNX and gate it.

    Quantisation arguments as in :func:`quantize_onnx`; ``input_size``/``dynamic``/``opset``
    as in :func:`~edgeseg.export.onnx.export_onnx` (checkpoint sources only); ``gate``: the
    fields of :class:`~edgeseg.export.accuracy.GateSettings`. The model is written to ``out`` only if
    the mIoU / mask AP drop against the reference is within ``max_drop``; otherwise it is kept
    as ``<out>.rejected.onnx`` beside the report ``<out>.parity.json`` and ExportError is raised.
    """
    from ..runtime.backends.onnxruntime_backend import OnnxRuntimeBackend

    settings = GateSettings(**gate)
    t0 = time.perf_counter()
    op_types = resolve_op_types(op_types)  # bad names fail before any work
    out = Path(out)
    if out.suffix.lower() != ".onnx":
        raise ExportError(f"the INT8 model path must end in .onnx (got {str(out)!r}); e.g. model.int8.onnx")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="edgeseg-int8-") as work:
        src = open_source(source, work, input_size=input_size, dynamic=dynamic, opset=opset, gate=settings)
        with staged(out, ".onnx") as tmp:
            settings_q = quantize_onnx(src.onnx, tmp, src.meta, calib=calib, calib_images=calib_images,
                                       keep_float=keep_float, per_channel=per_channel, method=method,
                                       activations=activations, op_types=op_types)
            candidate = OnnxRuntimeBackend(tmp, device="cpu")
            return finish(src, candidate, settings, [(tmp, out, rejected_path(out))], t0=t0, verbose=verbose,
                          hint="calibrate on more representative images (--calib DIR), try --calib-method "
                               "entropy, or keep sensitive layers in float (--keep-float head,first)",
                          format="onnx", precision="int8", path=out, meta=candidate.meta or src.meta,
                          size_bytes=tmp.stat().st_size, report_path=parity_path(out),
                          details={"quantization": settings_q})


__all__ = ["quantize_onnx", "export_onnx_int8", "calibration_frames", "calibration_reader",
           "resolve_keep_float", "first_weighted_nodes", "head_weighted_nodes", "default_int8_path",
           "DEFAULT_KEEP_FLOAT", "DEFAULT_OP_TYPES", "CALIB_SEED",
           "resolve_op_types", "avgpools_to_depthwise"]
