"""Checkpoint or ONNX -> TensorRT engine (``edgeseg export --format engine``), version-aware.

    edgeseg export CKPT --format engine [--fp16 | --int8] [--dynamic] [--workspace MB]

Written against TensorRT's documented Python API for 10.x and 11.x (tensor-name I/O,
``build_serialized_network``, ``set_memory_pool_limit``, optimisation profiles, a persistent
timing cache, ``execute_async_v3`` in the backend). How each precision is built depends on the
installed major version (:func:`plan_build`):

=========  ==========================================  =========================================
precision  TensorRT 10                                 TensorRT 11 (strongly typed only)
=========  ==========================================  =========================================
fp32       FP32 network (TF32 disabled)                FP32 network
fp16       ``BuilderFlag.FP16`` on the FP32 ONNX       ONNX converted to FP16 first (I/O stay
                                                       FP32), then a strongly typed build
int8       ``BuilderFlag.INT8`` (+FP16 fallback) with  explicit Q/DQ: edgeseg's own static
           an entropy calibrator (IInt8Entropy-        quantisation (:mod:`edgeseg.export.
           Calibrator2) fed by edgeseg's letterbox,    quantize`: symmetric INT8, float bias,
           with a calibration cache;                   as TensorRT takes), strongly typed build
           or ``int8_mode="qdq"`` as on 11
=========  ==========================================  =========================================

Unsupported combinations (TensorRT < 10; entropy calibration on 11, which removed it) raise
ExportError naming the version and the alternative. The FP16 conversion uses ONNX Runtime's
converter (``onnxruntime.transformers.float16``), which is installed with edgeseg; NVIDIA's own
route is ModelOpt AutoCast, which works equally as a pre-step (pass its ONNX as the source).

The engine file carries edgeseg's header (ModelMeta, TensorRT version, GPU name, precision,
profile; see :mod:`edgeseg.runtime.backends.tensorrt_backend`) so that the runtime needs no
sidecar and refuses engines built for another TensorRT or GPU. **Engines are code**: load only
engines you built or trust.

What has been exercised: this module's planning, FP16 conversion, header and error paths are
tested without TensorRT; the build itself was written from the documentation and runs only
where ``tensorrt`` and an NVIDIA GPU exist (tests skip elsewhere, saying so).
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import os
import re
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .. import __version__, defaults
from .._io import atomic_write_bytes
from ..errors import ExportError
from ..meta import ModelMeta
from .accuracy import GateSettings
from .deploy import DeployReport, export_meta, finish, open_source, staged
from .quantize import CALIB_SEED, calibration_frames, quantize_onnx

PRECISIONS = ("fp32", "fp16", "int8")
INT8_MODES = ("calibrate", "qdq")
#: Oldest TensorRT major version this module targets.
MIN_MAJOR = 10
#: Environment variable naming the folder for timing caches (default ~/.cache/edgeseg/tensorrt).
CACHE_ENV = "EDGESEG_TRT_CACHE"


# ----------------------------------------------------------------------------- planning
@dataclass(frozen=True)
class BuildPlan:
    """How to build an engine of ``precision`` with TensorRT ``version`` (see the table above)."""

    version: str
    major: int
    precision: str
    int8_mode: str | None
    strongly_typed: bool  # create the network with the STRONGLY_TYPED flag
    builder_flags: tuple[str, ...]  # trt.BuilderFlag names to set
    onnx_transform: str  # "none", "fp16" (convert the ONNX) or "qdq" (quantise the ONNX)
    calibrator: bool  # attach an entropy calibrator (TensorRT 10 implicit INT8)
    clear_flags: tuple[str, ...] = ()  # trt.BuilderFlag names to clear when they exist

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _major(version: str) -> int:
    m = re.match(r"\s*(\d+)", str(version))
    if not m:
        raise ExportError(f"cannot read the TensorRT version {version!r}")
    return int(m.group(1))


def plan_build(version: str, precision: str = "fp32", int8_mode: str | None = None) -> BuildPlan:
    """The build recipe for TensorRT ``version`` (e.g. ``tensorrt.__version__``) and
    ``precision``; ExportError for combinations that version cannot build."""
    if precision not in PRECISIONS:
        raise ExportError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if int8_mode is not None and int8_mode not in INT8_MODES:
        raise ExportError(f"int8_mode must be one of {INT8_MODES}, got {int8_mode!r}")
    if int8_mode is not None and precision != "int8":
        raise ExportError(f"int8_mode={int8_mode!r} applies to precision 'int8' only (got {precision!r})")
    major = _major(version)
    if major < MIN_MAJOR:
        raise ExportError(f"TensorRT {version} is too old: edgeseg builds engines with the TensorRT 10/11 API "
                          "(tensor-name I/O, build_serialized_network); install tensorrt>=10, or run the "
                          "ONNX model with ONNX Runtime's TensorRT or CUDA execution provider")
    weak = major < 11
    if precision == "fp32":
        # FP32 means FP32: TensorRT would otherwise use TF32 tensor cores on Ampere and later (the
        # flag is on by default; cleared only where this TensorRT still has it).
        return BuildPlan(version, major, precision, None, not weak, (), "none", False, ("TF32",))
    if precision == "fp16":
        if weak:
            return BuildPlan(version, major, precision, None, False, ("FP16",), "none", False)
        return BuildPlan(version, major, precision, None, True, (), "fp16", False)
    mode = int8_mode or ("calibrate" if weak else "qdq")
    if mode == "calibrate":
        if not weak:
            raise ExportError(f"TensorRT {version} removed implicit INT8 calibration (BuilderFlag.INT8, "
                              "IInt8EntropyCalibrator2); use int8_mode='qdq' (the default there: edgeseg "
                              "inserts Q/DQ nodes from its own calibration), or build with TensorRT 10")
        return BuildPlan(version, major, precision, mode, False, ("INT8", "FP16"), "none", True)
    return BuildPlan(version, major, precision, mode, True, (), "qdq", False)


# ----------------------------------------------------------------------------- ONNX transforms
def _toposort(graph: Any) -> None:
    """Reorder ``graph.node`` topologically (converters may append nodes out of order)."""
    avail = {i.name for i in graph.input} | {t.name for t in graph.initializer} | {""}
    ordered: list[Any] = []
    pending = list(graph.node)
    while pending:
        rest = []
        for node in pending:
            if all(i in avail for i in node.input):
                ordered.append(node)
                avail.update(node.output)
            else:
                rest.append(node)
        if len(rest) == len(pending):
            raise ExportError(f"graph has a cycle or dangling inputs near {rest[0].name!r}")
        pending = rest
    del graph.node[:]
    graph.node.extend(ordered)


def convert_onnx_fp16(src: str | Path, dst: str | Path) -> Path:
    """Write an FP16 copy of the ONNX ``src`` to ``dst``: FP16 weights and compute, FP32 graph
    inputs and outputs (Cast nodes at the edges), metadata kept. This is how a strongly typed
    TensorRT 11 network gets FP16 kernels."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = onnx.load(str(src))
    try:
        half = convert_float_to_float16(model, keep_io_types=True)
    except Exception as e:  # noqa: BLE001 - the converter raises assorted types
        raise ExportError(f"FP16 conversion of {Path(src).name} failed: {type(e).__name__}: {e}") from None
    _toposort(half.graph)
    try:
        onnx.checker.check_model(half)
    except onnx.checker.ValidationError as e:
        raise ExportError(f"the FP16 graph fails onnx.checker: {e}") from None
    onnx.save(half, str(dst))
    return Path(dst)


