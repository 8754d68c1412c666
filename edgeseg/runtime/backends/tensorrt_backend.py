"""TensorRT backend: runs ``.engine`` files written by ``edgeseg export --format engine``.

**Engines are code.** A serialized TensorRT engine holds compiled GPU kernels and plugin code
that TensorRT executes without any check of where it came from. Load only engines you built
yourself or got from someone you trust, exactly as you would treat a shared library.

File format (version 1; every integer little-endian)::

    MAGIC (12 bytes, b"EDGESEG-TRT\\n") | header version (uint32) | header length N (uint64)
    | header: N bytes of UTF-8 JSON | the TensorRT plan (serialized engine)

The header carries the ModelMeta, the TensorRT version and GPU the engine was built for, the
precision and optimisation profile, and the plan's length and SHA-256. An engine only runs with
the TensorRT version that built it, on the GPU model it was built for, so loading it elsewhere is
refused with a message saying what to rebuild, before TensorRT is asked to deserialize it.

Device buffers are allocated once, at load, for the largest shapes of the engine's optimisation
profile (via PyTorch's CUDA allocator when torch is installed, else cuda-python); each call sets
the input shapes, copies the inputs in, runs ``execute_async_v3`` on the backend's CUDA stream
and copies back only the valid part of each output.

What was exercised where (see README, "Deployment targets"): the header format, the refusal
logic and the missing-TensorRT errors are tested on every machine; building and running engines
needs ``tensorrt`` and an NVIDIA GPU, and those tests skip elsewhere.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import struct
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..._io import atomic_write_bytes
from ...errors import BackendError, InputFileError, ModelError
from ...meta import ModelMeta
from .registry import register_backend
from .base import Backend, TensorSpec

MAGIC = b"EDGESEG-TRT\n"
HEADER_VERSION = 1
_PREFIX = struct.Struct("<IQ")  # header version, header length
#: The header is JSON a few KB long; anything larger is not an edgeseg engine header.
_MAX_HEADER = 16 << 20
INSTALL_HINT = ("TensorRT is not installed: its Python package comes from NVIDIA's index "
                "(pip install tensorrt --extra-index-url https://pypi.nvidia.com) and needs an NVIDIA GPU "
                "with its driver; device buffers also need PyTorch with CUDA or cuda-python")


# ----------------------------------------------------------------------------- file format
def pack_engine(plan: bytes, header: Mapping[str, Any]) -> bytes:
    """The bytes of an edgeseg engine file: MAGIC, version, header JSON (with the plan's length
    and SHA-256 added) and the plan."""
    plan = bytes(plan)
    head = dict(header)
    head.update(format="edgeseg.tensorrt-engine", header_version=HEADER_VERSION,
                plan_bytes=len(plan), plan_sha256=hashlib.sha256(plan).hexdigest())
    text = json.dumps(head, sort_keys=True).encode("utf-8")
    return MAGIC + _PREFIX.pack(HEADER_VERSION, len(text)) + text + plan


def write_engine(path: str | Path, plan: bytes, header: Mapping[str, Any]) -> Path:
    """Write an edgeseg engine file atomically (see the module docstring for the format)."""
    return atomic_write_bytes(path, pack_engine(plan, header))


def read_engine_header(path: str | Path) -> tuple[dict[str, Any], int]:
    """The header of an edgeseg engine file and the byte offset where the plan starts.

    Raises InputFileError for a missing file, ModelError for a file that is not an edgeseg
    engine (e.g. a raw ``trtexec`` plan) or whose header is damaged.
    """
    p = Path(path)
    if not p.is_file():
        raise InputFileError(f"engine file not found: {str(p)!r}; check the path")
    with open(p, "rb") as f:
        magic = f.read(len(MAGIC))
        if magic != MAGIC:
            raise ModelError(
                f"{str(p)!r} is not an edgeseg engine (no edgeseg header; a raw TensorRT plan, e.g. from "
                "trtexec, carries no model metadata). Build it with `edgeseg export MODEL --format engine`")
        prefix = f.read(_PREFIX.size)
        if len(prefix) != _PREFIX.size:
            raise ModelError(f"{str(p)!r} is truncated inside its header; rebuild the engine")
        version, length = _PREFIX.unpack(prefix)
        if version > HEADER_VERSION:
            raise ModelError(f"{str(p)!r} has engine header version {version}, newer than this edgeseg "
                             f"understands ({HEADER_VERSION}); upgrade edgeseg")
        if length > _MAX_HEADER:
            raise ModelError(f"{str(p)!r}: implausible header length {length}; the file is damaged, rebuild it")
        text = f.read(length)
    if len(text) != length:
        raise ModelError(f"{str(p)!r} is truncated inside its header; rebuild the engine")
    try:
        header = json.loads(text.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:  # RecursionError: nested thousands deep
        raise ModelError(f"{str(p)!r}: the engine header is not valid JSON ({e}); rebuild the engine") from None
    if not isinstance(header, dict) or "meta" not in header or "tensorrt_version" not in header:
        raise ModelError(f"{str(p)!r}: the engine header lacks 'meta' / 'tensorrt_version'; rebuild the engine")
    return header, len(MAGIC) + _PREFIX.size + length


def read_engine(path: str | Path) -> tuple[dict[str, Any], bytes]:
    """(header, plan) of an edgeseg engine file; the plan's length and SHA-256 are verified."""
    header, offset = read_engine_header(path)
    with open(path, "rb") as f:
        f.seek(offset)
        plan = f.read()
    if len(plan) != header.get("plan_bytes") or hashlib.sha256(plan).hexdigest() != header.get("plan_sha256"):
        raise ModelError(f"{str(path)!r}: the engine plan does not match its header (truncated or modified "
                         f"file: {len(plan)} bytes, header says {header.get('plan_bytes')}); rebuild the engine")
    return header, plan


