"""What every output convention shares: a view of the model file, the facts a user gave, and the
checks that turn them into a ModelMeta or a clear error naming exactly what is missing."""
from __future__ import annotations

import ast
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar, Mapping

import numpy as np

from ... import defaults
from ...errors import ModelError
from ...geometry import parse_size
from ...meta import ModelMeta
from ..backends import Backend, TensorSpec
from ..onnx_graph import final_ops

#: Largest metadata value a literal parser reads (a hostile file could hold a huge one).
MAX_LITERAL_CHARS = 1 << 20


@dataclass
class GraphView:
    """What a convention may read from a loaded model: tensor specs, raw metadata, final ops."""

    path: Path
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    props: dict[str, str] = field(default_factory=dict)
    stored: ModelMeta | None = None

    @classmethod
    def of(cls, backend: Backend) -> "GraphView":
        return cls(Path(backend.path), backend.input_specs, backend.output_specs, backend.props, backend.meta)

    @cached_property
    def final_ops(self) -> dict[str, str]:
        """Output name -> the op that computes it (ONNX files only; empty when unknown)."""
        if self.path.suffix.lower() != ".onnx" or not self.path.is_file():
            return {}
        return final_ops(self.path, [o.name for o in self.outputs])

    def describe(self) -> str:
        def one(s: TensorSpec) -> str:
            return f"{s.name!r} {tuple(s.shape)} {s.dtype}"

        keys = sorted(self.props)
        return (f"inputs [{', '.join(one(s) for s in self.inputs)}], outputs [{', '.join(one(s) for s in self.outputs)}]"
                + (f", metadata keys {keys}" if keys else ", no metadata"))


class Convention:
    """One output convention: recognise a model file and decode its outputs into a kind's roles.

    Subclasses set ``name``, ``kind`` (the :mod:`~edgeseg.runtime.kinds` entry that runs the model),
    ``summary`` and ``example``, and implement :meth:`detect`; :meth:`adapt` maps a batch of raw
    outputs to the roles the kind's post-processing reads (default: the metadata's output names
    in role order).
    """

    name: ClassVar[str] = ""
    kind: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    example: ClassVar[str] = ""

    def detect(self, graph: GraphView, facts: dict[str, Any]) -> ModelMeta | None:  # pragma: no cover
        """The ModelMeta of ``graph`` if it follows this convention (None if not); raise
        ModelError naming the missing facts when it does but they cannot be read from the file."""
        raise NotImplementedError

    def adapt(self, outputs: Mapping[str, np.ndarray], meta: ModelMeta, roles: tuple[str, ...]) -> dict[str, np.ndarray]:
        """A batch of raw outputs -> ``{role: array}`` (batch axis first)."""
        if len(meta.output_names) < len(roles):
            raise ModelError(f"the metadata names outputs {list(meta.output_names)} but this kind of model has "
                             f"{len(roles)} ({', '.join(roles)}); re-export the model with edgeseg")
        return {r: outputs[n] for r, n in zip(roles, meta.output_names)}


# ------------------------------------------------------------------------------------- facts

HOW = {
    "classes": "classes=[...names...] or num_classes=N (CLI: --classes a,b,c or --num-classes N)",
    "input_size": "input_size=(height, width) (CLI: --imgsz HxW); the model's input "
                  "height/width are dynamic, so they cannot be read from the graph",
    "mean/std": "mean=(R, G, B) and std=(R, G, B) on the 0..255 scale, the normalisation the "
                f"model was trained with (CLI: --mean R,G,B --std R,G,B); ImageNet statistics are "
                f"mean={defaults.MEAN_RGB} std={defaults.STD_RGB}, inputs scaled to 0..1 use "
                "mean=(0, 0, 0) std=(255, 255, 255)",
}


def parse_pair(v: Any, name: str = "input_size") -> tuple[int, int]:
    """An int or (height, width) -> (h, w) of positive ints, or ModelError."""
    return parse_size(v, name, ModelError)


def classes_from(facts: Mapping[str, Any], n_graph: int | None, where: str) -> list[str] | None:
    """Class names from ``classes`` / ``num_classes``, checked against the graph's count."""
    names = facts.get("classes")
    n = facts.get("num_classes")
    if names is not None:
        names = [str(c) for c in names]
        if n is not None and int(n) != len(names):
            raise ModelError(f"num_classes={n} but {len(names)} class names were given")
        n = len(names)
    if n is not None and n_graph is not None and int(n) != n_graph:
        raise ModelError(f"{where} outputs {n_graph} classes, but {n} were given; give {n_graph}")
    if names is None and n is not None:
        names = [f"class_{i}" for i in range(int(n))]
    return names


