"""Predictors: frame in, result out. Semantic: letterbox -> backend -> upsample+argmax.
Instance models run in :mod:`edgeseg.runtime.instance`; :func:`load` picks by the model's task.

Pre- and post-processing are module functions (:func:`preprocess`, :func:`postprocess`) so that
export parity checks run exactly the code the runtime runs.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from .. import defaults, ops
from ..errors import InputFileError, ModelError
from ..meta import ModelMeta
from .backends import Backend, TensorSpec, open_backend
from .results import SemanticResult

ASSETS = Path(__file__).resolve().parent.parent / "assets"
_FLOAT_INPUTS = (np.dtype(np.float32), np.dtype(np.float16))


# ----------------------------------------------------------------------------- pre / post


def preprocess(frame: np.ndarray, meta: ModelMeta, dtype: Any = np.float32,
               input_size: tuple[int, int] | None = None) -> tuple[np.ndarray, "ops.LetterboxInfo"]:
    """Letterbox a BGR uint8 frame into the normalised (1, 3, h, w) RGB tensor the model takes."""
    return ops.letterbox(
        np.ascontiguousarray(frame),
        input_size or meta.input_size,
        mean=meta.mean,
        std=meta.std,
        dtype=dtype,
        pad_value=meta.pad_value,
    )


def postprocess(output: np.ndarray, info: "ops.LetterboxInfo") -> np.ndarray:
    """Labels at the frame's resolution from one image's model output.

    ``output`` is either float logits (C, h, w) / (1, C, h, w) at any stride (the fused C++
    upsample+argmax maps frame pixels through the letterbox; full-res logits just mean stride 1),
    or integer labels (h, w) / (1, h, w) / (1, 1, h, w) from a graph that ends in argmax, which
    are un-letterboxed by nearest-neighbour sampling with the same pixel mapping.
    """
    out = output
    if np.issubdtype(out.dtype, np.floating):
        if out.ndim == 4 and out.shape[0] == 1:
            out = out[0]
        if out.ndim != 3:
            raise ModelError(f"expected logits shaped (C, h, w) per image, got {output.shape}")
        if out.dtype not in _FLOAT_INPUTS:
            out = out.astype(np.float32)
        return ops.upsample_argmax(np.ascontiguousarray(out), info.src_hw, letterbox=info)
    if np.issubdtype(out.dtype, np.integer):
        while out.ndim > 2 and out.shape[0] == 1:
            out = out[0]
        if out.ndim != 2:
            raise ModelError(f"expected integer labels shaped (h, w) per image, got {output.shape}")
        return _unletterbox_nearest(out, info)
    raise ModelError(f"model output has dtype {output.dtype}; expected float logits or int labels")


def _unletterbox_nearest(labels: np.ndarray, info: "ops.LetterboxInfo") -> np.ndarray:
    (H, W), (h_in, w_in), (rh, rw) = info.src_hw, info.dst_hw, info.resized_hw
    h, w = labels.shape
    ys = ((np.arange(H) + 0.5) * rh / H + info.pad_top) * h / h_in
    xs = ((np.arange(W) + 0.5) * rw / W + info.pad_left) * w / w_in
    yi = np.clip(ys.astype(np.int64), 0, h - 1)
    xi = np.clip(xs.astype(np.int64), 0, w - 1)
    out = labels[yi[:, None], xi[None, :]]
    return out.astype(np.uint8) if out.max(initial=0) <= 255 and out.min(initial=0) >= 0 else out.astype(np.int32)


# ----------------------------------------------------------------------------- predictor


class Predictor:
    """What every predictor shares: a backend, its ModelMeta, and the three stages
    ``pre`` (frame -> input tensor, letterbox info), ``infer`` (tensor -> batch outputs; index
    ``[i]`` gives image i's output) and ``post`` (one image's output -> the result payload),
    which a threaded pipeline can overlap. Subclasses set ``task`` and implement ``infer``,
    ``post`` and ``make_result``.
    """

    task = ""

    def __init__(self, backend: Backend, meta: ModelMeta) -> None:
        if meta.task != self.task:
            raise ModelError(f"{backend.path}: a {meta.task!r} model cannot run in {type(self).__name__}; "
                             "use edgeseg.load(), which picks the predictor from the model's task")
        self.backend = backend
        self.meta = meta
        self._in = _spec(backend.input_specs, meta.input_name, "input", backend)
        if self._in.dtype not in _FLOAT_INPUTS:
            raise ModelError(f"{backend.path}: input {self._in.name!r} has dtype {self._in.dtype}; "
                             "edgeseg feeds float32 or float16 images")
        self.input_dtype = self._in.dtype
        self._batch_dynamic = self._in.static_dim(0) is None

    @property
    def input_size(self) -> tuple[int, int]:
        """Network input (height, width) that frames are letterboxed to."""
        return self.meta.input_size

    @property
    def classes(self) -> list[str]:
        return list(self.meta.classes)

    @property
    def path(self) -> Path:
        """The model file / checkpoint directory."""
        return self.backend.path

    @property
    def backend_name(self) -> str:
        return self.backend.name

    def pre(self, frame: np.ndarray) -> tuple[np.ndarray, "ops.LetterboxInfo"]:
        """Stage 1: letterbox a BGR frame -> ((1, 3, h, w) input tensor, LetterboxInfo)."""
        return preprocess(frame, self.meta, self.input_dtype)

    def infer(self, tensor: np.ndarray) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def post(self, output: Any, info: "ops.LetterboxInfo") -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def make_result(self, payload: Any, frame: np.ndarray, timings: dict[str, float]) -> Any:
        """Wrap what :meth:`post` returned into this task's result type."""
        raise NotImplementedError  # pragma: no cover - abstract

    def __call__(self, frame: np.ndarray) -> Any:
        """Segment one BGR uint8 (H, W, 3) frame."""
        t0 = time.perf_counter()
        x, info = self.pre(frame)
        t1 = time.perf_counter()
        out = self.infer(x)
        t2 = time.perf_counter()
        payload = self.post(out[0], info)
        t3 = time.perf_counter()
        return self.make_result(payload, frame, _ms(t0, t1, t2, t3))

    def predict_batch(self, frames: Sequence[np.ndarray]) -> list[Any]:
        """Segment several frames; one backend call when the model has a dynamic batch axis.

        The batched inference time is split evenly over the results' ``"infer"`` timings.
        """
        frames = list(frames)
        if not frames:
            return []
        if not self._batch_dynamic or len(frames) == 1:
            return [self(f) for f in frames]
        t0 = time.perf_counter()
        pre = [self.pre(f) for f in frames]
        t1 = time.perf_counter()
        out = self.infer(np.concatenate([p[0] for p in pre]))
        t2 = time.perf_counter()
        results = []
        n = len(frames)
        for i, (f, (_, info)) in enumerate(zip(frames, pre)):
            s = time.perf_counter()
            payload = self.post(out[i], info)
            e = time.perf_counter()
            timings = {"pre": (t1 - t0) * 1e3 / n, "infer": (t2 - t1) * 1e3 / n, "post": (e - s) * 1e3}
            results.append(self.make_result(payload, f, timings))
        return results

    def stream(self, frames: Iterable[np.ndarray] | Any, **options: Any) -> Iterator[Any]:
        """Segment a stream in the threaded pipeline (pre/infer/post overlap), yielding results
        in order as they are ready.

        ``frames`` is an iterable of BGR frames (every frame, in order), or a source spec: a
        video/image path, folder, glob, URL, camera index or "synthetic" (live sources yield the
        newest frame). The results are this task's result objects with ``index``, ``t_capture``,
        ``age_ms``, ``stats`` ... added (see :mod:`edgeseg.pipeline.stream`). ``options`` go to
        :func:`edgeseg.pipeline.stream` (``max_frames``, ``sinks``, ``smooth``, ``on_result``...).
        """
        from ..pipeline.stream import stream

        yield from stream(self, frames, **options)

    def warmup(self, n: int = 1) -> None:
        """Run ``n`` grey frames through the model (first-call allocations, CUDA init)."""
        h, w = self.input_size
        frame = np.full((h, w, 3), self.meta.pad_value, np.uint8)
        for _ in range(n):
            self(frame)

    def describe(self) -> dict[str, Any]:
        """JSON-able summary of the model and backend (for `edgeseg info` / logs)."""
        return {"meta": self.meta.to_dict(), **self.backend.describe()}

    def __repr__(self) -> str:
        m = self.meta
        return (f"{type(self).__name__}({m.arch}, {m.num_classes} classes, input {m.input_size[0]}x"
                f"{m.input_size[1]}, {self.backend.name}/{self.backend.provider})")