# ----------------------------------------------------------------------------- profiles, caches
@dataclass(frozen=True)
class Profile:
    """One optimisation profile of the image input: (batch, height, width) at min / opt / max."""

    min: tuple[int, int, int]
    opt: tuple[int, int, int]
    max: tuple[int, int, int]

    def shapes(self) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
        return tuple((n, 3, h, w) for n, h, w in (self.min, self.opt, self.max))  # type: ignore[return-value]

    def validate(self) -> None:
        for a, b in ((self.min, self.opt), (self.opt, self.max)):
            if len(a) != 3 or len(b) != 3 or any(x < 1 or x > y for x, y in zip(a, b)):
                raise ExportError(f"optimisation profile must satisfy 1 <= min <= opt <= max per axis "
                                  f"(batch, height, width); got min {self.min} opt {self.opt} max {self.max}")


def default_profile(meta: ModelMeta, dynamic: bool, max_batch: int = defaults.TRT_MAX_BATCH) -> Profile:
    """Static: the exported size. Dynamic: batch 1..max_batch, half to twice the size (kept at
    multiples of the output stride), optimised for batch 1 at the exported size."""
    h, w = meta.input_size
    if not dynamic:
        return Profile((1, h, w), (1, h, w), (1, h, w))
    s = max(8, int(meta.output_stride) or 8)
    lo = lambda v: max(s, (v // 2) // s * s)  # noqa: E731
    return Profile((1, lo(h), lo(w)), (1, h, w), (int(max_batch), 2 * h, 2 * w))


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "gpu"


def default_timing_cache(trt_version: str, gpu_name: str) -> Path:
    """``$EDGESEG_TRT_CACHE`` or ``~/.cache/edgeseg/tensorrt`` / ``timing_<trt>_<gpu>.cache``:
    one persistent cache per TensorRT version and GPU model, shared by all builds."""
    root = Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "edgeseg" / "tensorrt")
    return root / f"timing_{_safe(trt_version)}_{_safe(gpu_name)}.cache"


# ----------------------------------------------------------------------------- build
def _require_tensorrt() -> Any:
    try:
        import tensorrt as trt
    except ImportError:
        from ..runtime.backends.tensorrt_backend import INSTALL_HINT

        raise ExportError(f"--format engine needs TensorRT. {INSTALL_HINT}. Without it, deploy the ONNX "
                          "(--format onnx) with ONNX Runtime's CUDA execution provider") from None
    return trt


def calibration_key(onnx_path: str | Path, tensors: Sequence[np.ndarray]) -> str:
    """Fingerprint of what an INT8 calibration table depends on: the ONNX model's bytes and the
    calibration tensors. A cached table is reused only under the same key."""
    h = hashlib.sha256(Path(onnx_path).read_bytes())
    for t in tensors:
        h.update(str(t.shape).encode())
        h.update(np.ascontiguousarray(t).tobytes())
    return h.hexdigest()


def _entropy_calibrator(trt: Any, cuda: Any, tensors: Sequence[np.ndarray], input_name: str,
                        cache: Path, key: str) -> Any:
    """A TensorRT 10 IInt8EntropyCalibrator2 feeding ``tensors`` (1, 3, h, w) one at a time from
    a device buffer allocated once. The calibration table is cached in ``cache`` with ``key`` in
    ``<cache>.key``, and read back only when the key matches: a retrained model or other
    calibration images calibrate afresh. Callbacks never raise into TensorRT (a Python exception
    in a C++ callback can abort the process): a problem is kept in ``error`` and raised after the
    build."""
    key_path = cache.with_name(cache.name + ".key")

    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):  # type: ignore[misc,name-defined]
        def __init__(self) -> None:
            trt.IInt8EntropyCalibrator2.__init__(self)
            self.tensors = list(tensors)
            self.index = 0
            self.error: str | None = None
            self.buf, self.ptr = cuda.alloc(max(t.nbytes for t in self.tensors))

        def get_batch_size(self) -> int:
            return 1

        def get_batch(self, names: Sequence[str]) -> list[int] | None:
            try:
                if self.index >= len(self.tensors) or self.error:
                    return None
                if list(names) != [input_name]:
                    self.error = f"calibrator asked for inputs {list(names)}; the model has {input_name!r}"
                    return None
                cuda.to_device(self.buf, self.tensors[self.index])
                cuda.synchronize()
                self.index += 1
                return [self.ptr]
            except Exception as e:  # noqa: BLE001 - see the docstring
                self.error = f"calibration batch {self.index}: {type(e).__name__}: {e}"
                return None

        def read_calibration_cache(self) -> bytes | None:
            try:
                if cache.is_file() and key_path.is_file() and key_path.read_text().strip() == key:
                    return cache.read_bytes()
            except OSError:
                pass
            return None

        def write_calibration_cache(self, data: Any) -> None:
            try:
                atomic_write_bytes(cache, bytes(data))
                atomic_write_bytes(key_path, key.encode())
            except OSError as e:
                self.error = f"cannot write the calibration cache {cache}: {e}"

    return EntropyCalibrator()


