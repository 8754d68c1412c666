"""TensorRT: what runs everywhere (engine file format, version/GPU refusal, build planning per
TensorRT version, FP16 / Q/DQ ONNX preparation, errors without TensorRT), and engine builds that
need ``tensorrt`` and an NVIDIA GPU (skipped elsewhere, with that reason). TensorRT is never
mocked: the GPU tests use the real library or do not run."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from edgeseg import load
from edgeseg.cli import main
from edgeseg.data import synthetic
from edgeseg.errors import BackendError, ExportError, InputFileError, ModelError
from edgeseg.meta import ModelMeta
from edgeseg.runtime.backends import available_backends, resolve_backend
from edgeseg.runtime.backends.tensorrt_backend import (MAGIC, check_engine_compatible, open_cuda, pack_engine,
                                                       read_engine, read_engine_header, write_engine)

HAVE_TRT = importlib.util.find_spec("tensorrt") is not None


def _have_gpu() -> bool:
    """An NVIDIA GPU that PyTorch or cuda-python can see."""
    if importlib.util.find_spec("torch") is not None:
        import torch

        if torch.cuda.is_available():
            return True
    try:
        from cuda.bindings import runtime as rt
    except ImportError:
        try:
            from cuda import cudart as rt
        except ImportError:
            return False
    err, n = rt.cudaGetDeviceCount()
    return err == rt.cudaError_t.cudaSuccess and n > 0


needs_trt_gpu = pytest.mark.skipif(not (HAVE_TRT and _have_gpu()),
                                   reason="needs the tensorrt package and an NVIDIA GPU (TensorRT cannot be "
                                          "installed on the machines this project is built and tested on)")
no_trt = pytest.mark.skipif(HAVE_TRT, reason="checks the errors given where tensorrt is not installed")

META = ModelMeta(task="semantic", classes=list(synthetic.CLASSES), input_size=(64, 64), arch="liteseg_t")
HEADER = {"meta": META.to_dict(), "tensorrt_version": "10.3.0", "gpu": {"name": "NVIDIA A10", "compute_capability": "8.6"},
          "precision": "fp16", "source": "runs/s/best"}


# ----------------------------------------------------------------------------- file format
def test_engine_file_round_trip(tmp_path):
    plan = bytes(range(256)) * 10
    path = write_engine(tmp_path / "m.engine", plan, HEADER)
    raw = path.read_bytes()
    assert raw.startswith(MAGIC) and raw.endswith(plan)
    header, offset = read_engine_header(path)
    assert offset == len(raw) - len(plan)
    assert header["tensorrt_version"] == "10.3.0" and header["gpu"]["name"] == "NVIDIA A10"
    assert header["plan_bytes"] == len(plan) and len(header["plan_sha256"]) == 64
    assert ModelMeta.from_dict(header["meta"]).classes == META.classes
    header2, plan2 = read_engine(path)
    assert plan2 == plan and header2 == header


def test_damaged_engine_files_are_refused(tmp_path):
    plan = b"\x01" * 1000
    good = pack_engine(plan, HEADER)
    cases = {
        "truncated.engine": (good[:-10], "does not match its header"),
        "modified.engine": (good[:-1] + b"\x02", "does not match its header"),
        "raw.engine": (b"ftrt" + plan, "not an edgeseg engine"),
        "short.engine": (MAGIC + b"\x01\x00", "truncated inside its header"),
        "json.engine": (MAGIC + (1).to_bytes(4, "little") + (5).to_bytes(8, "little") + b"{oops" + plan,
                        "not valid JSON"),
        "newer.engine": (MAGIC + (9).to_bytes(4, "little") + (2).to_bytes(8, "little") + b"{}", "upgrade edgeseg"),
        "nometa.engine": (pack_engine(plan, {"tensorrt_version": "10.3.0"}), "lacks 'meta'"),
    }
    for name, (data, message) in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(ModelError, match=message):
            read_engine(tmp_path / name)
    with pytest.raises(InputFileError):
        read_engine_header(tmp_path / "missing.engine")


def test_engines_refuse_other_tensorrt_or_gpu():
    check_engine_compatible(HEADER, "10.3.0", "NVIDIA A10")
    check_engine_compatible(HEADER, "10.3.0", "nvidia a10 ")  # names compare case/space-insensitively
    with pytest.raises(BackendError) as e:
        check_engine_compatible(HEADER, "10.5.0", "NVIDIA A10")
    assert "TensorRT 10.3.0 (this machine has 10.5.0)" in str(e.value)
    assert "edgeseg export runs/s/best --format engine" in str(e.value)
    with pytest.raises(BackendError, match="GPU 'NVIDIA A10' \\(this machine has 'Orin'\\)"):
        check_engine_compatible(HEADER, "10.3.0", "Orin")
    with pytest.raises(BackendError, match="TensorRT 10.3.0 .* and GPU"):
        check_engine_compatible(HEADER, "11.0.0", "NVIDIA H100")


# ----------------------------------------------------------------------------- planning
def test_build_plans_per_tensorrt_version():
    from edgeseg.export.tensorrt import plan_build

    p = plan_build("10.3.0", "fp32")
    assert (p.strongly_typed, p.builder_flags, p.clear_flags, p.onnx_transform) == (False, (), ("TF32",), "none")
    p = plan_build("10.3.0", "fp16")
    assert p.builder_flags == ("FP16",) and p.onnx_transform == "none"
    p = plan_build("10.16.1", "int8")
    assert p.int8_mode == "calibrate" and p.calibrator and p.builder_flags == ("INT8", "FP16")
    p = plan_build("10.16.1", "int8", "qdq")
    assert p.strongly_typed and p.onnx_transform == "qdq" and not p.builder_flags and not p.calibrator
    for precision, transform in (("fp32", "none"), ("fp16", "fp16"), ("int8", "qdq")):
        p = plan_build("11.4.1", precision)
        assert p.strongly_typed and p.builder_flags == () and p.onnx_transform == transform and not p.calibrator
        assert p.clear_flags == (("TF32",) if precision == "fp32" else ())
    with pytest.raises(ExportError, match="TensorRT 11.0.0 removed implicit INT8 calibration.*int8_mode='qdq'"):
        plan_build("11.0.0", "int8", "calibrate")
    with pytest.raises(ExportError, match="TensorRT 8.6.1 is too old.*tensorrt>=10"):
        plan_build("8.6.1", "fp16")
    with pytest.raises(ExportError, match="precision must be"):
        plan_build("10.3.0", "int4")
    with pytest.raises(ExportError, match="applies to precision 'int8' only"):
        plan_build("10.3.0", "fp16", "qdq")


def test_profiles_and_timing_cache(monkeypatch, tmp_path):
    from edgeseg.export.tensorrt import Profile, default_profile, default_timing_cache

    meta = META.replace(input_size=(96, 128))
    p = default_profile(meta, dynamic=False)
    assert p.min == p.opt == p.max == (1, 96, 128)
    p = default_profile(meta, dynamic=True, max_batch=8)
    assert p.min == (1, 48, 64) and p.opt == (1, 96, 128) and p.max == (8, 192, 256)
    assert p.shapes()[2] == (8, 3, 192, 256)
    p.validate()
    with pytest.raises(ExportError, match="min <= opt <= max"):
        Profile((1, 96, 128), (2, 96, 128), (1, 96, 128)).validate()
    monkeypatch.setenv("EDGESEG_TRT_CACHE", str(tmp_path))
    assert default_timing_cache("10.3.0", "NVIDIA GeForce RTX 4090") == \
        tmp_path / "timing_10.3.0_NVIDIA_GeForce_RTX_4090.cache"


# ----------------------------------------------------------------------------- ONNX preparation
def _labels(path: Path, frames: list[np.ndarray]) -> np.ndarray:
    p = load(path, device="cpu")
    return np.stack([p(f).labels for f in frames])


def test_fp16_onnx_for_strongly_typed_builds(semantic_onnx, tmp_path):
    onnx = pytest.importorskip("onnx")
    from edgeseg.export.tensorrt import convert_onnx_fp16

    out = convert_onnx_fp16(semantic_onnx, tmp_path / "m.fp16.onnx")
    model = onnx.load(str(out))
    onnx.checker.check_model(model)
    kinds = {t.data_type for t in model.graph.initializer if t.dims}
    assert onnx.TensorProto.FLOAT16 in kinds
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT  # I/O stay FP32
    frames = [synthetic.generate(i, size=(80, 100)).image for i in range(3)]
    agree = (_labels(out, frames) == _labels(semantic_onnx, frames)).mean()
    assert agree > 0.99
    assert load(out).meta.classes == META.classes  # metadata kept


def test_qdq_onnx_for_tensorrt_is_symmetric(semantic_onnx, tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import numpy_helper

    from edgeseg.export.quantize import quantize_onnx

    out = tmp_path / "m.qdq.onnx"
    settings = quantize_onnx(semantic_onnx, out, META, calib_images=4, activations="int8", symmetric=True,
                             quantize_bias=False)
    assert settings["activations"] == "int8 symmetric" and settings["bias"] == "float"
    model = onnx.load(str(out))
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    zero_points = [inits[n.input[2]] for n in model.graph.node
                   if n.op_type in ("QuantizeLinear", "DequantizeLinear") and len(n.input) > 2 and n.input[2] in inits]
    assert zero_points and all(z.dtype == np.int8 and not z.any() for z in zero_points)  # TensorRT: zero point 0
    frames = [synthetic.generate(i, size=(80, 100)).image for i in range(2)]
    assert (_labels(out, frames) == _labels(semantic_onnx, frames)).mean() > 0.8


# ----------------------------------------------------------------------------- without TensorRT
@no_trt
def test_clear_errors_without_tensorrt(semantic_onnx, tmp_path, capsys):
    from edgeseg.export.tensorrt import export_engine

    assert available_backends()["tensorrt"] is False
    with pytest.raises(ExportError, match="needs TensorRT.*pypi.nvidia.com"):
        export_engine(semantic_onnx, tmp_path / "m.engine")
    assert main(["export", str(semantic_onnx), "--format", "engine", "--fp16"]) == 2
    assert "needs TensorRT" in capsys.readouterr().err
    engine = write_engine(tmp_path / "m.engine", b"plan", {**HEADER, "meta": META.to_dict()})
    with pytest.raises(BackendError, match="backend 'tensorrt' is not available here: TensorRT is not installed"):
        load(engine)
    assert read_engine_header(engine)[0]["precision"] == "fp16"  # the header is readable without TensorRT
    assert not (tmp_path / "m.rejected.engine").exists()


def test_cuda_helper_errors():
    with pytest.raises(BackendError, match="CUDA devices"):
        open_cuda("cpu")
    with pytest.raises(BackendError, match="'cuda' or 'cuda:N'"):
        open_cuda("cuda:x")


def test_engine_suffix_routes_to_tensorrt(tmp_path):
    engine = write_engine(tmp_path / "m.engine", b"plan", HEADER)
    if HAVE_TRT:
        assert resolve_backend(engine).name == "tensorrt"
    else:
        with pytest.raises(BackendError, match="tensorrt"):
            resolve_backend(engine)


# ----------------------------------------------------------------------------- with TensorRT + GPU
@needs_trt_gpu
@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_build_and_run_engine(semantic_onnx, tmp_path, precision):
    from edgeseg.export.tensorrt import export_engine

    out = tmp_path / f"m.{precision}.engine"
    rep = export_engine(semantic_onnx, out, precision=precision, calib_images=8, val_images=4, parity_images=2,
                        verbose=False)
    assert rep.passed and out.is_file()
    header = read_engine_header(out)[0]
    assert header["precision"] == precision and header["gpu"]["name"]
    p = load(out)
    assert p.backend_name == "tensorrt" and p.meta.classes == META.classes
    frame = synthetic.generate(1, size=(90, 120)).image
    agree = (p(frame).labels == load(semantic_onnx, device="cpu")(frame).labels).mean()
    assert agree > (0.999 if precision == "fp32" else 0.9)
    assert json.loads(out.with_suffix(".parity.json").read_text())["passed"]


@needs_trt_gpu
def test_dynamic_engine_and_refusal_elsewhere(tmp_path):
    pytest.importorskip("torch")
    from edgeseg.export import export_onnx
    from edgeseg.export.tensorrt import export_engine
    from edgeseg.models import create_model, save_checkpoint

    ck = save_checkpoint(tmp_path / "ck", create_model("liteseg_t", len(synthetic.CLASSES)).eval(), META)
    dyn = export_onnx(ck, tmp_path / "dyn.onnx", dynamic=True, parity_images=0, verbose=False).onnx_path
    out = tmp_path / "dyn.engine"
    export_engine(dyn, out, max_batch=2, val_images=2, parity_images=2, verbose=False)
    from edgeseg.runtime.backends.tensorrt_backend import TensorRTBackend

    be = TensorRTBackend(out)
    y = be.infer({"images": np.zeros((2, 3, 96, 64), np.float32)})["logits"]
    assert y.shape == (2, len(synthetic.CLASSES), 12, 8)
    with pytest.raises(BackendError, match="optimisation profile"):
        be.infer({"images": np.zeros((3, 3, 64, 64), np.float32)})
    header, plan = read_engine(out)
    header["gpu"] = {"name": "Some Other GPU"}
    write_engine(tmp_path / "moved.engine", plan, header)
    with pytest.raises(BackendError, match="Rebuild it here"):
        TensorRTBackend(tmp_path / "moved.engine")


def test_calibration_key_follows_model_and_images(tmp_path):
    """A cached TensorRT 10 calibration table is reused only for the same ONNX bytes and the same
    calibration tensors (a retrained model must not inherit old INT8 scales)."""
    from edgeseg.export.tensorrt import calibration_key

    a, b = tmp_path / "a.onnx", tmp_path / "b.onnx"
    a.write_bytes(b"model-a")
    b.write_bytes(b"model-b")
    t = [np.zeros((1, 3, 8, 8), np.float32), np.ones((1, 3, 8, 8), np.float32)]
    k = calibration_key(a, t)
    assert len(k) == 64 and k == calibration_key(a, [x.copy() for x in t])
    assert k != calibration_key(b, t)
    assert k != calibration_key(a, t[:1])
    assert k != calibration_key(a, [t[0], t[1] * 2])
    assert k != calibration_key(a, [x.reshape(1, 3, 4, 16) for x in t])