@dataclass
class ImageInput:
    """The model's image input: its spec, layout ("NCHW" / "NHWC") and static height/width."""

    spec: TensorSpec
    layout: str

    @property
    def hw_axes(self) -> tuple[int, int]:
        return (2, 3) if self.layout == "NCHW" else (1, 2)

    @property
    def static_hw(self) -> tuple[int | None, int | None]:
        a, b = self.hw_axes
        return self.spec.static_dim(a), self.spec.static_dim(b)

    @property
    def dynamic(self) -> bool:
        return None in self.static_hw

    @property
    def uint8(self) -> bool:
        return self.spec.dtype == np.dtype(np.uint8)


def image_input(graph: GraphView, facts: Mapping[str, Any]) -> ImageInput:
    """The first input, checked to be a 3-channel image batch; NHWC when the last axis has 3
    channels and the second does not (or when ``layout="NHWC"`` is given)."""
    where = str(graph.path)
    if not graph.inputs or not graph.outputs:
        raise ModelError(f"{where} has no inputs or no outputs")
    inp = graph.inputs[0]
    if len(inp.shape) != 4:
        raise ModelError(f"{where}: input {inp.name!r} has shape {inp.shape}; edgeseg needs an image batch "
                         "(N, 3, H, W) or (N, H, W, 3)")
    layout = facts.get("layout")
    if layout is None:
        c1, c3 = inp.static_dim(1), inp.static_dim(3)
        layout = "NHWC" if c3 == 3 and c1 != 3 else "NCHW"
    layout = str(layout).upper()
    if layout not in ("NCHW", "NHWC"):
        raise ModelError(f"layout must be NCHW or NHWC, got {layout!r}")
    channels = inp.static_dim(1 if layout == "NCHW" else 3)
    if channels not in (None, 3):
        raise ModelError(f"{where}: input {inp.name!r} has shape {inp.shape} ({layout}); edgeseg needs 3 colour "
                         "channels")
    if inp.dtype not in (np.dtype(np.float32), np.dtype(np.float16), np.dtype(np.uint8)):
        raise ModelError(f"{where}: input {inp.name!r} has dtype {inp.dtype}; edgeseg feeds float32, float16 or "
                         "uint8 images")
    return ImageInput(inp, layout)


def check_size(size: tuple[int, int], img: ImageInput, where: str) -> None:
    """``size`` must agree with the input's static height/width."""
    static = img.static_hw
    for got, want, axis in zip(size, static, ("height", "width")):
        if want is not None and got != want:
            raise ModelError(
                f"input_size={size} but {where} has a fixed input {axis} of {want}; "
                f"use input_size={tuple(d or s for d, s in zip(static, size))} or re-export with dynamic=True")


def input_size_from(facts: Mapping[str, Any], img: ImageInput, where: str) -> tuple[int, int] | None:
    size = facts.get("input_size")
    if size is not None:
        size = parse_pair(size)
        check_size(size, img, where)
        return size
    h, w = img.static_hw
    return (h, w) if h and w else None


def normalisation(facts: Mapping[str, Any], img: ImageInput) -> tuple[Any, Any] | None:
    """(mean, std) from the facts; a uint8 input takes raw pixels (mean 0, std 1) unless told."""
    if "mean" in facts and "std" in facts:
        return facts["mean"], facts["std"]
    if img.uint8 and "mean" not in facts and "std" not in facts:
        return (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
    return None


def require(where: str, what: str, missing: list[str], how: Mapping[str, str] = HOW) -> None:
    """Raise the ModelError listing each missing fact and how to give it."""
    if missing:
        lines = "\n".join(f"  - {k}: pass {how[k]}" for k in missing)
        raise ModelError(f"{where} {what}, and these facts cannot be read from the model:\n{lines}\n"
                         "or store them once with `edgeseg export MODEL.onnx [facts] --out model.onnx`")


def input_extra(facts: Mapping[str, Any], img: ImageInput) -> dict[str, Any]:
    """The input facts a predictor applies (stored in ``meta.extra``)."""
    extra: dict[str, Any] = {}
    if img.uint8:
        extra["input_dtype"] = "uint8"
    order = str(facts.get("channel_order") or "RGB").upper()
    if order not in ("RGB", "BGR"):
        raise ModelError(f"channel_order must be RGB or BGR, got {facts.get('channel_order')!r}")
    if order == "BGR":
        extra["channel_order"] = "BGR"
    return extra


def parse_literal(text: str, key: str, where: str) -> Any:
    """A Python literal from a metadata string (never ``eval``): numbers, strings, tuples, lists,
    dicts, booleans and None only; anything else, or a malformed value, is a ModelError."""
    if not isinstance(text, str) or len(text) > MAX_LITERAL_CHARS:
        raise ModelError(f"{where}: metadata {key!r} is not a string of at most {MAX_LITERAL_CHARS} characters")
    try:
        return ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError) as e:
        raise ModelError(f"{where}: metadata {key!r} is not a valid literal ({type(e).__name__}): "
                         f"{text[:80]!r}; re-export the model, or give the facts explicitly") from None