class SemanticPredictor(Predictor):
    """Runs a semantic segmentation model on BGR uint8 frames.

    Build it with :func:`edgeseg.runtime.load`. Call it on a frame to get a
    :class:`SemanticResult` with per-stage timings in milliseconds.
    """

    task = "semantic"

    def __init__(self, backend: Backend, meta: ModelMeta) -> None:
        super().__init__(backend, meta)
        self._out = _spec(backend.output_specs, meta.output_names[0], "output", backend)
        self._stride_known = meta.output_stride > 0

    def infer(self, tensor: np.ndarray) -> np.ndarray:
        """Stage 2: run the backend -> the model's first output (e.g. (N, C, h, w) logits)."""
        out = self.backend.infer({self._in.name: tensor})[self._out.name]
        self._learn_stride(out)
        return out

    def post(self, output: np.ndarray, info: "ops.LetterboxInfo") -> np.ndarray:
        """Stage 3: one image's output (index the batch first) -> labels at frame size."""
        return postprocess(output, info)

    def make_result(self, payload: np.ndarray, frame: np.ndarray, timings: dict[str, float]) -> SemanticResult:
        return SemanticResult(payload, frame, self.meta, timings)

    def _learn_stride(self, out: np.ndarray) -> None:
        # Metadata-less models with dynamic shapes: record the stride once it is observed.
        if not self._stride_known and out.ndim == 4 and out.shape[2] > 0:
            self.meta.output_stride = max(1, round(self.input_size[0] / out.shape[2]))
            self._stride_known = True


