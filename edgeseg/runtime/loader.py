"""``load(path)``: open a backend, resolve the model's ModelMeta and build the predictor of its kind."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from .. import defaults
from ..errors import InputFileError, ModelError
from ..meta import ModelMeta
from .backends import Backend, open_backend
from .base import Predictor
from .kinds import kind_of_meta

ASSETS = Path(__file__).resolve().parent.parent / "assets"


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
    layout: str | None = None,
    channel_order: str | None = None,
    binary_output: str | None = None,
    binary_threshold: float | None = None,
) -> Predictor:
    """Load a deployable model and return the predictor of its kind (semantic, single-stage
    instance, Mask R-CNN; see :mod:`edgeseg.runtime.kinds`).

    A model written by ``edgeseg export`` describes itself. A model exported by another tool is
    recognised from what its file says by an output convention (:mod:`edgeseg.runtime.conventions`:
    Ultralytics YOLO-seg, semantic logits at any stride, one-channel logits/probabilities, argmax
    labels, Mask R-CNN; NCHW or NHWC, float or uint8 input); ``edgeseg info MODEL`` says which,
    and a file that matches none is refused with what was seen.

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
        layout: "NCHW" or "NHWC" input, where the graph's shape cannot tell.
        channel_order: "RGB" (default) or "BGR": the colour order the model was trained on.
        binary_output, binary_threshold: one-channel models: "logits" or "probabilities" (read
            from the graph's final op when possible) and the foreground probability threshold.

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
                        mean=mean, std=std, output_stride=output_stride, palette=palette, layout=layout,
                        channel_order=channel_order, binary_output=binary_output,
                        binary_threshold=binary_threshold)
    thresholds = {k: v for k, v in dict(score=score_threshold, iou=iou_threshold, mask=mask_threshold,
                                        max_detections=max_detections).items() if v is not None}
    if thresholds and meta.task != "instance":
        raise ModelError(f"{path} is a {meta.task} model; {sorted(thresholds)} threshold options apply "
                         "to instance models only")
    return predictor_class(meta)(be, meta, **thresholds)


def predictor_class(meta: ModelMeta) -> type[Predictor]:
    """The Predictor subclass that runs the model ``meta`` describes (its kind's)."""
    return kind_of_meta(meta).predictor


def resolve_meta(backend: Backend, **facts: Any) -> ModelMeta:
    """The ModelMeta to run ``backend`` with: its stored metadata with ``facts`` applied, or, for
    a model from another tool, what the first matching output convention reads from the file
    plus ``facts``."""
    from .conventions import recognise

    facts = {k: v for k, v in facts.items() if v is not None}
    return recognise(backend, facts)
