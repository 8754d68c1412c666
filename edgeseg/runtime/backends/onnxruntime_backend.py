"""ONNX Runtime backend: runs .onnx files; the deployment path (no torch)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ... import defaults
from ...errors import BackendError, ModelError
from ...meta import ModelMeta
from .registry import register_backend
from .base import Backend, TensorSpec, positive_threads, stored_meta

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"

# ONNX Runtime's type strings -> numpy dtypes (the ones a segmentation model plausibly uses).
_ORT_DTYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(uint8)": np.uint8,
    "tensor(int8)": np.int8,
    "tensor(int32)": np.int32,
    "tensor(int64)": np.int64,
    "tensor(bool)": np.bool_,
}


def _dtype(ort_type: str) -> np.dtype:
    if ort_type not in _ORT_DTYPES:
        raise ModelError(f"model tensor type {ort_type} is not supported by edgeseg")
    return np.dtype(_ORT_DTYPES[ort_type])


def _dim(d: Any) -> int | str | None:
    return d if isinstance(d, (int, str)) else None


@register_backend
class OnnxRuntimeBackend(Backend):
    """Runs an ONNX model with ONNX Runtime.

    Options:
        providers: execution providers in priority order (names or (name, options) pairs).
            Default: CUDA first when this onnxruntime build has it, then CPU.
        device: "cpu", "cuda" or "cuda:N" instead of ``providers``; "cuda" fails loudly when the
            CUDA provider does not actually run the model.
        threads: ``intra_op_num_threads`` of the session (default: ONNX Runtime's choice).
    The provider actually in use (ONNX Runtime silently falls back to CPU when CUDA cannot be
    initialised) is read back from the session and exposed as :attr:`provider`.
    """

    name = "onnxruntime"
    suffixes = (".onnx",)
    options = ("providers", "device", "threads")
    install_hint = "pip install onnxruntime (or onnxruntime-gpu for CUDA)"
    engine_module = "onnxruntime"

    def __init__(
        self,
        path: str | Path,
        providers: Sequence[str | tuple[str, dict]] | None = None,
        device: str | None = None,
        threads: int | None = None,
    ) -> None:
        super().__init__(path, providers=providers, device=device, threads=threads)
        import onnxruntime as ort

        from ..model_files import check_onnx

        check_onnx(self.path, allow_custom_ops=os.environ.get(defaults.ALLOW_CUSTOM_OPS_ENV) == "1")
        requested = self._providers(ort, providers, device)
        so = ort.SessionOptions()
        so.log_severity_level = 3  # errors only; fallbacks are reported through .provider
        if threads is not None:
            so.intra_op_num_threads = positive_threads(threads)
        try:
            self.session = ort.InferenceSession(str(self.path), sess_options=so, providers=requested)
        except Exception as e:  # ORT raises its own (non-public) exception types
            msg = str(e)
            if any(k in msg for k in ("INVALID_PROTOBUF", "Protobuf parsing failed", "No graph was found")):
                raise ModelError(
                    f"{str(self.path)!r} is not a valid ONNX model (it could not be parsed); "
                    "check that it is an .onnx export and that the file is not truncated"
                ) from None
            raise ModelError(f"ONNX Runtime could not load {str(self.path)!r}: {msg}") from None
        self._active = list(self.session.get_providers())
        if device is not None and device.startswith("cuda") and CUDA not in self._active:
            raise BackendError(
                f"device={device!r} was asked for but ONNX Runtime runs {self.path.name} on "
                f"{self._active}; install onnxruntime-gpu with a matching CUDA, or use device='cpu'"
            )
        try:
            self._inputs = [TensorSpec(i.name, tuple(_dim(d) for d in i.shape), _dtype(i.type))
                            for i in self.session.get_inputs()]
            self._outputs = [TensorSpec(o.name, tuple(_dim(d) for d in o.shape), _dtype(o.type))
                             for o in self.session.get_outputs()]
            self._output_names = [o.name for o in self._outputs]
            self._meta = self._read_meta()
        except UnicodeDecodeError:  # ONNX Runtime decodes names and metadata as UTF-8 only when asked
            raise ModelError(f"{str(self.path)!r} holds tensor names or metadata that are not valid UTF-8 (a "
                             "corrupt or tampered file); re-export it") from None

    @staticmethod
    def _providers(ort: Any, providers: Sequence[Any] | None, device: str | None) -> list[Any]:
        available = ort.get_available_providers()
        if providers is not None and device is not None:
            raise BackendError("give either providers or device, not both")
        if providers is not None:
            names = [p[0] if isinstance(p, (tuple, list)) else p for p in providers]
            missing = [n for n in names if n not in available]
            if missing:
                raise BackendError(
                    f"execution provider(s) {missing} are not in this onnxruntime build; "
                    f"available: {available}"
                )
            return list(providers)
        if device is None:
            return [CUDA, CPU] if CUDA in available else [CPU]
        if device == "cpu":
            return [CPU]
        if device.startswith("cuda"):
            if CUDA not in available:
                raise BackendError(
                    f"device={device!r}: this onnxruntime build has no CUDA provider "
                    f"(available: {available}); pip install onnxruntime-gpu, or use device='cpu'"
                )
            idx = int(device.split(":", 1)[1]) if ":" in device else 0
            return [(CUDA, {"device_id": idx}), CPU]
        raise BackendError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {device!r}")

    def _read_meta(self) -> ModelMeta | None:
        props = self.session.get_modelmeta().custom_metadata_map
        self._props = dict(props)
        text = props.get(defaults.META_KEY)
        return None if text is None else stored_meta(text, self.path)

    @property
    def provider(self) -> str:
        return self._active[0]

    @property
    def providers(self) -> list[str]:
        """All providers of the session, in priority order, as ONNX Runtime reports them."""
        return list(self._active)

    @property
    def device(self) -> str:
        if self._active[0] == CUDA:
            opts = self.session.get_provider_options().get(CUDA, {})
            return f"cuda:{opts.get('device_id', 0)}"
        return "cpu"

    def infer(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        try:
            outs = self.session.run(self._output_names, dict(inputs))
        except Exception as e:
            raise self._run_error("ONNX Runtime", self.path.name, inputs, e) from None
        return dict(zip(self._output_names, outs))