def _ms(t0: float, t1: float, t2: float, t3: float) -> dict[str, float]:
    return {"pre": (t1 - t0) * 1e3, "infer": (t2 - t1) * 1e3, "post": (t3 - t2) * 1e3}


def _spec(specs: list[TensorSpec], name: str, kind: str, backend: Backend) -> TensorSpec:
    for s in specs:
        if s.name == name:
            return s
    raise ModelError(
        f"{backend.path}: the metadata names {kind} {name!r} but the model's {kind}s are "
        f"{[s.name for s in specs]}; re-export the model with edgeseg"
    )


# ----------------------------------------------------------------------------- load


#: The packaged default model of each task (files in edgeseg/assets).
DEFAULT_MODELS = {"semantic": defaults.DEFAULT_SEMANTIC_MODEL, "instance": defaults.DEFAULT_INSTANCE_MODEL}


def default_model_path(task: str = "semantic") -> Path:
    """Where the packaged default model of ``task`` lives (it may be absent in a source tree)."""
    if task not in DEFAULT_MODELS:
        raise ModelError(f"no default model for task {task!r}; tasks: {sorted(DEFAULT_MODELS)}")
    return ASSETS / DEFAULT_MODELS[task]


def load(
    path: str | Path | None = None,
    backend: str = "auto",
    *,
    classes: Sequence[str] | None = None,
    num_classes: int | None = None,
    input_size: int | tuple[int, int] | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    output_stride: int | None = None,
    palette: Sequence[Sequence[int]] | None = None,
    providers: Sequence[Any] | None = None,
    device: str | None = None,
    threads: int | None = None,
    fp16: bool | None = None,
    score_threshold: float | None = None,
    iou_threshold: float | None = None,
    mask_threshold: float | None = None,
    max_detections: int | None = None,
    task: str = "semantic",
) -> Predictor:
    """Load a deployable model and return its predictor: a :class:`SemanticPredictor`, or an
    :class:`~edgeseg.runtime.instance.InstancePredictor` for instance models (by ``meta.task``).

    Args:
        path: an ``.onnx`` file, or a checkpoint directory / ``model.safetensors`` (torch
            backend). None loads the model shipped in ``edgeseg/assets`` for ``task``.
        backend: "auto" (by path: see ``edgeseg.runtime.backends.SUFFIXES``), "onnxruntime"
            or "torch".
        classes, num_classes, input_size, mean, std, output_stride, palette: facts about the
            model. An edgeseg export carries them all in its metadata; here they override it
            (class names, normalisation) and must agree with the graph (class count, static
            input size). A foreign ONNX without edgeseg metadata needs them: the class count
            and input size are read from static graph shapes when possible, ``mean``/``std``
            never are (a wrong guess gives silently wrong masks), so they must be given; the
            error lists exactly what is missing.
        providers, device, threads: ONNX Runtime execution providers / "cpu" | "cuda[:N]" /
            intra-op threads. ``device``/``threads`` also apply to the torch backend.
        fp16: torch backend only: run in half precision.
        score_threshold, iou_threshold, mask_threshold, max_detections: instance models only:
            post-processing settings (default: the model's metadata, then edgeseg.defaults).
        task: which shipped model ``path=None`` loads: "semantic" or "instance".

    Raises:
        InputFileError: the file does not exist (or no default model is packaged).
        ModelError: the file is not a valid model, or facts are missing / contradictory.
        BackendError: unknown or unavailable backend, or an option the backend does not take.
    """
    if path is None:
        path = default_model_path(task)
        if not path.exists():
            raise InputFileError(
                f"no default model is packaged with this edgeseg (expected {path}); pass a model "
                "path, e.g. edgeseg.load('model.onnx'), after `edgeseg export` of a checkpoint"
            )
    options = {k: v for k, v in dict(providers=providers, device=device, threads=threads,
                                      fp16=fp16).items() if v is not None}
    be = open_backend(path, backend, **options)
    meta = resolve_meta(be, classes=classes, num_classes=num_classes, input_size=input_size,
                        mean=mean, std=std, output_stride=output_stride, palette=palette)
    thresholds = {k: v for k, v in dict(score=score_threshold, iou=iou_threshold, mask=mask_threshold,
                                        max_detections=max_detections).items() if v is not None}
    if thresholds and meta.task != "instance":
        raise ModelError(f"{path} is a {meta.task} model; {sorted(thresholds)} threshold options apply "
                         "to instance models only")
    return predictor_class(meta)(be, meta, **thresholds)


