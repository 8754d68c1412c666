"""The Predictor base: a backend, its ModelMeta and three stages (pre, infer, post) that a threaded
pipeline can overlap. One subclass per model kind lives in its own module (:mod:`.semantic`,
:mod:`.instance`, :mod:`.maskrcnn`); :func:`edgeseg.runtime.load` picks it through the kind
registry (:mod:`.kinds`).
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from .. import ops
from ..errors import ModelError
from ..meta import ModelMeta
from .backends import Backend, TensorSpec

_FLOAT_INPUTS = (np.dtype(np.float32), np.dtype(np.float16))


def preprocess(frame: np.ndarray, meta: ModelMeta, dtype: Any = np.float32,
               input_size: tuple[int, int] | None = None) -> tuple[np.ndarray, "ops.LetterboxInfo"]:
    """Letterbox a BGR uint8 frame into the input tensor the model takes: normalised RGB
    (1, 3, h, w) in ``dtype``, or what the metadata names instead (``meta.layout`` "NHWC",
    ``extra["channel_order"]`` "BGR", ``extra["input_dtype"]`` "uint8" raw pixels).

    ``meta.extra["resize"] == "opencv-uint8"`` (models whose tool resizes with OpenCV into uint8
    before normalising, as Ultralytics does) resizes with ``cv2.resize`` first, so the model sees
    exactly the pixels its tool would feed; the fused C++ letterbox then only pads and normalises.
    """
    size = input_size or meta.input_size
    frame = np.ascontiguousarray(frame)
    info = None
    if meta.extra.get("resize") == "opencv-uint8" and frame.ndim == 3:
        import cv2

        info = ops.letterbox_info(frame.shape[:2], size)
        rh, rw = info.resized_hw
        if (rh, rw) != frame.shape[:2]:
            frame = cv2.resize(frame, (rw, rh), interpolation=cv2.INTER_LINEAR)
        else:
            info = None
    x, own = ops.letterbox(frame, size, mean=meta.mean, std=meta.std, dtype=dtype, pad_value=meta.pad_value)
    extra = meta.extra
    if meta.layout != "NCHW" or extra.get("channel_order") == "BGR" or extra.get("input_dtype") == "uint8":
        if extra.get("channel_order") == "BGR":
            x = x[:, ::-1]
        if meta.layout == "NHWC":
            x = x.transpose(0, 2, 3, 1)
        x = np.clip(np.rint(x), 0, 255).astype(np.uint8) if extra.get("input_dtype") == "uint8" \
            else np.ascontiguousarray(x)
    return x, info or own


# ----------------------------------------------------------------------------- predictor


class Predictor:
    """What every predictor shares: a backend, its ModelMeta, and the three stages
    ``pre`` (frame -> input tensor, letterbox info), ``infer`` (tensor -> batch outputs; index
    ``[i]`` gives image i's output) and ``post`` (one image's output -> the result payload),
    which a threaded pipeline can overlap. Subclasses set ``task`` and implement ``infer``,
    ``post`` and ``make_result``.
    """

    task = ""

    #: The output roles this kind's post-processing reads (the convention maps outputs to them).
    roles: tuple[str, ...] = ()

    def __init__(self, backend: Backend, meta: ModelMeta) -> None:
        from .conventions import convention_of

        if meta.task != self.task:
            raise ModelError(f"{backend.path}: a {meta.task!r} model cannot run in {type(self).__name__}; "
                             "use edgeseg.load(), which picks the predictor from the model's kind")
        self.backend = backend
        self.meta = meta
        self.convention = convention_of(meta)
        self._in = _spec(backend.input_specs, meta.input_name, "input", backend)
        for name in meta.output_names:
            _spec(backend.output_specs, name, "output", backend)
        self._uint8 = meta.extra.get("input_dtype") == "uint8"
        want = (np.dtype(np.uint8),) if self._uint8 else _FLOAT_INPUTS
        if self._in.dtype not in want:
            raise ModelError(f"{backend.path}: input {self._in.name!r} has dtype {self._in.dtype}; the metadata "
                             f"says the model takes {'uint8' if self._uint8 else 'float32 or float16'} images")
        self.input_dtype = np.dtype(np.float32) if self._uint8 else self._in.dtype
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

    def run(self, tensor: np.ndarray) -> dict[str, np.ndarray]:
        """Run the backend and map its outputs to this kind's roles (batch axis first)."""
        return self.convention.adapt(self.backend.infer({self._in.name: tensor}), self.meta, self.roles)

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