@dataclass
class BuildResult:
    plan: bytes
    header: dict[str, Any]
    seconds: float
    log: list[str] = field(default_factory=list)


def build_engine(
    onnx_path: str | Path,
    meta: ModelMeta,
    plan: BuildPlan,
    profile: Profile,
    workspace_mb: int = defaults.TRT_WORKSPACE_MB,
    timing_cache: str | Path | None = None,
    calib_tensors: Sequence[np.ndarray] = (),
    calib_cache: str | Path | None = None,
    device: str = "cuda",
) -> BuildResult:
    """Parse ``onnx_path`` (already transformed per ``plan``) and build a serialized engine.

    Returns the plan bytes and the header to store with them. Raises ExportError with the ONNX
    parser's errors, or when TensorRT fails to build.
    """
    trt = _require_tensorrt()
    from ..runtime.backends.tensorrt_backend import open_cuda, trt_logger

    t0 = time.perf_counter()
    cuda = open_cuda(device)
    try:
        gpu = cuda.gpu()
        logger = trt_logger(trt)
        builder = trt.Builder(logger)
        # TensorRT 11 networks are always strongly typed (the flag is deprecated and ignored there);
        # TensorRT 10 needs it for the explicit Q/DQ path.
        flags = 0
        if plan.strongly_typed and plan.major < 11:
            flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
        network = builder.create_network(flags)
        parser = trt.OnnxParser(network, logger)
        if not parser.parse_from_file(str(onnx_path)):
            errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
            raise ExportError(f"TensorRT {trt.__version__} cannot parse {Path(onnx_path).name}: " + " | ".join(errors))
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_mb) << 20)
        for name in plan.builder_flags:
            config.set_flag(getattr(trt.BuilderFlag, name))
        for name in plan.clear_flags:
            if hasattr(trt.BuilderFlag, name):
                config.clear_flag(getattr(trt.BuilderFlag, name))
        profile.validate()
        inp = network.get_input(0)
        opt_profile = None
        if any(d < 0 for d in inp.shape):
            opt_profile = builder.create_optimization_profile()
            opt_profile.set_shape(inp.name, *profile.shapes())
            if config.add_optimization_profile(opt_profile) < 0:
                raise ExportError(f"TensorRT rejected the optimisation profile {profile.shapes()} for input "
                                  f"{inp.name!r}; check --min/--opt/--max shapes (min <= opt <= max)")
        elif profile.min != profile.max:
            raise ExportError("a dynamic optimisation profile needs a dynamic ONNX; export with --dynamic")
        calibrator = None
        if plan.calibrator:
            if not calib_tensors:
                raise ExportError("INT8 entropy calibration needs calibration images")
            if opt_profile is not None:
                config.set_calibration_profile(opt_profile)
            calibrator = _entropy_calibrator(trt, cuda, calib_tensors, inp.name,
                                             Path(calib_cache or Path(onnx_path).with_suffix(".calib.cache")),
                                             calibration_key(onnx_path, calib_tensors))
            config.int8_calibrator = calibrator
        cache_path = Path(timing_cache) if timing_cache else default_timing_cache(trt.__version__, gpu["name"])
        cache = config.create_timing_cache(cache_path.read_bytes() if cache_path.is_file() else b"")
        if cache is None or not config.set_timing_cache(cache, False):
            # an unreadable or foreign cache file: start an empty one (it is rewritten after the build)
            cache = config.create_timing_cache(b"")
            config.set_timing_cache(cache, True)
        serialized = builder.build_serialized_network(network, config)
        if calibrator is not None:
            cuda.free(calibrator.buf)
            if calibrator.error:
                raise ExportError(f"INT8 calibration failed: {calibrator.error}")
        if serialized is None:
            raise ExportError(f"TensorRT {trt.__version__} failed to build the engine for {gpu['name']} "
                              "(see its log above); try a larger --workspace, or another precision")
        # atomically: builds running at the same time share the cache file
        atomic_write_bytes(cache_path, bytes(memoryview(config.get_timing_cache().serialize())))
        header = {
            "meta": meta.to_dict(), "tensorrt_version": trt.__version__, "gpu": gpu,
            "precision": plan.precision, "plan": plan.to_dict(),
            "profile": {"min": list(profile.min), "opt": list(profile.opt), "max": list(profile.max)},
            "workspace_mb": int(workspace_mb), "timing_cache": str(cache_path),
            "built": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "edgeseg_version": __version__,
        }
        return BuildResult(bytes(memoryview(serialized)), header, time.perf_counter() - t0)
    finally:
        cuda.close()  # the build's stream (device buffers are freed as they go)


