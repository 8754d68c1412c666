"""OpenVINO backend: runs OpenVINO IR (model.xml + model.bin) written by ``edgeseg export
--format openvino``; an edge CPU (and Intel GPU/NPU) backend that needs no torch.

The ModelMeta travels inside the IR (``rt_info`` under ``edgeseg/meta``), so an IR needs no
sidecar file. ``path`` may be the ``.xml`` or a directory holding exactly one model ``.xml``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ...errors import BackendError, ModelError
from ...meta import ModelMeta
from .registry import register_backend
from .base import Backend, TensorSpec, find_model_file, positive_threads, stored_meta

#: Where export writes the ModelMeta JSON inside the IR's rt_info.
RT_INFO_PATH = ("edgeseg", "meta")
#: Inference precisions that the ``precision`` option takes (OpenVINO element types).
PRECISIONS = ("f32", "f16", "bf16")
HINTS = ("latency", "throughput")


def find_ir(path: str | Path) -> Path:
    """The IR ``.xml`` for ``path``: the file itself, or the single model ``.xml`` inside a
    directory (``*.rejected.*`` files, kept by a failed export, are ignored), with its ``.bin``."""
    return find_model_file(path, ".xml", "OpenVINO", export_format="openvino")


def _dim(d: Any) -> int | str | None:
    return int(d.get_length()) if d.is_static else None


@register_backend
class OpenVINOBackend(Backend):
    """Runs an OpenVINO IR with OpenVINO Runtime.

    Options:
        device: OpenVINO device, "cpu" (default), "gpu", "npu", "auto", ... (case-insensitive;
            anything ``openvino.Core().available_devices`` lists, plus AUTO/HETERO/MULTI).
        threads: ``INFERENCE_NUM_THREADS`` (default: OpenVINO's choice).
        precision: inference precision "f32", "f16" or "bf16". Default "f32" on CPU, so that an
            FP32 IR computes in FP32 even where the CPU plugin would pick bf16 by itself (an FP16
            IR stores FP16 weights and still computes in f32 unless asked); the device's own
            default elsewhere.
        fp16: shorthand for ``precision="f16"`` (what ``edgeseg.load(..., fp16=True)`` passes).
        hint: performance hint "latency" (default: one stream, lowest per-frame time) or
            "throughput".
    """

    name = "openvino"
    suffixes = (".xml",)
    #: An export directory holding one model.xml resolves here (see backends.registry._suffix_key).
    opens_directories = True
    options = ("device", "threads", "precision", "fp16", "hint")
    install_hint = "pip install openvino (or pip install 'edgeseg[openvino]')"
    engine_module = "openvino"

    def __init__(
        self,
        path: str | Path,
        device: str | None = None,
        threads: int | None = None,
        precision: str | None = None,
        fp16: bool | None = None,
        hint: str = "latency",
    ) -> None:
        super().__init__(path, device=device, threads=threads, precision=precision, fp16=fp16, hint=hint)
        import openvino as ov
        import openvino.properties as props
        import openvino.properties.hint as hints

        self.xml = find_ir(self.path)
        core = ov.Core()
        self._device = self._device_name(core, device)
        if fp16 and precision not in (None, "f16"):
            raise BackendError(f"fp16=True contradicts precision={precision!r}; give one of them")
        precision = "f16" if fp16 else precision
        if precision is None and self._device == "CPU":
            precision = "f32"
        if precision is not None and precision not in PRECISIONS:
            raise BackendError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        if hint not in HINTS:
            raise BackendError(f"hint must be one of {HINTS}, got {hint!r}")
        config: dict[Any, Any] = {
            hints.performance_mode: (hints.PerformanceMode.LATENCY if hint == "latency"
                                     else hints.PerformanceMode.THROUGHPUT)}
        if precision is not None:
            config[hints.inference_precision] = getattr(ov.Type, precision)
        if threads is not None:
            config[props.inference_num_threads] = positive_threads(threads)
        try:
            model = core.read_model(str(self.xml))
        except Exception as e:  # OpenVINO raises RuntimeError with its own text
            raise ModelError(f"OpenVINO could not read {str(self.xml)!r} ({str(e).strip().splitlines()[0]}); "
                             "check that the .xml and .bin are complete and from the same export") from None
        self._meta = self._read_meta(model)
        try:
            self.compiled = core.compile_model(model, self._device, config)
        except Exception as e:
            raise BackendError(f"OpenVINO could not compile {self.xml.name} for {self._device} with "
                               f"{ {str(k): str(v) for k, v in config.items()} }: {e}") from None
        self.request = self.compiled.create_infer_request()
        self._precision = precision or "default"
        if self._device == "CPU":  # what the plugin actually computes in (it may refuse f16/bf16)
            self._precision = self.compiled.get_property(hints.inference_precision).to_string()
        wanted = set(self._meta.output_names) | {self._meta.input_name} if self._meta is not None else set()
        self._inputs = [self._spec(p, wanted) for p in self.compiled.inputs]
        self._outputs = [self._spec(p, wanted) for p in self.compiled.outputs]

    @staticmethod
    def _device_name(core: Any, device: str | None) -> str:
        name = (device or "cpu").upper()
        if name.startswith("CUDA"):
            raise BackendError(f"device={device!r}: OpenVINO runs on Intel CPUs, GPUs and NPUs, not CUDA; "
                               "use the onnxruntime (onnxruntime-gpu) or tensorrt backend for NVIDIA GPUs")
        base = name.split(":", 1)[0].split(".", 1)[0]
        available = list(core.available_devices)
        if base not in ("AUTO", "HETERO", "MULTI", "BATCH") and not any(d.startswith(base) for d in available):
            raise BackendError(f"OpenVINO device {device!r} is not available here; available: {available}")
        return name

    def _read_meta(self, model: Any) -> ModelMeta | None:
        if not model.has_rt_info(list(RT_INFO_PATH)):
            return None
        return stored_meta(model.get_rt_info(list(RT_INFO_PATH)).astype(str), self.xml)

    @staticmethod
    def _spec(port: Any, wanted: set[str] = frozenset()) -> TensorSpec:
        # A tensor may carry several names (an Identity removed by the conversion merges them):
        # prefer the one the metadata uses.
        names = port.get_names()
        match = sorted(names & wanted) if names else []
        name = match[0] if match else port.get_any_name() if names else f"output_{port.get_index()}"
        return TensorSpec(name, tuple(_dim(d) for d in port.get_partial_shape()),
                          np.dtype(port.get_element_type().to_dtype()))

    @property
    def device(self) -> str:
        return self._device.lower()

    @property
    def provider(self) -> str:
        """e.g. "openvino-CPU-f32": the device and the precision it computes in."""
        return f"openvino-{self._device}-{self._precision}"

    def infer(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        arrays = self._take_inputs(inputs, f"OpenVINO model {self.xml.name}")
        try:
            self.request.infer({s.name: np.ascontiguousarray(a) for s, a in zip(self._inputs, arrays)})
        except Exception as e:
            raise self._run_error("OpenVINO", self.xml.name, inputs, e) from None
        # The request reuses its output buffers on the next call: hand out copies.
        return {s.name: self.request.get_output_tensor(i).data.copy() for i, s in enumerate(self._outputs)}