def predictor_class(task: str | ModelMeta) -> type[Predictor]:
    """The Predictor subclass that runs models of ``task`` ("semantic" or "instance"), or the one
    for a model's ModelMeta: instance models whose ``extra["head"]`` is "maskrcnn" (post-NMS boxes,
    labels, scores and RoI masks) run in :class:`~edgeseg.runtime.maskrcnn.MaskRCNNPredictor`."""
    from .instance import InstancePredictor

    if isinstance(task, ModelMeta):
        from .maskrcnn import MaskRCNNPredictor, is_maskrcnn_meta

        if is_maskrcnn_meta(task):
            return MaskRCNNPredictor
        task = task.task
    classes: dict[str, type[Predictor]] = {c.task: c for c in (SemanticPredictor, InstancePredictor)}
    if task not in classes:
        raise ModelError(f"no predictor for task {task!r}; known tasks: {sorted(classes)}")
    return classes[task]


def resolve_meta(backend: Backend, **facts: Any) -> ModelMeta:
    """The ModelMeta to run ``backend`` with: its stored metadata with ``facts`` applied, or,
    for a model without metadata, one built from ``facts`` plus static graph shapes."""
    facts = {k: v for k, v in facts.items() if v is not None}
    if "input_size" in facts:
        facts["input_size"] = _pair(facts["input_size"])
    stored = backend.meta
    if stored is not None:
        return _override(stored, backend, facts)
    return _from_graph(backend, facts)


def _pair(v: Any) -> tuple[int, int]:
    if isinstance(v, int):
        v = (v, v)
    try:
        h, w = (int(x) for x in v)
    except (TypeError, ValueError):
        raise ModelError(f"input_size must be an int or (height, width), got {v!r}") from None
    if h <= 0 or w <= 0:
        raise ModelError(f"input_size must be positive, got {(h, w)}")
    return h, w


def _classes_from(facts: dict[str, Any], n_graph: int | None, where: str) -> list[str] | None:
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


