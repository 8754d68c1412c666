"""YOLOSeg instance models: forward contract, box decoding, ONNX export, checkpoints."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edgeseg.models import create_model  # noqa: E402
from edgeseg.models.instance import YOLOSeg, decode_boxes, make_anchors  # noqa: E402

SIZES = ["yoloseg_n", "yoloseg_s"]
NC = 5


def _model(name: str = "yoloseg_n", **kw) -> YOLOSeg:
    torch.manual_seed(0)
    return create_model(name, NC, **kw)


def _num_anchors(h: int, w: int) -> int:
    return sum((h // s) * (w // s) for s in (8, 16, 32))


@pytest.mark.parametrize("name", SIZES)
@pytest.mark.parametrize("hw", [(64, 64), (96, 160)])
def test_eval_forward_contract(name, hw):
    model = _model(name).eval()
    assert model.num_classes == NC and model.num_protos == 32
    assert tuple(model.strides) == (8, 16, 32) and model.output_stride == 4 and model.input_multiple == 32
    assert model.output_names == ("boxes", "scores", "coeffs", "protos")
    with torch.no_grad():
        out = model(torch.randn(2, 3, *hw))
    assert isinstance(out, tuple) and len(out) == 4
    boxes, scores, coeffs, protos = out
    a = _num_anchors(*hw)
    assert boxes.shape == (2, a, 4) and scores.shape == (2, a, NC) and coeffs.shape == (2, a, 32)
    assert protos.shape == (2, 32, hw[0] // 4, hw[1] // 4)
    assert all(t.dtype == torch.float32 for t in out)
    assert scores.min() >= 0 and scores.max() <= 1
    assert (boxes[..., 2:] >= boxes[..., :2]).all()  # distances are positive (softplus)
    assert coeffs.min() < 0 < coeffs.max()  # raw, no activation


@pytest.mark.parametrize("name", SIZES)
def test_train_forward_and_backward_reach_every_parameter(name):
    model = _model(name).train()
    out = model(torch.randn(2, 3, 64, 96))
    a = _num_anchors(64, 96)
    assert out["cls"].shape == (2, a, NC) and out["dist"].shape == (2, a, 4) and out["boxes"].shape == (2, a, 4)
    assert out["coeffs"].shape == (2, a, 32) and out["protos"].shape == (2, 32, 16, 24)
    assert out["anchors"].shape == (a, 2) and out["anchor_strides"].shape == (a, 1)
    loss = out["cls"].sigmoid().mean() + out["boxes"].mean() * 1e-3 + (out["coeffs"] @ out["protos"].flatten(2)).mean()
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing


def test_sizes_are_ordered_and_small():
    n = {m: sum(p.numel() for p in _model(m).parameters()) for m in SIZES}
    assert 0.3e6 < n["yoloseg_n"] < n["yoloseg_s"] < 6e6


def test_kwargs_and_num_protos_are_honoured():
    m = create_model("yoloseg_n", 3, num_protos=8)
    assert m.num_protos == 8 and m.edgeseg_cfg == {"name": "yoloseg_n", "num_classes": 3,
                                                    "kwargs": {"num_protos": 8}}
    with torch.no_grad():
        _, scores, coeffs, protos = m.eval()(torch.randn(1, 3, 32, 32))
    assert scores.shape[-1] == 3 and coeffs.shape[-1] == 8 and protos.shape == (1, 8, 8, 8)


def test_anchor_order_is_stride_then_row_major():
    pts, strides = make_anchors([(2, 3), (1, 2)], (8, 16))
    want = [(4, 4), (12, 4), (20, 4), (4, 12), (12, 12), (20, 12), (8, 8), (24, 8)]
    assert pts.tolist() == [list(map(float, p)) for p in want]
    assert strides.flatten().tolist() == [8.0] * 6 + [16.0] * 2


def test_known_head_output_decodes_to_the_expected_box():
    """Zero the box convs' weights: every anchor then outputs softplus(bias) stride units per side."""
    model = _model().eval()
    dists = (1.0, 2.0, 3.0, 0.5)  # l, t, r, b in stride units
    for head in model.heads:
        conv = head.box[-1]
        torch.nn.init.zeros_(conv.weight)
        with torch.no_grad():
            conv.bias.copy_(torch.tensor([math.log(math.expm1(d)) for d in dists]))
    h, w = 64, 96
    with torch.no_grad():
        boxes = model(torch.randn(1, 3, h, w))[0][0]
    a8, a16 = (h // 8) * (w // 8), (h // 16) * (w // 16)
    # anchor 0: cell (0, 0) at stride 8 -> point (4, 4); anchor 13: row 1, col 1 at stride 8 (12 cols)
    # anchor a8 + 1: row 0, col 1 at stride 16 -> point (24, 8); last: bottom-right cell at stride 32
    cases = [(0, 4, 4, 8), (13, 12, 12, 8), (a8 + 1, 24, 8, 16), (a8 + a16 + 5, 80, 48, 32)]
    for idx, cx, cy, s in cases:
        l, t, r, b = dists
        want = [cx - l * s, cy - t * s, cx + r * s, cy + b * s]
        np.testing.assert_allclose(boxes[idx].numpy(), want, rtol=0, atol=1e-4)
    assert boxes.shape[0] == _num_anchors(h, w)


def test_decode_boxes_matches_formula():
    anchors = torch.tensor([[4.0, 4.0], [24.0, 8.0]])
    strides = torch.tensor([[8.0], [16.0]])
    dist = torch.tensor([[[1.0, 1.0, 1.0, 1.0], [0.5, 2.0, 1.5, 0.0]]])
    got = decode_boxes(dist, anchors, strides)
    assert got.tolist() == [[[-4.0, -4.0, 12.0, 12.0], [16.0, -24.0, 48.0, 8.0]]]


def _export(model, path, h, w, dynamic=False):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.zeros(1, 3, h, w),), str(path), opset_version=17, dynamo=False,
                          input_names=["images"], output_names=list(model.output_names),
                          dynamic_axes=({"images": {0: "n", 2: "h", 3: "w"}} if dynamic else None))


