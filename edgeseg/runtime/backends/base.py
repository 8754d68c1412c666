"""The one inference-backend interface: dict of numpy arrays in, dict of numpy arrays out.

In the spirit of mmdeploy's backend wrappers, minus their ``torch.nn.Module`` base class: a
backend here is plain Python over numpy, so the ONNX Runtime path never needs torch.
"""
from __future__ import annotations

import importlib.util
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar, Mapping, Union

import numpy as np

from ...errors import BackendError, InputFileError, ModelError
from ...meta import ModelMeta

#: One dimension of a tensor: an int when static, a str (symbolic name) or None when dynamic.
Dim = Union[int, str, None]


@dataclass(frozen=True)
class TensorSpec:
    """Name, shape and dtype of one model input or output.

    ``shape`` holds ints for static dimensions and a str (symbolic name) or None for dynamic ones.
    ``dtype`` is a numpy dtype (``np.dtype('float32')``, ...).
    """

    name: str
    shape: tuple[Dim, ...]
    dtype: np.dtype

    def static_dim(self, axis: int) -> int | None:
        """The size of ``axis`` if it is static (a positive int), else None."""
        if axis >= len(self.shape) or axis < -len(self.shape):
            return None
        d = self.shape[axis]
        return d if isinstance(d, int) and d > 0 else None

    @property
    def is_static(self) -> bool:
        return all(isinstance(d, int) and d > 0 for d in self.shape)


def positive_threads(threads: int | None) -> int | None:
    """A thread-count option as an int (None: the engine's choice); BackendError when below 1."""
    if threads is None:
        return None
    if int(threads) < 1:
        raise BackendError(f"threads must be >= 1, got {threads}")
    return int(threads)


def stored_meta(value: Any, where: Any, parse: Callable[[Any], ModelMeta] = ModelMeta.from_json) -> ModelMeta:
    """The ModelMeta an artefact stores: JSON text or UTF-8 bytes (or, with ``parse=ModelMeta.from_dict``,
    the decoded object); a damaged one is a ModelError that names ``where`` it was read from."""
    try:
        return parse(value.decode("utf-8") if isinstance(value, bytes) else value)
    except (ModelError, UnicodeDecodeError) as e:
        raise ModelError(f"{where}: {e}") from None


def find_model_file(path: str | Path, suffix: str, engine: str, export_format: str | None = None) -> Path:
    """The model file for ``path``: the file itself, or the one ``*<suffix>`` file in a directory
    (``*.rejected.*`` files, kept by a failed export, are ignored), with its ``.bin`` weights
    beside it. With ``export_format``, a file of another suffix is refused, saying how to export one."""
    p = Path(path)
    if p.is_dir():
        found = sorted(x for x in p.glob(f"*{suffix}") if ".rejected." not in x.name)
        if len(found) != 1:
            what = "no" if not found else f"{len(found)} ({', '.join(x.name for x in found)})"
            raise ModelError(f"{str(p)!r} holds {what} {engine} model {suffix} files; pass the {suffix} path itself")
        p = found[0]
    if export_format is not None and p.suffix.lower() != suffix:
        raise ModelError(f"{str(p)!r} is not an {engine} model ({suffix}); export one with "
                         f"`edgeseg export CKPT --format {export_format} --out DIR`")
    if not p.is_file():
        raise InputFileError(f"{engine} model not found: {str(p)!r}; check the path")
    if not p.with_suffix(".bin").is_file():
        raise ModelError(f"{str(p)!r} has no weights file {p.with_suffix('.bin').name!r} beside it; "
                         f"copy the {suffix} and .bin together")
    return p