def check_engine_compatible(header: Mapping[str, Any], tensorrt_version: str, gpu_name: str) -> None:
    """Refuse (BackendError) an engine built for another TensorRT version or another GPU model.

    TensorRT plans are only valid for the exact TensorRT version that built them and the GPU
    model they were tuned on; deserializing one elsewhere fails obscurely or, worse, runs kernels
    tuned for another device. The message says what was found and how to rebuild.
    """
    built_trt = str(header.get("tensorrt_version", "?"))
    built_gpu = str((header.get("gpu") or {}).get("name", "?"))
    problems = []
    if built_trt != str(tensorrt_version):
        problems.append(f"TensorRT {built_trt} (this machine has {tensorrt_version})")
    if built_gpu.strip().lower() != str(gpu_name).strip().lower():
        problems.append(f"GPU {built_gpu!r} (this machine has {gpu_name!r})")
    if problems:
        source = header.get("source") or "the model's .onnx"
        raise BackendError(
            "this engine was built for " + " and ".join(problems) + "; TensorRT engines run only with the "
            f"TensorRT version and GPU model they were built for. Rebuild it here: "
            f"edgeseg export {source} --format engine")


_LOGGER: Any = None


def trt_logger(trt: Any) -> Any:
    """The process's one TensorRT logger (TensorRT wants the same logger for every builder and
    runtime object), at WARNING level."""
    global _LOGGER
    if _LOGGER is None:
        _LOGGER = trt.Logger(trt.Logger.WARNING)
    return _LOGGER


# ----------------------------------------------------------------------------- CUDA memory
def _has_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # a dotted name whose parent package is missing
        return False


def cuda_runtime_choice() -> str | None:
    """Which CUDA binding moves data: "torch" (PyTorch with CUDA), "cuda-python", or None."""
    if _has_module("torch"):
        import torch

        if torch.cuda.is_available():
            return "torch"
    if _has_module("cuda.bindings") or _has_module("cuda.cudart"):
        return "cuda-python"
    return None


class _TorchCuda:
    """Device buffers and a stream from PyTorch's CUDA allocator."""

    def __init__(self, index: int) -> None:
        import torch

        self.torch = torch
        self.device = torch.device("cuda", index)
        # TensorRT builds and deserializes on the thread's current device, not the stream's.
        torch.cuda.set_device(self.device)
        self.stream = torch.cuda.Stream(device=self.device)
        self.handle = int(self.stream.cuda_stream)

    def gpu(self) -> dict[str, str]:
        p = self.torch.cuda.get_device_properties(self.device)
        return {"name": p.name, "compute_capability": f"{p.major}.{p.minor}"}

    def alloc(self, nbytes: int) -> tuple[Any, int]:
        buf = self.torch.empty(max(int(nbytes), 1), dtype=self.torch.uint8, device=self.device)
        return buf, int(buf.data_ptr())

    def to_device(self, buf: Any, host: np.ndarray) -> None:
        src = self.torch.from_numpy(np.ascontiguousarray(host).reshape(-1).view(np.uint8))
        with self.torch.cuda.stream(self.stream):
            buf[: src.numel()].copy_(src)

    def to_host(self, buf: Any, out: np.ndarray) -> None:
        with self.torch.cuda.stream(self.stream):
            host = buf[: out.nbytes].cpu()  # ordered after the engine on this stream; waits for it
        out.reshape(-1).view(np.uint8)[:] = host.numpy()

    def synchronize(self) -> None:
        self.stream.synchronize()

    def free(self, buf: Any) -> None:
        del buf  # PyTorch's caching allocator takes it back when the last reference goes

    def close(self) -> None:
        self.stream = None