# ----------------------------------------------------------------------------- export
def rejected_engine(out: Path) -> Path:
    return out.with_suffix(".rejected.engine")


def engine_report_path(out: Path) -> Path:
    return out.with_suffix(".parity.json")


def export_engine(
    source: str | Path,
    out: str | Path,
    precision: str = "fp32",
    int8_mode: str | None = None,
    dynamic: bool | None = None,
    max_batch: int = defaults.TRT_MAX_BATCH,
    profile: Profile | None = None,
    workspace_mb: int = defaults.TRT_WORKSPACE_MB,
    timing_cache: str | Path | None = None,
    calib: str | os.PathLike = "synthetic",
    calib_images: int = defaults.CALIB_IMAGES,
    calib_cache: str | Path | None = None,
    keep_float: Sequence[str] | str | None = ("first",),
    input_size: int | tuple[int, int] | None = None,
    opset: int | None = None,
    device: str = "cuda",
    *,
    verbose: bool = True,
    **gate: Any,
) -> DeployReport:
    """Build a TensorRT engine from a checkpoint (or an edgeseg ``.onnx``) and gate it.

    Args:
        precision: "fp32", "fp16" or "int8" (see the module table for how each is built).
        int8_mode: "calibrate" (TensorRT 10 entropy calibration) or "qdq" (explicit Q/DQ);
            default: whatever the installed TensorRT supports best.
        dynamic, max_batch, profile: dynamic batch/size and its optimisation profile (default
            :func:`default_profile`).
        workspace_mb: builder memory-pool limit (MiB).
        timing_cache: timing cache file (default :func:`default_timing_cache`).
        calib, calib_images, calib_cache, keep_float: INT8 calibration frames, the TensorRT 10
            calibration cache (default ``<out>.calib.cache``; reused only for the same ONNX and
            calibration images, see ``calibration_key``), layers kept in float (Q/DQ mode).
        device: "cuda" / "cuda:N" to build on.
        **gate: the fields of :class:`~edgeseg.export.accuracy.GateSettings`.
        Other arguments as in :func:`~edgeseg.export.openvino.export_openvino`.

    The engine is written to ``out`` only when it passes the gate; otherwise it is kept as
    ``<out>.rejected.engine`` beside the report and ExportError is raised.
    """
    settings = GateSettings(**gate)
    trt = _require_tensorrt()
    from ..runtime.backends.tensorrt_backend import TensorRTBackend, write_engine
    from ..runtime.base import preprocess

    t0 = time.perf_counter()
    out = Path(out)
    if out.suffix.lower() != ".engine":
        raise ExportError(f"the engine path must end in .engine (got {str(out)!r}); e.g. model.engine")
    plan = plan_build(trt.__version__, precision, int8_mode)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="edgeseg-trt-") as work:
        src = open_source(source, work, input_size=input_size, dynamic=dynamic, opset=opset, gate=settings)
        meta = src.meta
        prof = profile or default_profile(meta, meta.dynamic, max_batch)
        onnx_in = src.onnx
        details: dict[str, Any] = {"plan": plan.to_dict()}
        if plan.onnx_transform == "fp16":
            onnx_in = convert_onnx_fp16(src.onnx, Path(work) / "model.fp16.onnx")
        elif plan.onnx_transform == "qdq":
            onnx_in = Path(work) / "model.qdq.onnx"
            details["quantization"] = quantize_onnx(
                src.onnx, onnx_in, meta, calib=calib, calib_images=calib_images, keep_float=keep_float,
                activations="int8", symmetric=True, quantize_bias=False)
        tensors = []
        if plan.calibrator:
            tensors = [preprocess(f, meta, np.float32, input_size=prof.opt[1:])[0]
                       for f in calibration_frames(calib, calib_images, CALIB_SEED)]
        meta = export_meta(meta, format="tensorrt", precision=precision, tensorrt=trt.__version__)
        built = build_engine(onnx_in, meta, plan, prof, workspace_mb, timing_cache, tensors,
                             calib_cache or out.with_suffix(".calib.cache"), device)
        built.header["source"] = str(src.path)
        candidate = None
        with staged(out, ".engine") as tmp:
            try:
                write_engine(tmp, built.plan, built.header)
                candidate = TensorRTBackend(tmp, device=device)
                details.update(tensorrt=trt.__version__, gpu=built.header["gpu"],
                               build_seconds=round(built.seconds, 2), profile=built.header["profile"],
                               timing_cache=built.header["timing_cache"])
                return finish(src, candidate, settings, [(tmp, out, rejected_engine(out))], t0=t0, verbose=verbose,
                              hint="build FP16 instead of INT8, or calibrate on more representative images "
                                   "(--calib DIR)", format="tensorrt", precision=precision, path=out, meta=meta,
                              size_bytes=tmp.stat().st_size, report_path=engine_report_path(out), details=details)
            finally:
                if candidate is not None:
                    candidate.close()


__all__ = ["export_engine", "build_engine", "plan_build", "BuildPlan", "Profile", "default_profile",
           "convert_onnx_fp16", "default_timing_cache", "calibration_key", "PRECISIONS", "INT8_MODES"]
