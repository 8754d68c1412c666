"""The one inference-backend interface: dict of numpy arrays in, dict of numpy arrays out.

In the spirit of mmdeploy's backend wrappers, minus their ``torch.nn.Module`` base class: a
backend here is plain Python over numpy, so the ONNX Runtime path never needs torch.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Mapping, Union

import numpy as np

from ...errors import BackendError
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


class Backend(ABC):
    """An inference engine holding one loaded model.

    Subclasses set ``name`` (the registry key) and ``suffixes`` (what ``backend="auto"`` maps
    to them; ``"<dir>"`` stands for a directory), and list the keyword options they accept in
    ``options``. Construction loads the model; :meth:`infer` runs it.
    """

    #: Registry key, e.g. "onnxruntime".
    name: ClassVar[str] = ""
    #: File suffixes (lower case, with the dot) or "<dir>" that ``backend="auto"`` routes here.
    suffixes: ClassVar[tuple[str, ...]] = ()
    #: Keyword options accepted by ``__init__`` (anything else is an error, not silently ignored).
    options: ClassVar[tuple[str, ...]] = ()
    #: What to install when :meth:`is_available` is False.
    install_hint: ClassVar[str] = ""

    @classmethod
    @abstractmethod
    def is_available(cls) -> bool:
        """True when this backend's engine can be imported on this machine (cheap; no model)."""

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
