"""Runtime: backend registry, load() and its errors, metadata handling, predictor and results."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import edgeseg
from edgeseg import defaults
from edgeseg.data import synthetic
from edgeseg.errors import ArrayError, BackendError, InputFileError, ModelError
from edgeseg.meta import ModelMeta
from edgeseg import runtime
from edgeseg.runtime import SemanticResult, get_backend, list_backends, load
from edgeseg.runtime.backends import BACKENDS, available_backends, SUFFIXES, Backend, TensorSpec, register_backend

INPUT = (96, 128)
N_CLASSES = len(synthetic.CLASSES)


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    """A checkpoint of the smallest registered model, with weights that give varied labels."""
    pytest.importorskip("torch")
    from factories import semantic_checkpoint, smallest_semantic_model

    return semantic_checkpoint(tmp_path_factory.mktemp("ckpt"), smallest_semantic_model(), INPUT, zero_bias=True)


@pytest.fixture(scope="module")
def onnx_static(ckpt, tmp_path_factory) -> Path:
    from edgeseg.export import export_onnx

    return export_onnx(ckpt, tmp_path_factory.mktemp("s") / "m.onnx", parity_images=1, verbose=False).onnx_path


@pytest.fixture(scope="module")
def onnx_dynamic(ckpt, tmp_path_factory) -> Path:
    from edgeseg.export import export_onnx

    return export_onnx(ckpt, tmp_path_factory.mktemp("d") / "m.onnx", dynamic=True, parity_images=1,
                       verbose=False).onnx_path


def _plain_onnx(path: Path, dynamic: bool = False, labels_out: bool = False, hw=(64, 96),
                half: bool = False) -> Path:
    """A foreign ONNX (no edgeseg metadata): conv stride 2 -> ReLU -> 1x1 conv to 3 classes."""
    torch = pytest.importorskip("torch")
    import warnings

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, 2, 1), torch.nn.ReLU(), torch.nn.Conv2d(8, 3, 1))

    class ArgmaxHead(torch.nn.Module):  # full-resolution labels, as some exported graphs end
        def __init__(self):
            super().__init__()
            self.net = net

        def forward(self, x):
            y = torch.nn.functional.interpolate(self.net(x), scale_factor=2, mode="nearest")
            return y.argmax(1)

    model = (ArgmaxHead() if labels_out else net).eval()
    dtype = torch.float16 if half else torch.float32
    model = model.to(dtype)
    axes = {"input": {0: "n", 2: "h", 3: "w"}, "output": {0: "n"}} if dynamic else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.zeros(1, 3, *hw, dtype=dtype),), str(path), dynamo=False, opset_version=17,
                          input_names=["input"], output_names=["output"], dynamic_axes=axes)
    return path


def frame(i: int = 0, hw=(150, 200)) -> np.ndarray:
    return synthetic.generate(i, size=hw).image


# ----------------------------------------------------------------------------- registry


def test_registry_names_and_suffix_map():
    assert {"onnxruntime", "torch"} <= set(list_backends())
    assert SUFFIXES[".onnx"] == "onnxruntime"
    assert SUFFIXES[".safetensors"] == "torch" and SUFFIXES["<dir>"] == "torch"
    assert get_backend("onnxruntime").is_available() is True
    assert "onnxruntime" in list_backends(available_only=True)
    assert available_backends()["onnxruntime"] is True and set(available_backends()) == set(list_backends())


def test_unknown_backend_lists_valid(onnx_static):
    with pytest.raises(BackendError) as e:
        load(onnx_static, backend="tensorrtx")
    assert "onnxruntime" in str(e.value) and "torch" in str(e.value)


def test_backend_rejects_unknown_option(onnx_static):
    with pytest.raises(BackendError, match="fp16"):
        load(onnx_static, fp16=True)  # an ONNX Runtime session takes no fp16 flag


def test_cuda_request_without_cuda_build_fails_loudly(onnx_static):
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has CUDA")
    with pytest.raises(BackendError, match="onnxruntime-gpu"):
        load(onnx_static, device="cuda")


def test_onnx_backend_reports_provider_in_use(onnx_static):
    p = load(onnx_static, threads=1)
    be = p.backend
    assert be.provider in be.providers and be.provider == be.session.get_providers()[0]
    assert be.device == ("cpu" if be.provider == "CPUExecutionProvider" else be.device)
    d = p.describe()
    assert d["backend"] == "onnxruntime" and d["inputs"][0]["shape"] == [1, 3, *INPUT]
    json.dumps(d)


class NpzBackend(Backend):
    """A real (numpy) backend for the registry test: a 1x1 conv stored in an .npz, with meta."""

    name = "_test_npz"
    suffixes = (".npz",)
    options = ()

    @classmethod
    def is_available(cls) -> bool:
        return True

    def __init__(self, path, **options):
        super().__init__(path, **options)
        z = np.load(self.path)
        self.w, self._meta = z["w"], ModelMeta.from_json(str(z["meta"]))

    input_specs = property(lambda self: [TensorSpec("images", (1, 3, None, None), np.dtype(np.float32))])
    output_specs = property(lambda self: [TensorSpec("logits", (1, len(self.w), None, None), np.dtype(np.float32))])
    meta = property(lambda self: self._meta)
    device = property(lambda self: "cpu")

    def infer(self, inputs):
        return {"logits": np.einsum("kc,nchw->nkhw", self.w, inputs["images"]).astype(np.float32)}


def test_registered_backend_is_picked_by_suffix(tmp_path):
    register_backend(NpzBackend)
    try:
        w = np.eye(3, dtype=np.float32)  # logits = normalised R, G, B: label = strongest channel
        meta = ModelMeta(task="semantic", classes=["r", "g", "b"], input_size=(32, 32), output_stride=1)
        np.savez(tmp_path / "m.npz", w=w, meta=meta.to_json())
        p = load(tmp_path / "m.npz")
        assert isinstance(p.backend, NpzBackend)
        img = np.zeros((32, 32, 3), np.uint8)
        img[:, :10] = (0, 0, 255)  # red (BGR)
        img[:, 10:20] = (0, 255, 0)
        img[:, 20:] = (255, 0, 0)
        labels = p(img).labels
        assert (labels[:, 1:9] == 0).all() and (labels[:, 11:19] == 1).all() and (labels[:, 21:] == 2).all()
    finally:
        BACKENDS.pop(NpzBackend.name)
        SUFFIXES.pop(".npz")


# ----------------------------------------------------------------------------- load errors


def test_missing_file(tmp_path):
    with pytest.raises(InputFileError, match="not found"):
        load(tmp_path / "nope.onnx")
    assert issubclass(InputFileError, FileNotFoundError)


def test_garbage_onnx(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"this is not a protobuf \x00\xff" * 10)
    with pytest.raises(ModelError, match="not a valid ONNX model"):
        load(bad)
    bad.write_bytes(b"")
    with pytest.raises(ModelError, match="empty"):
        load(bad)


def test_unknown_suffix(tmp_path):
    f = tmp_path / "model.pb"
    f.write_bytes(b"x")
    with pytest.raises(ModelError) as e:
        load(f)
    assert ".onnx -> onnxruntime" in str(e.value) and "backend=" in str(e.value)


def test_directory_without_checkpoint(tmp_path):
    pytest.importorskip("torch")
    with pytest.raises(ModelError, match="lacks"):
        load(tmp_path)


def test_missing_default_model(monkeypatch, tmp_path):
    monkeypatch.setattr(runtime.loader, "ASSETS", tmp_path)
    with pytest.raises(InputFileError, match="no default model"):
        load()


def test_default_model_if_packaged():
    if not runtime.default_model_path().exists():
        pytest.skip("no default model packaged in this tree yet")
    r = load()(frame())
    assert r.labels.shape == (150, 200)


# ----------------------------------------------------------------------------- metadata


def test_metadata_roundtrip(onnx_static, ckpt):
    import onnx

    stored = ModelMeta.from_json({p.key: p.value for p in onnx.load(str(onnx_static)).metadata_props}[defaults.META_KEY])
    p = load(onnx_static)
    assert p.meta.to_dict() == stored.to_dict() == p.backend.meta.to_dict()
    assert p.classes == list(synthetic.CLASSES) and p.input_size == INPUT and p.meta.output_stride == 8


def test_overrides_checked_against_graph(onnx_static, onnx_dynamic):
    names = [f"c{i}" for i in range(N_CLASSES)]
    assert load(onnx_static, classes=names).classes == names
    with pytest.raises(ModelError, match=f"outputs {N_CLASSES} classes"):
        load(onnx_static, num_classes=N_CLASSES + 1)
    with pytest.raises(ModelError, match="fixed input height"):
        load(onnx_static, input_size=(64, 64))
    p = load(onnx_dynamic, input_size=(64, 96))
    assert p.input_size == (64, 96) and p(frame()).labels.shape == (150, 200)


def test_foreign_onnx_static_needs_only_mean_std(tmp_path):
    path = _plain_onnx(tmp_path / "plain.onnx")
    with pytest.raises(ModelError) as e:
        load(path)
    msg = str(e.value)
    assert "no edgeseg metadata" in msg and "mean=" in msg and "std=" in msg and "--mean" in msg
    assert "- classes" not in msg and "- input_size" not in msg  # both read from static shapes
    p = load(path, mean=(0, 0, 0), std=(255, 255, 255))
    assert p.classes == ["class_0", "class_1", "class_2"] and p.input_size == (64, 96)
    assert p.meta.output_stride == 2 and p.meta.input_name == "input"
    assert p(frame()).labels.shape == (150, 200)


def test_foreign_onnx_dynamic_lists_missing_facts(tmp_path):
    path = _plain_onnx(tmp_path / "dyn.onnx", dynamic=True)
    with pytest.raises(ModelError) as e:
        load(path, mean=(0, 0, 0), std=(1, 1, 1))
    msg = str(e.value)
    assert "- input_size" in msg and "--imgsz" in msg
    assert "- classes" not in msg and "- mean/std" not in msg
    p = load(path, input_size=64, classes=["a", "b", "c"], mean=(0, 0, 0), std=(255, 255, 255))
    assert p.meta.output_stride == 0  # unknown until a frame was seen
    assert p(frame()).labels.shape == (150, 200) and p.meta.output_stride == 2
    with pytest.raises(ModelError, match="outputs 3 classes, but 4"):
        load(path, input_size=64, num_classes=4, mean=(0, 0, 0), std=(1, 1, 1))


def test_foreign_onnx_with_label_output(tmp_path):
    path = _plain_onnx(tmp_path / "labels.onnx", labels_out=True)
    with pytest.raises(ModelError, match="- classes"):  # integer output: no class count in graph
        load(path, mean=(0, 0, 0), std=(255, 255, 255))
    p = load(path, num_classes=3, mean=(0, 0, 0), std=(255, 255, 255))
    img = frame(1, hw=(64, 96))  # frame size == input size: letterbox is the identity
    x, _ = runtime.preprocess(img, p.meta)
    ref = p.backend.infer({"input": x})["output"][0]
    got = p(img).labels
    assert got.dtype == np.uint8 and np.array_equal(got, ref.astype(np.uint8))
    assert len(np.unique(got)) > 1


def test_fp16_models_get_fp16_input(tmp_path, ckpt):
    mean_std = dict(mean=(0, 0, 0), std=(255, 255, 255))
    p32 = load(_plain_onnx(tmp_path / "f32.onnx"), **mean_std)
    p16 = load(_plain_onnx(tmp_path / "f16.onnx", half=True), **mean_std)
    assert p32.input_dtype == np.float32 and p16.input_dtype == np.float16
    f = frame(5)
    assert (p16(f).labels == p32(f).labels).mean() > 0.99
    t16 = load(ckpt, device="cpu", fp16=True)
    assert t16.input_dtype == np.float16 and t16.backend.provider == "torch-cpu-fp16"
    assert (t16(f).labels == load(ckpt, device="cpu")(f).labels).mean() > 0.98


# ----------------------------------------------------------------------------- predictor + results


def test_result_contents(onnx_static):
    p = load(onnx_static)
    f = frame(2)
    r = p(f)
    assert isinstance(r, SemanticResult) and r.frame is f
    assert r.labels.shape == f.shape[:2] and r.labels.dtype == np.uint8
    assert len(np.unique(r.labels)) > 1
    x, info = p.pre(f)  # the stages a threaded pipeline calls compose to the same labels
    assert x.shape == (1, 3, *INPUT) and info.src_hw == (150, 200)
    assert np.array_equal(p.post(p.infer(x)[0], info), r.labels)
    assert set(r.timings) == {"pre", "infer", "post"} and all(v >= 0 for v in r.timings.values())
    hist = r.class_histogram()
    assert list(hist) == list(synthetic.CLASSES) and sum(hist.values()) == f.shape[0] * f.shape[1]
    d = json.loads(json.dumps(r.to_dict()))
    assert d["height"] == 150 and sum(d["pixels"].values()) == 150 * 200


def test_overlay_uses_bgr_palette(onnx_static):
    r = load(onnx_static)(frame(2))
    ov = r.overlay()
    assert ov.shape == r.frame.shape and ov.dtype == np.uint8
    assert np.array_equal(r.overlay(alpha=0.0), r.frame)
    solid = r.overlay(alpha=1.0)
    pal_bgr = np.asarray(synthetic.PALETTE, np.uint8)[:, ::-1]
    background = (r.labels == 0)[..., None]  # left untinted
    assert background.any() and np.array_equal(solid, np.where(background, r.frame, pal_bgr[r.labels]))


def test_frame_validation(onnx_static):
    p = load(onnx_static)
    f = frame(3)
    flipped = f[:, ::-1]  # a non-contiguous view is accepted
    assert np.array_equal(p(flipped).labels, p(np.ascontiguousarray(flipped)).labels)
    with pytest.raises(ArrayError):
        p(f.astype(np.float32))
    with pytest.raises(ArrayError):
        p(f[..., 0])


def test_predict_batch_matches_single(onnx_dynamic):
    p = load(onnx_dynamic)
    frames = [frame(i, hw) for i, hw in enumerate([(150, 200), (120, 90), (96, 128)])]
    batch = p.predict_batch(frames)
    for f, r in zip(frames, batch):
        single = p(f)
        assert r.labels.shape == f.shape[:2]
        assert (r.labels == single.labels).mean() >= 0.999
        assert set(r.timings) == {"pre", "infer", "post"}
    assert [r.labels.shape for r in p.stream(iter(frames))] == [f.shape[:2] for f in frames]


def test_torch_backend_agrees_with_onnx(ckpt, onnx_static):
    f = frame(4, (180, 260))
    pt = load(ckpt, device="cpu")
    assert pt.backend.name == "torch" and pt.backend.provider == "torch-cpu"
    assert load(ckpt / "model.safetensors", backend="auto").backend.name == "torch"
    on = load(onnx_static)
    a, b = pt(f).labels, on(f).labels
    assert len(np.unique(a)) > 1
    assert (a == b).mean() >= defaults.PARITY_MIN_AGREEMENT


def test_onnx_path_never_imports_torch(onnx_static):
    code = f"""
import sys
import numpy as np
import edgeseg
from edgeseg.data import synthetic
p = edgeseg.load({str(onnx_static)!r})
r = p(synthetic.generate(0, size=(100, 120)).image)
r.overlay(); r.to_dict()
bad = sorted(m for m in sys.modules if m == "torch" or m.startswith(("torch.", "edgeseg.models", "edgeseg.export")))
assert not bad, bad
print("ok", r.labels.shape)
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert "ok (100, 120)" in res.stdout


def test_package_load_delegates(onnx_static):
    assert isinstance(edgeseg.load(onnx_static), runtime.SemanticPredictor)