class Backend(ABC):
    """An inference engine holding one loaded model.

    Subclasses set ``name`` (the registry key) and ``suffixes`` (what ``backend="auto"`` maps
    to them; ``"<dir>"`` stands for a directory), name the module of their engine in
    ``engine_module`` (or override :meth:`is_available`), and list the keyword options they
    accept in ``options``. Construction loads the model; :meth:`infer` runs it.
    """

    #: Registry key, e.g. "onnxruntime".
    name: ClassVar[str] = ""
    #: File suffixes (lower case, with the dot) or "<dir>" that ``backend="auto"`` routes here.
    suffixes: ClassVar[tuple[str, ...]] = ()
    #: Keyword options accepted by ``__init__`` (anything else is an error, not silently ignored).
    options: ClassVar[tuple[str, ...]] = ()
    #: What to install when :meth:`is_available` is False.
    install_hint: ClassVar[str] = ""
    #: The importable module of the engine, e.g. "onnxruntime".
    engine_module: ClassVar[str] = ""

    @classmethod
    def is_available(cls) -> bool:
        """True when this backend's engine can be imported on this machine (cheap; no model)."""
        return bool(cls.engine_module) and importlib.util.find_spec(cls.engine_module) is not None

    def __init__(self, path: str | Path, **options: Any) -> None:
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            raise BackendError(
                f"backend {self.name!r} does not take option(s) {unknown}; "
                f"it accepts {list(self.options) or 'no options'}"
            )
        if not self.is_available():
            raise BackendError(f"backend {self.name!r} is not available here: {self.install_hint}")
        self.path = Path(path)

    # Subclasses either set ``_inputs``, ``_outputs`` and ``_meta`` while loading the model, or
    # override these three properties.
    _inputs: list[TensorSpec]
    _outputs: list[TensorSpec]
    _meta: ModelMeta | None

    @property
    def input_specs(self) -> list[TensorSpec]:
        """The model's inputs, in the model's order."""
        return list(self._inputs)

    @property
    def output_specs(self) -> list[TensorSpec]:
        """The model's outputs, in the model's order."""
        return list(self._outputs)

    @property
    def meta(self) -> ModelMeta | None:
        """The ModelMeta stored inside the artefact, or None when it carries none."""
        return self._meta

    @property
    def props(self) -> dict[str, str]:
        """The artefact's raw key/value metadata (ONNX ``metadata_props``), for recognising models
        exported by other tools; empty where the format has none."""
        return dict(getattr(self, "_props", {}))

    @property
    @abstractmethod
    def device(self) -> str:
        """Where the model runs: "cpu", "cuda", "cuda:0", ..."""

    @property
    def provider(self) -> str:
        """The engine actually executing the model (e.g. "CUDAExecutionProvider")."""
        return self.name

    @abstractmethod
    def infer(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the model. Keys are input / output names; values are numpy arrays."""

    def _take_inputs(self, inputs: Mapping[str, np.ndarray], model: str) -> list[np.ndarray]:
        """The arrays of the model's inputs, in the model's order; BackendError naming each one
        that ``inputs`` lacks (``model`` says which model, e.g. "ncnn model m.ncnn.param")."""
        missing = [s.name for s in self._inputs if s.name not in inputs]
        if missing:
            what = repr(missing[0]) if len(missing) == 1 else f"(s) {missing}"
            raise BackendError(f"{model} needs input {what}; got {sorted(inputs)}")
        return [inputs[s.name] for s in self._inputs]

    def _run_error(self, engine: str, file: str, inputs: Mapping[str, np.ndarray], error: Exception) -> BackendError:
        """The error for an engine that failed to run the model: the inputs it got and wanted."""
        got = {k: (tuple(v.shape), str(v.dtype)) for k, v in inputs.items()}
        want = {s.name: (s.shape, str(s.dtype)) for s in self._inputs}
        return BackendError(f"{engine} failed to run {file} on inputs {got} (model expects {want}): {error}")

    def describe(self) -> dict[str, Any]:
        """A JSON-able summary (backend, provider, device, path, tensor specs)."""

        def spec(s: TensorSpec) -> dict[str, Any]:
            return {"name": s.name, "shape": list(s.shape), "dtype": str(s.dtype)}

        return {
            "backend": self.name,
            "provider": self.provider,
            "device": self.device,
            "path": str(self.path),
            "inputs": [spec(s) for s in self.input_specs],
            "outputs": [spec(s) for s in self.output_specs],
        }

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r}, provider={self.provider!r})"


class CPUBackend(Backend):
    """A backend that runs on the CPU only: its ``device`` option may be None or "cpu"."""

    def __init__(self, path: str | Path, **options: Any) -> None:
        super().__init__(path, **options)
        device = options.get("device")
        if device not in (None, "cpu", "CPU"):
            raise BackendError(f"device={device!r}: the {self.name} backend runs on the CPU here; use device='cpu'")

    @property
    def device(self) -> str:
        return "cpu"