class _CudaPython:
    """Device buffers and a stream from NVIDIA's cuda-python runtime bindings."""

    def __init__(self, index: int) -> None:
        try:
            from cuda.bindings import runtime as cudart  # cuda-python >= 12.6
        except ImportError:
            from cuda import cudart  # older cuda-python
        self.rt = cudart
        self.index = index
        self._ok(cudart.cudaSetDevice(index))
        self.stream = self._ok(cudart.cudaStreamCreate())[0]
        self.handle = int(self.stream)

    def _ok(self, result: Any) -> tuple:
        err, rest = result[0], result[1:]
        if err != self.rt.cudaError_t.cudaSuccess:
            name = self.rt.cudaGetErrorName(err)[1]
            raise BackendError(f"CUDA runtime error {name.decode() if isinstance(name, bytes) else name}")
        return rest

    def gpu(self) -> dict[str, str]:
        props = self._ok(self.rt.cudaGetDeviceProperties(self.index))[0]
        name = props.name.decode() if isinstance(props.name, bytes) else str(props.name)
        return {"name": name.rstrip("\x00"), "compute_capability": f"{props.major}.{props.minor}"}

    def alloc(self, nbytes: int) -> tuple[Any, int]:
        ptr = self._ok(self.rt.cudaMalloc(max(int(nbytes), 1)))[0]
        return ptr, int(ptr)

    def to_device(self, buf: Any, host: np.ndarray) -> None:
        host = np.ascontiguousarray(host)
        self._ok(self.rt.cudaMemcpyAsync(buf, host.ctypes.data, host.nbytes,
                                         self.rt.cudaMemcpyKind.cudaMemcpyHostToDevice, self.stream))
        self.synchronize()  # pageable host memory: keep ``host`` alive until the copy is done

    def to_host(self, buf: Any, out: np.ndarray) -> None:
        self._ok(self.rt.cudaMemcpyAsync(out.ctypes.data, buf, out.nbytes,
                                         self.rt.cudaMemcpyKind.cudaMemcpyDeviceToHost, self.stream))
        self.synchronize()

    def synchronize(self) -> None:
        self._ok(self.rt.cudaStreamSynchronize(self.stream))

    def free(self, buf: Any) -> None:
        self.rt.cudaFree(buf)

    def close(self) -> None:
        if self.stream is not None:
            self.rt.cudaStreamDestroy(self.stream)
            self.stream = None


def open_cuda(device: str | None = None, binding: str | None = None) -> Any:
    """A CUDA helper (buffers, stream, GPU name) for ``device`` ("cuda" / "cuda:N")."""
    device = device or "cuda"
    if not device.startswith("cuda"):
        raise BackendError(f"the tensorrt backend runs on CUDA devices; device must be 'cuda' or 'cuda:N', "
                           f"got {device!r}")
    try:
        index = int(device.split(":", 1)[1]) if ":" in device else 0
    except ValueError:
        raise BackendError(f"device must be 'cuda' or 'cuda:N', got {device!r}") from None
    binding = binding or cuda_runtime_choice()
    if binding == "torch":
        return _TorchCuda(index)
    if binding == "cuda-python":
        return _CudaPython(index)
    raise BackendError("the tensorrt backend needs a CUDA runtime binding for device buffers: PyTorch with "
                       "CUDA, or cuda-python (pip install cuda-python)")


