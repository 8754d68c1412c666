"""Hostile model files: external data leaving the folder, truncation, size bombs, custom ops,
special files. Each must be a clear EdgesegError before ONNX Runtime parses anything."""
from __future__ import annotations

import os
import threading

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

import edgeseg  # noqa: E402
from edgeseg import EdgesegError, InputFileError, ModelError  # noqa: E402
from edgeseg.runtime.model_files import check_onnx  # noqa: E402

IMAGENET = dict(mean=(123.675, 116.28, 103.53), std=(58.395, 57.12, 57.375))


def _model(weights: np.ndarray | None = None, domain: str = ""):
    w = weights if weights is not None else np.random.default_rng(0).normal(0, 0.1, (4, 3, 4, 4)).astype(np.float32)
    nodes = [helper.make_node("Conv", ["images", "W"], ["logits"], kernel_shape=[4, 4], strides=[4, 4])]
    opsets = [helper.make_opsetid("", 17)]
    if domain:
        nodes.append(helper.make_node("Fancy", ["logits"], ["extra"], domain=domain))
        opsets.append(helper.make_opsetid(domain, 1))
    outputs = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 4, 16, 16])]
    if domain:
        outputs.append(helper.make_tensor_value_info("extra", TensorProto.FLOAT, None))
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 64, 64])],
                          outputs, [numpy_helper.from_array(w, "W")])
    m = helper.make_model(g, opset_imports=opsets)
    m.ir_version = 8
    return m


def _external(tmp_path, name="m.onnx"):
    """A model whose weights live in an external file 'w.bin' beside it."""
    m = _model()
    onnx.save(m, str(tmp_path / name), save_as_external_data=True, all_tensors_to_one_file=True, location="w.bin",
              size_threshold=0)
    return tmp_path / name


def _set_external(path, **changes):
    m = onnx.load(str(path), load_external_data=False)
    entries = m.graph.initializer[0].external_data
    for k, v in changes.items():
        for e in entries:
            if e.key == k:
                e.value = v
                break
        else:
            entries.add(key=k, value=v)
    onnx.save(m, str(path))


def test_external_data_beside_the_model_loads(tmp_path):
    path = _external(tmp_path)
    check_onnx(path)
    assert edgeseg.load(path, **IMAGENET)(np.zeros((48, 64, 3), np.uint8)).labels.shape == (48, 64)


@pytest.mark.parametrize("location", ["../w.bin", "sub/../../w.bin", "/etc/passwd", "..\\w.bin"])
def test_external_data_outside_the_folder_is_refused(tmp_path, location):
    d = tmp_path / "model"
    d.mkdir()
    path = _external(d)
    (tmp_path / "w.bin").write_bytes((d / "w.bin").read_bytes())
    _set_external(path, location=location)
    with pytest.raises(ModelError, match="outside the model's folder"):
        edgeseg.load(path, **IMAGENET)


def test_symlinked_and_hardlinked_external_data_are_refused(tmp_path):
    d = tmp_path / "model"
    d.mkdir()
    path = _external(d)
    secret = tmp_path / "secret.bin"
    secret.write_bytes((d / "w.bin").read_bytes())
    (d / "w.bin").unlink()
    os.symlink(secret, d / "w.bin")
    with pytest.raises(ModelError, match="resolves outside"):
        check_onnx(path)
    (d / "w.bin").unlink()
    os.link(secret, d / "w.bin")
    with pytest.raises(ModelError, match="hard link"):
        check_onnx(path)


@pytest.mark.parametrize("changes, words", [
    (dict(offset="100000"), "past the file's end"),
    (dict(length="16"), "shape and type need 768"),
    (dict(offset="-5"), "past the file's end"),
    (dict(offset="x"), "non-numeric"),
    (dict(location="missing.bin"), "does not exist"),
])
def test_tampered_external_data_is_refused(tmp_path, changes, words):
    path = _external(tmp_path)
    _set_external(path, **changes)
    with pytest.raises(ModelError, match=words):
        check_onnx(path)


def test_duplicate_external_keys_are_refused(tmp_path):
    path = _external(tmp_path)
    m = onnx.load(str(path), load_external_data=False)
    m.graph.initializer[0].external_data.add(key="location", value="w.bin")
    onnx.save(m, str(path))
    with pytest.raises(ModelError, match="repeats external-data key"):
        check_onnx(path)


def test_size_bombs_and_custom_ops_are_refused(tmp_path, monkeypatch):
    m = _model()
    t = m.graph.initializer[0]
    del t.dims[:]
    t.dims.extend([1 << 20, 1 << 20, 4])
    onnx.save(m, str(tmp_path / "bomb.onnx"))
    with pytest.raises(ModelError, match="budget"):
        check_onnx(tmp_path / "bomb.onnx")
    onnx.save(_model(domain="com.evil"), str(tmp_path / "custom.onnx"))
    with pytest.raises(ModelError, match="custom domain.*com.evil.*EDGESEG_ALLOW_CUSTOM_OPS"):
        edgeseg.load(tmp_path / "custom.onnx", **IMAGENET)
    check_onnx(tmp_path / "custom.onnx", allow_custom_ops=True)


@pytest.mark.parametrize("mutate", ["empty", "truncated", "random", "garbage_suffix", "bitflips"])
def test_broken_files_are_clear_errors(tmp_path, mutate):
    good = tmp_path / "good.onnx"
    onnx.save(_model(), str(good))
    data = bytearray(good.read_bytes())
    rng = np.random.default_rng(len(mutate))
    if mutate == "empty":
        data = bytearray()
    elif mutate == "truncated":
        data = data[: len(data) // 2]
    elif mutate == "random":
        data = bytearray(rng.integers(0, 256, 4000, dtype=np.uint8).tobytes())
    elif mutate == "garbage_suffix":
        data += bytes(rng.integers(0, 256, 300, dtype=np.uint8).tobytes())
    else:
        for i in rng.integers(0, len(data), 20):
            data[i] ^= 0xFF
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(bytes(data))
    try:
        edgeseg.load(bad, **IMAGENET)(np.zeros((32, 32, 3), np.uint8))
    except EdgesegError:
        pass  # refused clearly (a bit flip inside weights may also load and run: both are fine)


def test_special_files_are_refused_without_blocking(tmp_path):
    fifo = tmp_path / "model.onnx"
    os.mkfifo(fifo)
    result: list = []
    t = threading.Thread(target=lambda: result.append(pytest.raises(InputFileError, edgeseg.load, fifo)), daemon=True)
    t.start()
    t.join(10)
    assert not t.is_alive(), "loading a FIFO blocked"
    assert "FIFO" in str(result[0].value)
    with pytest.raises(InputFileError, match="device"):
        check_onnx("/dev/zero")