@pytest.mark.parametrize("name", SIZES)
def test_onnx_export_opset17_matches_onnxruntime(tmp_path, name):
    ort = pytest.importorskip("onnxruntime")
    onnx = pytest.importorskip("onnx")
    model = _model(name).eval()
    path = tmp_path / "m.onnx"
    _export(model, path, 64, 96)
    proto = onnx.load(str(path))
    assert [o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")] == [17]
    ops = {n.op_type for n in proto.graph.node}
    assert not ops & {"NonMaxSuppression", "NonZero", "TopK", "Loop", "If"}
    assert [o.name for o in proto.graph.output] == list(model.output_names)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = torch.randn(1, 3, 64, 96)
    got = sess.run(None, {"images": x.numpy()})
    with torch.no_grad():
        want = [t.numpy() for t in model(x)]
    for g, wnt, tol in zip(got, want, (1e-2, 1e-4, 1e-3, 1e-3)):
        assert g.shape == wnt.shape
        np.testing.assert_allclose(g, wnt, rtol=1e-3, atol=tol)


def test_onnx_dynamic_hw_export_decodes_at_other_sizes(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    model = _model().eval()
    path = tmp_path / "dyn.onnx"
    _export(model, path, 64, 64, dynamic=True)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = torch.randn(2, 3, 96, 128)
    got = sess.run(None, {"images": x.numpy()})
    with torch.no_grad():
        want = [t.numpy() for t in model(x)]
    assert got[0].shape == (2, _num_anchors(96, 128), 4)
    for g, wnt in zip(got, want):
        np.testing.assert_allclose(g, wnt, rtol=1e-3, atol=1e-2)


def test_checkpoint_roundtrip_with_instance_meta(tmp_path):
    from edgeseg.meta import ModelMeta
    from edgeseg.models.checkpoint import load_checkpoint, save_checkpoint

    model = _model("yoloseg_n", num_protos=16)
    model.train()(torch.randn(2, 3, 64, 64))  # move BN statistics
    meta = ModelMeta(task="instance", classes=[f"c{i}" for i in range(NC)], input_size=(64, 64), arch="yoloseg_n",
                     output_stride=4, output_names=list(model.output_names),
                     extra={"num_protos": 16, "strides": [8, 16, 32]})
    save_checkpoint(tmp_path / "ck", model, meta)
    loaded, meta2, cfg = load_checkpoint(tmp_path / "ck")
    assert meta2 == meta and cfg["model"]["kwargs"] == {"num_protos": 16}
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        for a, b in zip(loaded(x), model.eval()(x)):
            assert torch.equal(a, b)