# ----------------------------------------------------------------------------- backend
@register_backend
class TensorRTBackend(Backend):
    """Runs an edgeseg TensorRT engine (see the module docstring; load only trusted engines).

    Options:
        device: "cuda" or "cuda:N" (default "cuda").
        cuda: "torch" or "cuda-python": which binding allocates buffers (default: torch when it
            sees a GPU, else cuda-python).
    """

    name = "tensorrt"
    suffixes = (".engine",)
    options = ("device", "cuda")
    install_hint = INSTALL_HINT
    engine_module = "tensorrt"

    def __init__(self, path: str | Path, device: str | None = None, cuda: str | None = None) -> None:
        super().__init__(path, device=device, cuda=cuda)
        import tensorrt as trt

        header, plan = read_engine(self.path)
        self.header = header
        self._meta = ModelMeta.from_dict(header["meta"])
        self.cuda = open_cuda(device, cuda)
        self.gpu = self.cuda.gpu()
        check_engine_compatible(header, trt.__version__, self.gpu["name"])
        self._device = device or "cuda"
        self._buffers: dict[str, Any] = {}
        self._runtime = trt.Runtime(trt_logger(trt))
        self.engine = self._runtime.deserialize_cuda_engine(plan)
        if self.engine is None:
            raise ModelError(f"TensorRT {trt.__version__} could not deserialize {self.path.name}; rebuild it")
        self.context = self.engine.create_execution_context()
        self._inputs: list[TensorSpec] = []
        self._outputs: list[TensorSpec] = []
        self._range: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {}
        for i in range(self.engine.num_io_tensors):
            name = self.engine.get_tensor_name(i)
            shape = tuple(int(d) for d in self.engine.get_tensor_shape(name))
            spec = TensorSpec(name, tuple(d if d >= 0 else None for d in shape),
                              np.dtype(trt.nptype(self.engine.get_tensor_dtype(name))))
            if self.engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
                self._inputs.append(spec)
                if any(d < 0 for d in shape):
                    lo, _opt, hi = self.engine.get_tensor_profile_shape(name, 0)
                    self._range[name] = (tuple(int(d) for d in lo), tuple(int(d) for d in hi))
                else:
                    self._range[name] = (shape, shape)
            else:
                self._outputs.append(spec)
        # Device buffers, once, for the largest shapes of the profile.
        for s in self._inputs:
            hi = self._range[s.name][1]
            self.context.set_input_shape(s.name, hi)
            self._allocate(s.name, int(np.prod(hi)) * s.dtype.itemsize)
        for s in self._outputs:
            shape = tuple(int(d) for d in self.context.get_tensor_shape(s.name))
            self._allocate(s.name, int(np.prod(shape)) * s.dtype.itemsize)

    def _allocate(self, name: str, nbytes: int) -> None:
        buf, ptr = self.cuda.alloc(nbytes)
        self._buffers[name] = buf
        self.context.set_tensor_address(name, ptr)

    @property
    def device(self) -> str:
        return self._device

    @property
    def provider(self) -> str:
        return f"tensorrt-{self.header.get('tensorrt_version')}-{self.header.get('precision', 'fp32')}"

    def infer(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.cuda is None:
            raise BackendError(f"TensorRT backend for {self.path.name} was closed; load the engine again")
        for s in self._inputs:
            if s.name not in inputs:
                raise BackendError(f"TensorRT engine {self.path.name} needs input {s.name!r}; got {sorted(inputs)}")
            x = np.ascontiguousarray(inputs[s.name], dtype=s.dtype)
            lo, hi = self._range[s.name]
            if x.ndim != len(lo) or any(d < a or d > b for d, a, b in zip(x.shape, lo, hi)):
                raise BackendError(f"input {s.name!r} has shape {x.shape}; this engine's optimisation profile "
                                   f"takes {lo} to {hi}. Rebuild with --dynamic (or a larger profile)")
            if not self.context.set_input_shape(s.name, x.shape):
                raise BackendError(f"TensorRT rejected input shape {x.shape} for {s.name!r}")
            self.cuda.to_device(self._buffers[s.name], x)
        if not self.context.execute_async_v3(self.cuda.handle):
            raise BackendError(f"TensorRT failed to run {self.path.name} (execute_async_v3 returned False)")
        out = {}
        for s in self._outputs:
            shape = tuple(int(d) for d in self.context.get_tensor_shape(s.name))
            host = np.empty(shape, s.dtype)
            self.cuda.to_host(self._buffers[s.name], host)
            out[s.name] = host
        self.cuda.synchronize()
        return out

    def close(self) -> None:
        """Free the device buffers and the CUDA stream (also done when the backend is collected)."""
        cuda, buffers = getattr(self, "cuda", None), getattr(self, "_buffers", {})
        if cuda is None:
            return
        self.context = self.engine = None  # release TensorRT's objects before their memory
        for buf in buffers.values():
            cuda.free(buf)
        buffers.clear()
        cuda.close()
        self.cuda = None

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown may have torn down the bindings
            pass

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "tensorrt_version": self.header.get("tensorrt_version"),
                "gpu": self.header.get("gpu"), "precision": self.header.get("precision")}
