"""An edgeseg ONNX graph rebuilt as a ``torch.nn.Module`` with static shapes, for converters
that start from PyTorch (LiteRT through litert-torch, ncnn through pnnx's TorchScript frontend).

Every deployment export starts from the FP32 ONNX that passed the parity gate (a checkpoint is
exported first; an ``.onnx`` from ``edgeseg export`` is used as is), so rebuilding that graph
serves checkpoints and ONNX files alike, the shipped models included. Shapes are static: the
shape arithmetic that exporters emit (Shape -> Gather/Slice -> Concat -> Resize/Reshape) is
evaluated once, in numpy, while the module runs, so the traced graph holds only the real
compute. Each ONNX op maps onto the one torch call with the same semantics; an op (or an op
attribute) without an exact equivalent is refused by name before anything is converted.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..errors import ExportError

Value = Any  # np.ndarray (a constant) or torch.Tensor (computed)


def _attrs(node: Any) -> dict[str, Any]:
    import onnx

    out = {}
    for a in node.attribute:
        v = onnx.helper.get_attribute_value(a)
        out[a.name] = v.decode() if isinstance(v, bytes) else v
    return out


def _np(v: Value) -> np.ndarray:
    """A constant input as numpy (shape arguments, axes, scales)."""
    if isinstance(v, np.ndarray):
        return v
    raise ExportError("a shape/axes input of the graph is computed at run time; only static graphs convert "
                      "(export without --dynamic)")


def _ints(v: Value) -> list[int]:
    return [int(x) for x in _np(v).reshape(-1)]


def _axes(node_attrs: dict[str, Any], inputs: list[Value], pos: int) -> list[int] | None:
    if "axes" in node_attrs:
        return list(node_attrs["axes"])
    if len(inputs) > pos and inputs[pos] is not None:
        return _ints(inputs[pos])
    return None


def _pads2d(pads: list[int]) -> tuple[bool, tuple[int, int], tuple[int, int, int, int]]:
    """ONNX [top, left, bottom, right] -> (symmetric?, torch padding, F.pad order)."""
    t, l, b, r = pads
    return (t == b and l == r), (t, l), (l, r, t, b)


# ----------------------------------------------------------------------------- op implementations
def _conv(F: Any, x: Value, w: Value, b: Value | None = None, **a: Any) -> Value:
    if a.get("auto_pad", "NOTSET") != "NOTSET":
        raise ExportError(f"Conv auto_pad={a['auto_pad']!r} is not supported (re-export with explicit pads)")
    if len(a.get("kernel_shape", w.shape[2:])) != 2:
        raise ExportError("only 2-D Conv converts")
    sym, pad, fpad = _pads2d(list(a.get("pads", [0, 0, 0, 0])))
    if not sym:
        x, pad = F.pad(x, fpad), (0, 0)
    return F.conv2d(x, w, b, stride=tuple(a.get("strides", [1, 1])), padding=pad,
                    dilation=tuple(a.get("dilations", [1, 1])), groups=int(a.get("group", 1)))


def _pool(F: Any, kind: str, x: Value, **a: Any) -> Value:
    if a.get("auto_pad", "NOTSET") != "NOTSET":
        raise ExportError(f"{kind} auto_pad={a['auto_pad']!r} is not supported")
    k = tuple(a["kernel_shape"])
    if len(k) != 2:
        raise ExportError(f"only 2-D {kind} converts")
    s = tuple(a.get("strides", [1, 1]))
    sym, pad, fpad = _pads2d(list(a.get("pads", [0, 0, 0, 0])))
    ceil = bool(a.get("ceil_mode", 0))
    if kind == "MaxPool":
        if any(d != 1 for d in a.get("dilations", [1, 1])) or a.get("storage_order", 0):
            raise ExportError("MaxPool with dilations or storage_order is not supported")
        if not sym:
            x, pad = F.pad(x, fpad, value=float("-inf")), (0, 0)
        return F.max_pool2d(x, k, s, pad, ceil_mode=ceil)
    include = bool(a.get("count_include_pad", 0))
    if not sym:
        if not include and any(fpad):
            raise ExportError("AveragePool with asymmetric pads that are not counted is not supported")
        x, pad = F.pad(x, fpad), (0, 0)
    return F.avg_pool2d(x, k, s, pad, ceil_mode=ceil, count_include_pad=include)


def _resize(F: Any, x: Value, roi: Value = None, scales: Value = None, sizes: Value = None, **a: Any) -> Value:
    h, w = x.shape[2:]
    if sizes is not None and _np(sizes).size:
        oh, ow = _ints(sizes)[2:]
    elif scales is not None and _np(scales).size:
        sc = _np(scales).astype(np.float64).reshape(-1)
        oh, ow = int(np.floor(h * sc[2])), int(np.floor(w * sc[3]))
    else:
        raise ExportError("Resize without scales or sizes")
    mode, ct = a.get("mode", "nearest"), a.get("coordinate_transformation_mode", "half_pixel")
    if mode == "nearest":
        if ct != "asymmetric" or a.get("nearest_mode", "round_prefer_floor") != "floor":
            raise ExportError(f"Resize nearest with {ct}/{a.get('nearest_mode')} has no exact equivalent "
                              "(asymmetric/floor converts)")
        return F.interpolate(x, size=(oh, ow), mode="nearest")
    if mode == "linear":
        if ct == "align_corners":
            return F.interpolate(x, size=(oh, ow), mode="bilinear", align_corners=True)
        if ct == "half_pixel" or (ct == "pytorch_half_pixel" and oh > 1 and ow > 1):
            return F.interpolate(x, size=(oh, ow), mode="bilinear", align_corners=False)
    raise ExportError(f"Resize mode={mode!r} coordinate_transformation_mode={ct!r} is not supported")


def _slice(x: Value, starts: Value, ends: Value, axes: Value = None, steps: Value = None) -> Value:
    st, en = _ints(starts), _ints(ends)
    ax = _ints(axes) if axes is not None else list(range(len(st)))
    sp = _ints(steps) if steps is not None else [1] * len(st)
    if any(s <= 0 for s in sp):
        raise ExportError("Slice with non-positive steps is not supported")
    index: list[Any] = [slice(None)] * len(x.shape)
    for a_, s, e, p in zip(ax, st, en, sp):
        index[a_] = slice(s, e, p)
    return x[tuple(index)]


def _reshape(x: Value, shape: Value, allowzero: int = 0) -> Value:
    target = _ints(shape)
    if not allowzero:
        target = [x.shape[i] if d == 0 else d for i, d in enumerate(target)]
    return x.reshape(tuple(target))


def _split(x: Value, split: Value = None, axis: int = 0, num_outputs: int | None = None,
           n_out: int = 1, **_: Any) -> list[Value]:
    size = x.shape[axis]
    parts = _ints(split) if split is not None else None
    if parts is None:
        n = num_outputs or n_out
        step = -(-size // n)
        parts = [min(step, size - i * step) for i in range(n)]
    out, start = [], 0
    for p in parts:
        index: list[Any] = [slice(None)] * len(x.shape)
        index[axis] = slice(start, start + p)
        out.append(x[tuple(index)])
        start += p
    return out


def _reduce(torch: Any, fn: str, x: Value, axes: list[int] | None, keepdims: int, noop: int = 0) -> Value:
    if axes is None or not axes:
        if noop:
            return x
        axes = list(range(len(x.shape)))
    dims = tuple(sorted(a % len(x.shape) for a in axes))
    if fn == "max":
        return torch.amax(x, dim=dims, keepdim=bool(keepdims))
    if fn == "min":
        return torch.amin(x, dim=dims, keepdim=bool(keepdims))
    return getattr(torch, fn)(x, dim=dims, keepdim=bool(keepdims))


def _gemm(torch: Any, a: Value, b: Value, c: Value = None, alpha: float = 1.0, beta: float = 1.0,
          transA: int = 0, transB: int = 0) -> Value:
    a = a.t() if transA else a
    b = b.t() if transB else b
    y = alpha * (a @ b)
    return y if c is None else y + beta * c


_CAST = {1: "float32", 6: "int32", 7: "int64", 9: "bool", 10: "float16", 11: "float64"}


def _ops(torch: Any, F: Any) -> dict[str, Callable[..., Any]]:
    """ONNX op type -> fn(inputs, attrs, n_outputs) -> list of outputs (torch semantics)."""

    def one(f: Callable[..., Any]) -> Callable[..., Any]:
        return lambda i, a, n: [f(*i, **a)]

    def cast(x: Value, to: int, **_: Any) -> Value:
        if to not in _CAST:
            raise ExportError(f"Cast to ONNX type {to} is not supported")
        return x.to(getattr(torch, _CAST[to]))

    def clip(x: Value, lo: Value = None, hi: Value = None, min: float | None = None,
             max: float | None = None) -> Value:
        lo = min if lo is None else float(_np(lo))
        hi = max if hi is None else float(_np(hi))
        return torch.clamp(x, lo, hi)

    def softmax(x: Value, axis: int = -1) -> Value:
        return torch.softmax(x, dim=axis)

    def flatten(x: Value, axis: int = 1) -> Value:
        return x.reshape(int(np.prod(x.shape[:axis])), -1)

    def squeeze(x: Value, axes: Value = None, **a: Any) -> Value:
        ax = a.get("axes", _ints(axes) if axes is not None else [i for i, d in enumerate(x.shape) if d == 1])
        return x.reshape(tuple(d for i, d in enumerate(x.shape) if i not in {v % len(x.shape) for v in ax}))

    def unsqueeze(x: Value, axes: Value = None, **a: Any) -> Value:
        ax = sorted(v % (len(x.shape) + len(a.get("axes", _ints(axes) if axes is not None else [])))
                    for v in a.get("axes", _ints(axes) if axes is not None else []))
        shape = list(x.shape)
        for v in ax:
            shape.insert(v, 1)
        return x.reshape(tuple(shape))

    def gather(x: Value, idx: Value, axis: int = 0) -> Value:
        i = torch.as_tensor(np.asarray(_np(idx)), dtype=torch.long)
        if i.ndim == 0:
            return x.select(axis, int(i))
        return x.index_select(axis, i.reshape(-1)).reshape(
            tuple(x.shape[:axis]) + tuple(i.shape) + tuple(x.shape[axis + 1:]))

    def expand(x: Value, shape: Value) -> Value:
        return x.expand(tuple(np.broadcast_shapes(tuple(x.shape), tuple(_ints(shape)))))

    def bn(x: Value, s: Value, b: Value, m: Value, v: Value, epsilon: float = 1e-5, **_: Any) -> Value:
        return F.batch_norm(x, m, v, s, b, training=False, eps=epsilon)

    def leaky(x: Value, alpha: float = 0.01) -> Value:
        return F.leaky_relu(x, alpha)

    def hsig(x: Value, alpha: float = 0.2, beta: float = 0.5) -> Value:
        return torch.clamp(alpha * x + beta, 0.0, 1.0)

    def red(fn: str, pos: int = 1) -> Callable[..., Any]:
        return lambda i, a, n: [_reduce(torch, fn, i[0], _axes(a, i, pos), a.get("keepdims", 1),
                                        a.get("noop_with_empty_axes", 0))]

    return {
        "Conv": lambda i, a, n: [_conv(F, *i, **a)],
        "MaxPool": lambda i, a, n: [_pool(F, "MaxPool", *i, **a)],
        "AveragePool": lambda i, a, n: [_pool(F, "AveragePool", *i, **a)],
        "GlobalAveragePool": one(lambda x: x.mean(dim=(2, 3), keepdim=True)),
        "GlobalMaxPool": one(lambda x: torch.amax(x, dim=(2, 3), keepdim=True)),
        "Resize": lambda i, a, n: [_resize(F, *i, **a)],
        "Relu": one(torch.relu), "Sigmoid": one(torch.sigmoid), "Tanh": one(torch.tanh),
        "Exp": one(torch.exp), "Sqrt": one(torch.sqrt), "Neg": one(torch.neg), "Abs": one(torch.abs),
        "Reciprocal": one(torch.reciprocal), "Softplus": one(F.softplus), "Erf": one(torch.erf),
        "HardSwish": one(F.hardswish), "HardSigmoid": one(hsig), "LeakyRelu": one(leaky),
        "Clip": one(clip), "Softmax": one(softmax), "Identity": one(lambda x: x),
        "Add": one(lambda x, y: x + y), "Sub": one(lambda x, y: x - y), "Mul": one(lambda x, y: x * y),
        "Div": one(lambda x, y: x / y), "Pow": one(lambda x, y: x ** y), "MatMul": one(torch.matmul),
        "Max": one(lambda *x: _fold(torch.maximum, x)), "Min": one(lambda *x: _fold(torch.minimum, x)),
        "Gemm": one(lambda *x, **a: _gemm(torch, *x, **a)),
        "BatchNormalization": one(bn),
        "Concat": lambda i, a, n: [torch.cat(list(i), dim=a["axis"])],
        "ReduceSum": red("sum"), "ReduceMean": red("mean"), "ReduceMax": red("max"), "ReduceMin": red("min"),
        "Reshape": one(_reshape), "Transpose": one(lambda x, perm: x.permute(*perm)),
        "Flatten": one(flatten), "Squeeze": one(squeeze), "Unsqueeze": one(unsqueeze),
        "Slice": one(_slice), "Gather": one(gather), "Expand": one(expand), "Cast": one(cast),
        "Split": lambda i, a, n: _split(*i, n_out=n, **a),
    }


def _fold(fn: Callable[..., Any], xs: tuple[Value, ...]) -> Value:
    out = xs[0]
    for x in xs[1:]:
        out = fn(out, x)
    return out


#: Ops whose inputs after the first are shapes, axes, indices or bounds (kept as numpy).
PARAM_INPUTS = frozenset({"Reshape", "Slice", "Gather", "Expand", "Split", "Resize", "Squeeze", "Unsqueeze",
                          "ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "Clip"})
#: Ops evaluated only on constants (shape arithmetic); computed data never flows through them.
CONSTANT_ONLY = frozenset({"Shape", "Constant", "ConstantOfShape", "Range", "Equal", "Where"})


def supported_ops() -> frozenset[str]:
    """ONNX op types that :class:`OnnxModule` converts."""
    import torch
    import torch.nn.functional as F

    return frozenset(_ops(torch, F)) | CONSTANT_ONLY


def unsupported_ops(model: Any) -> list[str]:
    """Op types of ``model`` (an ``onnx.ModelProto``) that have no conversion, sorted."""
    ok = supported_ops()
    return sorted({n.op_type for n in model.graph.node if n.op_type not in ok})


def _constant_eval(node: Any, inputs: list[np.ndarray], a: dict[str, Any], shape_of: Any) -> list[np.ndarray]:
    """Numpy evaluation of the constant-only ops."""
    import onnx

    op = node.op_type
    if op == "Shape":
        shape = np.asarray(shape_of(node.input[0]), np.int64)
        return [shape[a.get("start", 0):a.get("end", len(shape))]]
    if op == "Constant":
        if "value" in a:
            return [onnx.numpy_helper.to_array(a["value"]).copy()]
        for k in ("value_float", "value_int"):
            if k in a:
                return [np.asarray(a[k], np.float32 if k == "value_float" else np.int64)]
        for k in ("value_floats", "value_ints"):
            if k in a:
                return [np.asarray(a[k], np.float32 if k == "value_floats" else np.int64)]
        raise ExportError(f"Constant node {node.name!r} has no supported value attribute")
    if op == "ConstantOfShape":
        v = onnx.numpy_helper.to_array(a["value"]) if "value" in a else np.zeros(1, np.float32)
        return [np.full(tuple(int(d) for d in inputs[0]), v.reshape(-1)[0], v.dtype)]
    if op == "Range":
        return [np.arange(inputs[0], inputs[1], inputs[2])]
    if op == "Equal":
        return [np.equal(inputs[0], inputs[1])]
    return [np.where(inputs[0], inputs[1], inputs[2])]  # Where


def build_module(model: Any, input_shape: tuple[int, ...]) -> Any:
    """``model`` (an ``onnx.ModelProto`` with one float input) as an ``nn.Module`` taking a
    tensor of ``input_shape`` and returning its outputs as a tuple in graph order.

    Raises ExportError naming every op without a conversion (e.g. RoiAlign, NonMaxSuppression)."""
    import onnx
    import torch
    import torch.nn.functional as F

    missing = unsupported_ops(model)
    if missing:
        raise ExportError(f"the graph uses ONNX op(s) {', '.join(missing)}, which have no equivalent in this "
                          "converter")
    ops = _ops(torch, F)
    inits = {i.name: onnx.numpy_helper.to_array(i).copy() for i in model.graph.initializer}
    inputs = [i.name for i in model.graph.input if i.name not in inits]
    if len(inputs) != 1:
        raise ExportError(f"expected one graph input, found {inputs}")
    outputs = [o.name for o in model.graph.output]
    nodes = list(model.graph.node)

    class OnnxModule(torch.nn.Module):
        """The graph, op by op. A first eager run (:meth:`plan`) folds every node whose inputs
        are constants into numpy and stores the constants that computed ops read as buffers, so
        tracing (torch.export, torch.jit.trace) sees only the computed part."""

        def __init__(self) -> None:
            super().__init__()
            self.consts: dict[str, np.ndarray] = {}  # folded node outputs
            self.tensor_of: dict[str, str] = {}  # constant name -> buffer name
            self.compute: list[Any] = []  # nodes left to run

        def _buffer(self, name: str, v: np.ndarray) -> Any:
            if name not in self.tensor_of:
                buf = f"c{len(self.tensor_of)}"
                arr = np.ascontiguousarray(v.astype(np.float32) if v.dtype.kind == "f" else v)
                self.register_buffer(buf, torch.from_numpy(arr.copy()), persistent=False)
                self.tensor_of[name] = buf
            return getattr(self, self.tensor_of[name])

        @torch.no_grad()
        def plan(self, x: Any) -> None:
            env: dict[str, Value] = {inputs[0]: x, **inits}
            for node in nodes:
                a = _attrs(node)
                vals = [env[n] if n else None for n in node.input]
                params = node.op_type in PARAM_INPUTS  # inputs after the first: shapes/axes/bounds
                if node.op_type in CONSTANT_ONLY:
                    if node.op_type != "Shape" and any(isinstance(v, torch.Tensor) for v in vals):
                        raise ExportError(f"{node.op_type} on computed data ({node.name}) is not supported")
                    outs = _constant_eval(node, vals, a, lambda n: tuple(int(d) for d in env[n].shape))
                    self.consts.update(zip(node.output, outs))
                elif not any(isinstance(v, torch.Tensor) for v in vals):
                    tv = [v if v is None or (params and k > 0) else torch.from_numpy(np.ascontiguousarray(v))
                          for k, v in enumerate(vals)]
                    outs = [o.numpy() if isinstance(o, torch.Tensor) else o
                            for o in ops[node.op_type](tv, a, len(node.output))]
                    self.consts.update(zip(node.output, outs))
                else:
                    for k, (n, v) in enumerate(zip(node.input, vals)):
                        if isinstance(v, np.ndarray) and not (params and k > 0):
                            self._buffer(n, v)
                    self.compute.append((node, a, params))
                    tv = [self._tensor(n, v, params and k > 0) for k, (n, v) in enumerate(zip(node.input, vals))]
                    try:
                        outs = ops[node.op_type](tv, a, len(node.output))
                    except ExportError as e:
                        raise ExportError(f"node {node.name or node.op_type} ({node.op_type}): {e}") from None
                env.update(zip(node.output, outs))
            for n in outputs:
                if not isinstance(env[n], torch.Tensor):
                    raise ExportError(f"graph output {n!r} is a constant; such a graph is not an edgeseg model")

        def _tensor(self, name: str, v: Value, param: bool) -> Value:
            if v is None or param or isinstance(v, torch.Tensor):
                return v
            return getattr(self, self.tensor_of[name])

        def forward(self, x: Any) -> tuple[Any, ...]:
            env: dict[str, Value] = {inputs[0]: x}

            def get(n: str) -> Value:
                if not n:
                    return None
                if n in env:
                    return env[n]
                return self.consts[n] if n in self.consts else inits[n]

            for node, a, params in self.compute:
                tv = [self._tensor(n, get(n), params and k > 0) for k, n in enumerate(node.input)]
                env.update(zip(node.output, ops[node.op_type](tv, a, len(node.output))))
            return tuple(env[n] for n in outputs)

    module = OnnxModule().eval()
    module.plan(torch.zeros(input_shape))  # fails here, naming the node, rather than inside a converter
    return module


def load_module(onnx_path: str | Path, input_size: tuple[int, int], fmt: str, what: str) -> Any:
    """The ONNX file at ``onnx_path`` as :func:`build_module` builds it for one frame of
    ``input_size`` (height, width); the ExportError says that ``--format fmt`` cannot convert
    ``what``."""
    import onnx

    try:
        return build_module(onnx.load(str(onnx_path)), (1, 3, *input_size))
    except ExportError as e:
        raise ExportError(f"--format {fmt} cannot convert {what}: {e}") from None


__all__ = ["build_module", "load_module", "supported_ops", "unsupported_ops", "CONSTANT_ONLY"]