def _check_size(size: tuple[int, int], spec: TensorSpec, where: str) -> None:
    static = (spec.static_dim(2), spec.static_dim(3))
    for got, want, axis in zip(size, static, ("height", "width")):
        if want is not None and got != want:
            raise ModelError(
                f"input_size={size} but {where} has a fixed input {axis} of {want}; "
                f"use input_size={tuple(d or s for d, s in zip(static, size))} or re-export with "
                "dynamic=True"
            )


def _override(stored: ModelMeta, backend: Backend, facts: dict[str, Any]) -> ModelMeta:
    where = str(backend.path)
    names = _classes_from(facts, stored.num_classes, where)
    changes: dict[str, Any] = {}
    if names is not None and "classes" in facts:
        changes["classes"] = names
    if "input_size" in facts and facts["input_size"] != stored.input_size:
        in_spec = _spec(backend.input_specs, stored.input_name, "input", backend)
        _check_size(facts["input_size"], in_spec, where)
        changes["input_size"] = facts["input_size"]
    for k in ("mean", "std", "output_stride", "palette"):
        if k in facts:
            changes[k] = facts[k]
    return stored.replace(**changes) if changes else stored


_HOW = {
    "classes": "classes=[...names...] or num_classes=N (CLI: --classes a,b,c or --num-classes N)",
    "input_size": "input_size=(height, width) (CLI: --imgsz HxW); the model's input "
                  "height/width are dynamic, so they cannot be read from the graph",
    "mean/std": "mean=(R, G, B) and std=(R, G, B) on the 0..255 scale, the normalisation the "
                f"model was trained with (CLI: --mean R,G,B --std R,G,B); ImageNet statistics are "
                f"mean={defaults.MEAN_RGB} std={defaults.STD_RGB}, inputs scaled to 0..1 use "
                "mean=(0, 0, 0) std=(255, 255, 255)",
}


def _from_graph(backend: Backend, facts: dict[str, Any]) -> ModelMeta:
    from .maskrcnn import maskrcnn_meta_from_graph

    two_stage = maskrcnn_meta_from_graph(backend, facts)  # boxes/labels/scores/masks outputs
    if two_stage is not None:
        return two_stage
    where = str(backend.path)
    ins, outs = backend.input_specs, backend.output_specs
    if not ins or not outs:
        raise ModelError(f"{where} has no inputs or no outputs")
    inp, out = ins[0], outs[0]
    if len(inp.shape) != 4 or inp.static_dim(1) not in (None, 3):
        raise ModelError(f"{where}: input {inp.name!r} has shape {inp.shape}; edgeseg needs an "
                         "NCHW image input with 3 channels")
    n_graph = out.static_dim(1) if len(out.shape) == 4 and out.dtype.kind == "f" else None
    names = _classes_from(facts, n_graph, where)
    if names is None and n_graph is not None:
        names = [f"class_{i}" for i in range(n_graph)]
    size = facts.get("input_size")
    if size is not None:
        _check_size(size, inp, where)
    elif inp.static_dim(2) and inp.static_dim(3):
        size = (inp.static_dim(2), inp.static_dim(3))
    missing = [k for k, have in (("classes", names is not None), ("input_size", size is not None),
                                 ("mean/std", "mean" in facts and "std" in facts)) if not have]
    if missing:
        lines = "\n".join(f"  - {k}: pass {_HOW[k]}" for k in missing)
        raise ModelError(
            f"{where} carries no edgeseg metadata (it was not exported by `edgeseg export`), and "
            f"these facts cannot be read from the model:\n{lines}\n"
            "or re-export the model with `edgeseg export` so that they are stored inside it"
        )
    assert names is not None and size is not None
    stride = facts.get("output_stride")
    if stride is None and len(out.shape) == 4 and out.static_dim(2) and inp.static_dim(2):
        stride = max(1, round(inp.static_dim(2) / out.static_dim(2)))
    return ModelMeta(
        task="semantic",
        classes=names,
        input_size=size,
        arch=Path(where).stem,
        mean=facts["mean"],
        std=facts["std"],
        output_stride=int(stride) if stride is not None else 0,  # 0: learnt on the first frame
        input_name=inp.name,
        output_names=[o.name for o in outs],
        palette=facts.get("palette") or [],
        dynamic=inp.static_dim(2) is None or inp.static_dim(3) is None,
        extra={"source": "user-supplied facts (no edgeseg metadata in the model)"},
    )
