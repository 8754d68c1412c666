"""Shared model harness: every registered model is checked the same way."""
from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edgeseg.errors import ModelError  # noqa: E402
from edgeseg.models import create_model, list_models, register_model  # noqa: E402
from edgeseg.models.registry import UnknownModelError  # noqa: E402

MODELS = [n for n in list_models(task="semantic") if not n.startswith("_")]  # "_" names are test-only
NUM_CLASSES = 5
# hard upper bounds on parameter counts (sanity: a typo in a width shows up here)
MAX_PARAMS = {"liteseg_t": 0.5e6, "liteseg_s": 1.5e6, "liteseg_m": 4e6, "fcn": 4e6}


def _model(name: str):
    torch.manual_seed(0)
    return create_model(name, NUM_CLASSES)


def test_registry_lists_the_required_models():
    assert {"fcn", "liteseg_t", "liteseg_s", "liteseg_m"} <= set(MODELS)


def test_unknown_name_raises_keyerror_listing_valid_names():
    with pytest.raises(KeyError) as e:
        create_model("no_such_net", 3)
    assert isinstance(e.value, ModelError) and isinstance(e.value, UnknownModelError)
    for name in MODELS:
        assert name in str(e.value)


def test_register_rejects_duplicate_names():
    with pytest.raises(ValueError):
        register_model("fcn")(lambda num_classes: None)


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("hw", [(64, 64), (97, 131), (33, 50)])
def test_output_shape_is_input_over_stride(name, hw):
    model = _model(name).eval()
    s = model.output_stride
    assert s == 8
    with torch.no_grad():
        y = model(torch.randn(2, 3, *hw))
    assert y.shape == (2, NUM_CLASSES, math.ceil(hw[0] / s), math.ceil(hw[1] / s))
    assert y.dtype == torch.float32


@pytest.mark.parametrize("name", MODELS)
def test_fully_convolutional_no_linear_no_softmax(name):
    model = _model(name)
    assert not any(isinstance(m, (torch.nn.Linear, torch.nn.Softmax, torch.nn.Flatten))
                   for m in model.modules())
    # logits, not probabilities: values are not confined to [0, 1] and do not sum to 1
    with torch.no_grad():
        y = model.eval()(torch.randn(1, 3, 64, 64) * 3)
    assert not torch.allclose(y.sum(1), torch.ones(1))


@pytest.mark.parametrize("name", MODELS)
def test_backward_reaches_every_parameter(name):
    model = _model(name).train()
    x = torch.randn(2, 3, 64, 80)
    y = model(x)
    target = torch.randint(0, NUM_CLASSES, (2, y.shape[2], y.shape[3]))
    torch.nn.functional.cross_entropy(y, target).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing


@pytest.mark.parametrize("name", MODELS)
def test_eval_is_deterministic_and_batch_independent(name):
    model = _model(name).eval()
    x = torch.randn(3, 3, 72, 72)
    with torch.no_grad():
        a = model(x)
        b = model(x)
        c = model(x[1:2])
    assert torch.equal(a, b)
    torch.testing.assert_close(a[1:2], c, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", MODELS)
def test_param_count_sanity(name):
    n = sum(p.numel() for p in _model(name).parameters())
    assert 50_000 < n < MAX_PARAMS[name]


def test_sizes_are_ordered():
    n = {m: sum(p.numel() for p in _model(m).parameters()) for m in ("liteseg_t", "liteseg_s", "liteseg_m")}
    assert n["liteseg_t"] < n["liteseg_s"] < n["liteseg_m"]


def test_num_classes_and_kwargs_are_honoured():
    m = create_model("liteseg_t", 3, head=16)
    assert m.head.cls.out_channels == 3 and m.head.conv[0].out_channels == 16
    assert m.edgeseg_cfg == {"name": "liteseg_t", "num_classes": 3, "kwargs": {"head": 16}}
    with pytest.raises(ModelError):
        create_model("liteseg_t", 0)


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning")
@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript", "dynamo"])
def test_onnx_export_matches_onnxruntime(tmp_path, dynamo):
    ort = pytest.importorskip("onnxruntime")
    onnx = pytest.importorskip("onnx")
    if dynamo:
        pytest.importorskip("onnxscript")
    model = _model("liteseg_t").eval()
    x = torch.randn(1, 3, 96, 128)
    path = tmp_path / "m.onnx"
    torch.onnx.export(model, (x,), str(path), opset_version=17, input_names=["images"],
                      output_names=["logits"], dynamo=dynamo, external_data=False)
    proto = onnx.load(str(path))
    assert [o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")] == [17]
    ops = {n.op_type for n in proto.graph.node}
    assert not ops & {"Softmax", "ArgMax", "Gemm", "MatMul"}
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(["logits"], {"images": x.numpy()})[0]
    with torch.no_grad():
        want = model(x).numpy()
    assert got.shape == want.shape == (1, NUM_CLASSES, 12, 16)
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4)
    assert (got.argmax(1) == want.argmax(1)).mean() > 0.999


def test_tiny_model_is_small_enough_to_ship():
    n = sum(p.numel() for p in create_model("liteseg_t", 7).parameters())
    assert n * 4 < 2 * 1024 * 1024  # float32 weights under 2 MB


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_onnx_dynamic_hw_export_runs_at_other_sizes(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    model = _model("liteseg_t").eval()
    path = tmp_path / "dyn.onnx"
    torch.onnx.export(model, (torch.randn(1, 3, 64, 64),), str(path), opset_version=17,
                      input_names=["images"], output_names=["logits"], dynamo=False,
                      dynamic_axes={"images": {0: "n", 2: "h", 3: "w"}, "logits": {0: "n", 2: "h8", 3: "w8"}})
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for hw in [(96, 160), (75, 50)]:
        x = torch.randn(2, 3, *hw)
        got = sess.run(None, {"images": x.numpy()})[0]
        with torch.no_grad():
            want = model(x).numpy()
        np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4)


# ------------------------------------------------------------------------------ checkpoints


def _meta(n=NUM_CLASSES):
    from edgeseg.meta import ModelMeta

    return ModelMeta(task="semantic", classes=[f"c{i}" for i in range(n)], input_size=(64, 64),
                     arch="liteseg_t", output_stride=8)


def test_checkpoint_roundtrip(tmp_path):
    from edgeseg.models.checkpoint import load_checkpoint, save_checkpoint

    model = create_model("liteseg_t", NUM_CLASSES, head=24)
    model.train()(torch.randn(2, 3, 64, 64))  # move the BN running stats off their defaults
    d = save_checkpoint(tmp_path / "ck", model, _meta(), extra={"note": "x"})
    assert sorted(p.name for p in d.iterdir()) == ["config.json", "model.safetensors"]
    loaded, meta, cfg = load_checkpoint(d)
    assert not loaded.training
    assert meta == _meta() and cfg["model"] == {"name": "liteseg_t", "num_classes": NUM_CLASSES,
                                                "kwargs": {"head": 24}}
    assert cfg["extra"] == {"note": "x"}
    x = torch.randn(1, 3, 40, 56)
    with torch.no_grad():
        assert torch.equal(loaded(x), model.eval()(x))
    # a file path inside the directory works too
    load_checkpoint(d / "config.json")


def test_checkpoint_explicit_model_cfg(tmp_path):
    from edgeseg.models.checkpoint import load_checkpoint, save_checkpoint
    from edgeseg.models.semantic import FCN

    model = FCN(NUM_CLASSES)  # built directly: no edgeseg_cfg record
    with pytest.raises(ModelError, match="model_cfg"):
        save_checkpoint(tmp_path / "a", model, _meta())
    save_checkpoint(tmp_path / "a", model, _meta(), {"name": "fcn", "kwargs": {}})
    assert isinstance(load_checkpoint(tmp_path / "a")[0], FCN)
    with pytest.raises(ModelError, match="classes"):
        save_checkpoint(tmp_path / "b", model, _meta(3), {"name": "fcn", "kwargs": {}})


def _saved(tmp_path):
    from edgeseg.models.checkpoint import save_checkpoint

    return save_checkpoint(tmp_path / "ck", create_model("liteseg_t", NUM_CLASSES), _meta())


@pytest.mark.parametrize("case", ["no_dir", "no_weights", "no_config", "bad_json", "no_sections",
                                  "unknown_model", "bad_kwargs", "missing_keys", "unexpected_keys",
                                  "shape_mismatch", "corrupt_weights"])
def test_checkpoint_errors_are_model_errors(tmp_path, case):
    import json

    from safetensors.torch import load_file, save_file

    from edgeseg.models.checkpoint import load_checkpoint

    d = _saved(tmp_path)
    cfg_path, w_path = d / "config.json", d / "model.safetensors"
    cfg = json.loads(cfg_path.read_text())
    match = None
    if case == "no_dir":
        d, match = tmp_path / "nope", "does not exist"
    elif case == "no_weights":
        w_path.unlink(); match = "model.safetensors"
    elif case == "no_config":
        cfg_path.unlink(); match = "config.json"
    elif case == "bad_json":
        cfg_path.write_text("{not json"); match = "not valid JSON"
    elif case == "no_sections":
        cfg_path.write_text("{}"); match = "meta"
    elif case == "unknown_model":
        cfg["model"]["name"] = "resnet9000"; cfg_path.write_text(json.dumps(cfg)); match = "unknown model"
    elif case == "bad_kwargs":
        cfg["model"]["kwargs"] = {"bogus": 1}; cfg_path.write_text(json.dumps(cfg)); match = "bad kwargs"
    elif case == "corrupt_weights":
        w_path.write_bytes(b"\x00" * 64); match = "safetensors"
    else:
        state = load_file(str(w_path))
        k = sorted(state)[3]
        if case == "missing_keys":
            del state[k]; match = "missing keys"
        elif case == "unexpected_keys":
            state["extra.weight"] = torch.zeros(1); match = "unexpected keys"
        else:
            state[k] = torch.zeros(*state[k].shape, 2); match = "shape mismatch"
        save_file(state, str(w_path))
    with pytest.raises(ModelError, match=match):
        load_checkpoint(d)


def test_checkpoint_class_count_mismatch_is_caught(tmp_path):
    import json

    from edgeseg.models.checkpoint import load_checkpoint

    d = _saved(tmp_path)
    cfg = json.loads((d / "config.json").read_text())
    cfg["model"]["num_classes"] = NUM_CLASSES + 1
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelError, match="shape mismatch"):
        load_checkpoint(d)


def test_checkpoint_never_unpickles(tmp_path):
    """A pickle bomb named like the weights file is rejected, not executed."""
    import pickle

    from edgeseg.models.checkpoint import load_checkpoint

    d = _saved(tmp_path)
    marker = tmp_path / "pwned"

    class Bomb:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    (d / "model.safetensors").write_bytes(pickle.dumps(Bomb()))
    with pytest.raises(ModelError):
        load_checkpoint(d)
    assert not marker.exists()
