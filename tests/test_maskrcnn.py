"""Mask R-CNN: RoIAlign / NMS / box coding against references and ONNX Runtime, target assignment,
the model's stages and inference graph, training through the instance trainer, ONNX export parity
and the runtime predictor (paste_masks) - with a model trained for a few seconds, which is enough
for decisive scores (an untrained model's near-tied proposals make any export comparison noisy).
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")

from edgeseg import load, ops  # noqa: E402
from edgeseg.data import open_instance_dataset  # noqa: E402
from edgeseg.data.synthetic import generate  # noqa: E402
from edgeseg.errors import ModelError  # noqa: E402
from edgeseg.meta import ModelMeta  # noqa: E402
from edgeseg.models import create_model, save_checkpoint  # noqa: E402
from edgeseg.models.instance.maskrcnn import (MaskRCNN, batched_nms, decode_boxes, encode_boxes,  # noqa: E402
                                              grid_anchors, multilevel_roi_align, roi_align)
from edgeseg.models.instance.maskrcnn.ops import assign_levels, cell_anchors, roi_align_per_roi  # noqa: E402
from edgeseg.runtime.results import InstanceResult  # noqa: E402
from edgeseg.train.dataset import normalize  # noqa: E402
from edgeseg.train.instance_dataset import InstanceTrainDataset, instance_collate  # noqa: E402
from edgeseg.train.maskrcnn_losses import IGNORE, NEGATIVE, POSITIVE, MaskRCNNLoss, match, sample  # noqa: E402

try:  # tests/ may or may not be a package
    from .reference import ref_nms, ref_roi_align
except ImportError:
    from reference import ref_nms, ref_roi_align

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SIZE = 64


def _boxes(rng: np.random.Generator, n: int, lo: float, hi: float, max_size: float) -> np.ndarray:
    b = rng.uniform(lo, hi, (n, 4)).astype(np.float32)
    b[:, 2:] = b[:, :2] + rng.uniform(0.0, max_size, (n, 2)).astype(np.float32)
    return b


def _ort(model: torch.nn.Module, args: tuple, names: list[str], path: Path, dynamic: dict | None = None):
    import warnings

    import onnxruntime

    with warnings.catch_warnings():  # the legacy exporter's deprecation notice (edgeseg.export uses it too)
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(model, args, str(path), dynamo=False, opset_version=17, input_names=names,
                          dynamic_axes=dynamic)
    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])


# ------------------------------------------------------------------------------- RoIAlign


@SETTINGS
@given(n=st.integers(1, 2), c=st.integers(1, 3), h=st.integers(1, 9), w=st.integers(1, 9), ph=st.integers(1, 4),
       pw=st.integers(1, 4), sr=st.integers(1, 3), scale=st.sampled_from([0.25, 0.5, 1.0]),
       aligned=st.booleans(), seed=st.integers(0, 2**16))
def test_roi_align_matches_the_reference(n, c, h, w, ph, pw, sr, scale, aligned, seed):
    rng = np.random.default_rng(seed)
    feat = rng.standard_normal((n, c, h, w)).astype(np.float32)
    # boxes inside, across the edges and entirely outside the map, including empty ones
    boxes = _boxes(rng, 7, -8.0 / scale, (max(h, w) + 4) / scale, 12.0 / scale)
    boxes[0, 2:] = boxes[0, :2]
    bidx = rng.integers(0, n, len(boxes))
    got = roi_align(torch.from_numpy(feat), torch.from_numpy(boxes), torch.from_numpy(bidx), (ph, pw), scale, sr,
                    aligned)
    np.testing.assert_allclose(got.numpy(), ref_roi_align(feat, boxes, bidx, ph, pw, scale, sr, aligned),
                               rtol=1e-5, atol=1e-5)
    per_roi = roi_align_per_roi(torch.from_numpy(feat[bidx]), torch.from_numpy(boxes), (ph, pw), scale, sr, aligned)
    np.testing.assert_allclose(per_roi.numpy(), got.numpy(), rtol=1e-5, atol=1e-5)


def test_roi_align_is_differentiable_and_multilevel_picks_each_level():
    rng = np.random.default_rng(1)
    feat = torch.from_numpy(rng.standard_normal((2, 2, 5, 6))).requires_grad_(True)
    boxes = torch.from_numpy(_boxes(rng, 4, -2, 20, 12).astype(np.float64))
    bidx = torch.tensor([0, 1, 1, 0])
    assert torch.autograd.gradcheck(lambda f: roi_align(f, boxes, bidx, (3, 2), 0.25, 2), (feat,))
    f0, f1 = (torch.from_numpy(rng.standard_normal((2, 3, s, s)).astype(np.float32)) for s in (16, 8))
    b = torch.from_numpy(_boxes(rng, 9, 0, 50, 30))
    bi, lv = torch.from_numpy(rng.integers(0, 2, 9)), torch.from_numpy(rng.integers(0, 2, 9))
    got = multilevel_roi_align([f0, f1], [4, 8], b, bi, lv, (3, 3), 2)
    want = torch.where(lv.view(-1, 1, 1, 1) == 0, roi_align(f0, b, bi, (3, 3), 0.25),
                       roi_align(f1, b, bi, (3, 3), 0.125))
    torch.testing.assert_close(got, want)
    # FPN level rule: a 224-pixel box goes to P4, quarter / four times that to the ends of P2..P5
    sizes = torch.tensor([[0, 0, 224, 224], [0, 0, 56, 56], [0, 0, 20, 20], [0, 0, 900, 900.0]])
    assert assign_levels(sizes, 4, 2).tolist() == [2, 0, 0, 3]


@pytest.mark.parametrize("aligned", [True, False])
def test_roi_align_exports_to_onnx_roialign_and_agrees_with_ort(tmp_path, aligned):
    rng = np.random.default_rng(2)
    feat = rng.standard_normal((2, 4, 11, 13)).astype(np.float32)
    boxes = _boxes(rng, 15, -10, 50, 40)
    bidx = rng.integers(0, 2, 15)

    class M(torch.nn.Module):
        def forward(self, f, b, i):
            return roi_align(f, b, i, (7, 5), 0.25, 2, aligned)

    sess = _ort(M(), tuple(torch.from_numpy(a) for a in (feat, boxes, bidx)), ["f", "b", "i"], tmp_path / "ra.onnx",
                {"b": {0: "k"}, "i": {0: "k"}})
    import onnx

    nodes = [n for n in onnx.load(str(tmp_path / "ra.onnx")).graph.node if n.op_type == "RoiAlign"]
    assert len(nodes) == 1
    mode = {a.name: a for a in nodes[0].attribute}["coordinate_transformation_mode"].s.decode()
    assert mode == ("half_pixel" if aligned else "output_half_pixel")
    for k in (15, 3):  # dynamic number of boxes
        got = sess.run(None, {"f": feat, "b": boxes[:k], "i": bidx[:k].astype(np.int64)})[0]
        np.testing.assert_allclose(got, ref_roi_align(feat, boxes[:k], bidx[:k], 7, 5, 0.25, 2, aligned), atol=1e-5)


# ------------------------------------------------------------------------------------ NMS


@SETTINGS
@given(n=st.integers(0, 40), groups=st.integers(1, 3), iou=st.sampled_from([0.3, 0.5, 0.7]),
       thr=st.sampled_from([None, 0.2]), seed=st.integers(0, 2**16))
def test_batched_nms_matches_a_greedy_loop(n, groups, iou, thr, seed):
    rng = np.random.default_rng(seed)
    boxes = _boxes(rng, n, 0, 40, 30)
    scores = rng.random(n).astype(np.float32)
    g = rng.integers(0, groups, n)
    keep = batched_nms(torch.from_numpy(boxes), torch.from_numpy(scores), torch.from_numpy(g), groups, iou, 1000, thr)
    assert keep.dtype == torch.int64
    assert keep.tolist() == ref_nms(boxes, scores, g, iou, -np.inf if thr is None else thr, n, n).tolist()
    capped = batched_nms(torch.from_numpy(boxes), torch.from_numpy(scores), torch.from_numpy(g), groups, iou, 3, thr)
    assert capped.tolist() == keep.tolist()[:3]


def test_batched_nms_exports_to_nonmaxsuppression_and_agrees_with_ort(tmp_path):
    rng = np.random.default_rng(3)
    boxes, scores, g = _boxes(rng, 60, 0, 50, 30), rng.random(60).astype(np.float32), rng.integers(0, 3, 60)

    class M(torch.nn.Module):
        def forward(self, b, s, gr):
            return batched_nms(b, s, gr, 3, 0.5, 12, 0.1)

    sess = _ort(M(), tuple(torch.from_numpy(a) for a in (boxes, scores, g)), ["b", "s", "g"], tmp_path / "nms.onnx",
                {"b": {0: "n"}, "s": {0: "n"}, "g": {0: "n"}})
    import onnx

    ops_used = {n.op_type for n in onnx.load(str(tmp_path / "nms.onnx")).graph.node}
    assert {"NonMaxSuppression", "TopK"} <= ops_used
    for k in (60, 7, 0):
        got = sess.run(None, {"b": boxes[:k], "s": scores[:k], "g": g[:k].astype(np.int64)})[0]
        assert got.tolist() == ref_nms(boxes[:k], scores[:k], g[:k], 0.5, 0.1, max_detections=12).tolist()


def test_tie_break_makes_equal_scores_distinct_lower_index_first():
    from edgeseg.models.instance.maskrcnn.model import RPN_TIE_STEP, SCORE_TIE_STEP
    from edgeseg.models.instance.maskrcnn.ops import tie_break, topk_min

    for value, step, n in ((-13.7, RPN_TIE_STEP, 30000), (0.731, SCORE_TIE_STEP, 1200), (31.5, RPN_TIE_STEP, 50)):
        t = tie_break(torch.full((n,), value), step, n)
        assert torch.all(t[1:] < t[:-1])  # strictly decreasing: every tie resolved, lower index first
        assert float(value - t.min()) <= n * step * 1.01
        assert topk_min(t, 7).tolist() == list(range(7))
    x = torch.tensor([0.5, 0.9, 0.5, 0.1])
    assert topk_min(tie_break(x, SCORE_TIE_STEP, 10), 4).tolist() == [1, 0, 2, 3]  # real order untouched


# ------------------------------------------------------------------------- anchors, coder


def test_box_coder_round_trip_and_anchor_layout():
    rng = np.random.default_rng(4)
    ref, gt = (torch.from_numpy(_boxes(rng, 50, 0, 100, 60) + np.float32([0, 0, 2, 2])) for _ in range(2))
    for w in ((1.0, 1.0, 1.0, 1.0), (10.0, 10.0, 5.0, 5.0)):
        torch.testing.assert_close(decode_boxes(encode_boxes(ref, gt, w), ref, w), gt, rtol=1e-5, atol=1e-3)
    assert torch.all(encode_boxes(ref, ref) == 0)
    cell = cell_anchors(32.0, (0.5, 1.0, 2.0), (1.0, 1.5))
    wh = cell[:, 2:] - cell[:, :2]
    torch.testing.assert_close(wh.prod(1), torch.tensor([32.0**2] * 3 + [48.0**2] * 3))
    torch.testing.assert_close(wh[:, 1] / wh[:, 0], torch.tensor([0.5, 1.0, 2.0] * 2))
    a = grid_anchors((3, 5), 8, cell)
    assert a.shape == (3 * 5 * 6, 4)
    centres = ((a[:, :2] + a[:, 2:]) / 2).view(3, 5, 6, 2)
    torch.testing.assert_close(centres[2, 4, 0], torch.tensor([4.5 * 8, 2.5 * 8]))  # cell (2, 4): ((j+.5)s, (i+.5)s)
    # the RPN head's flattening follows the same (row, column, anchor) order as the anchors
    model = create_model("maskrcnn", 3).eval()
    head = model.rpn_head
    with torch.no_grad():
        head.obj.weight.zero_()
        head.obj.bias.copy_(torch.arange(model.num_anchors, dtype=torch.float32))
        head.delta.weight.zero_()
        head.delta.bias.copy_(torch.arange(4 * model.num_anchors, dtype=torch.float32))
    objs, deltas, anchors = model.rpn(model.features(torch.zeros(1, 3, 64, 96)))
    for o, d, an in zip(objs, deltas, anchors):
        assert o.shape[1] == an.shape[0] == d.shape[1]
        assert torch.equal(o[0], torch.arange(an.shape[0]).float() % model.num_anchors)
        assert torch.equal(d[0, 7], torch.arange(4, dtype=torch.float32) + 4 * (7 % model.num_anchors))


# ------------------------------------------------------------------------ target assignment


def test_match_thresholds_low_quality_and_empty():
    iou = torch.tensor([[0.9, 0.5, 0.1, 0.25, 0.0],
                        [0.2, 0.6, 0.05, 0.0, 0.0]])
    idx, label = match(iou, 0.7, 0.3, allow_low_quality=False)
    assert label.tolist() == [POSITIVE, IGNORE, NEGATIVE, NEGATIVE, NEGATIVE]
    assert idx.tolist()[:2] == [0, 1]
    _, label = match(iou, 0.7, 0.3, allow_low_quality=True)
    assert label.tolist() == [POSITIVE, POSITIVE, NEGATIVE, NEGATIVE, NEGATIVE]  # gt 1's best (0.6) promoted
    _, label = match(torch.zeros(0, 4), 0.7, 0.3, True)
    assert label.tolist() == [NEGATIVE] * 4
    _, label = match(iou, 0.5, 0.5, False)  # RoI heads: fg >= 0.5, bg below, nothing ignored
    assert label.tolist() == [POSITIVE, POSITIVE, NEGATIVE, NEGATIVE, NEGATIVE]


def test_sample_is_balanced_and_fills_with_negatives():
    torch.manual_seed(0)
    label = torch.tensor([POSITIVE] * 30 + [NEGATIVE] * 300 + [IGNORE] * 5, dtype=torch.int8)
    pos, neg = sample(label, 64, 0.25)
    assert len(pos) == 16 and len(neg) == 48
    assert (label[pos] == POSITIVE).all() and (label[neg] == NEGATIVE).all() and len(set(pos.tolist())) == 16
    pos, neg = sample(label[25:], 64, 0.5)  # only 5 positives: negatives fill up
    assert len(pos) == 5 and len(neg) == 59


def test_roi_mask_targets_are_the_gt_mask_resampled_onto_the_roi():
    m = torch.zeros(1, 1, 40, 40)
    m[0, 0, 10:30, 5:15] = 1.0  # a 10 x 20 rectangle
    t = roi_align_per_roi(m, torch.tensor([[5.0, 10.0, 15.0, 30.0]]), (28, 28), 1.0, 2)[0, 0]
    assert torch.all(t >= 0.5) and torch.all(t[2:-2, 2:-2] > 0.99)  # the RoI is the mask (edges half-pixel soft)
    t = roi_align_per_roi(m, torch.tensor([[5.0, 10.0, 25.0, 30.0]]), (28, 28), 1.0, 2)[0, 0]
    assert torch.all(t[:, :14] >= 0.5) and torch.all(t[:, 14:] < 0.5)  # left half of a twice-as-wide RoI
    assert torch.all(t[2:-2, 1:12] > 0.99) and torch.all(t[:, 16:] < 0.01)


# ------------------------------------------------------------------------- model and graph


def test_inference_graph_shapes_and_contract():
    torch.manual_seed(0)
    model = create_model("maskrcnn", 4).eval()
    assert isinstance(model, MaskRCNN) and model.task == "instance" and model.head_type == "maskrcnn"
    with torch.no_grad():
        boxes, labels, scores, masks = model(torch.randn(1, 3, 64, 96))
    k = boxes.shape[0]
    assert 0 < k <= model.max_detections
    assert boxes.shape == (k, 4) and labels.shape == (k,) and scores.shape == (k,) and masks.shape == (k, 28, 28)
    assert labels.dtype == torch.int64 and int(labels.max()) < 4 and float(scores.min()) > model.score_threshold
    assert torch.all(scores[:-1] >= scores[1:] - 2e-4)  # ranked by score; near-ties by index (tie_break)
    assert torch.all((masks >= 0) & (masks <= 1))
    assert torch.all(boxes[:, 0::2] >= 0) and torch.all(boxes[:, 0::2] <= 96) and torch.all(boxes[:, 3] <= 64)
    dets = model.detect(torch.randn(2, 3, 64, 64), score_threshold=0.2, max_detections=5)
    assert len(dets) == 2 and all(len(d["scores"]) <= 5 and (d["scores"] > 0.2).all() for d in dets)
    with pytest.raises(ValueError, match="one image"):
        model(torch.randn(2, 3, 64, 64))
    with pytest.raises(RuntimeError, match="MaskRCNNLoss"):
        model.train()(torch.randn(1, 3, 64, 64))
    assert 1.5e6 < sum(p.numel() for p in model.parameters()) < 4e6


# -------------------------------------------------------------------------------- training


def _batch(n: int, size: int):
    ds = open_instance_dataset("synthetic:8", "train", size=size)
    tds = InstanceTrainDataset(ds, (size, size), 0, (1.0, 1.0), False, 0.0, mask_stride=1)
    return instance_collate([tds[i] for i in range(n)]), ds


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A Mask R-CNN fitted to 4 synthetic images for 20 steps (~5 s): loss history and checkpoint."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small convs: one thread is as fast, and immune to a busy machine
    try:
        return _fit(tmp_path_factory)
    finally:
        torch.set_num_threads(threads)


def _fit(tmp_path_factory):
    torch.manual_seed(0)
    (x, t), ds = _batch(4, SIZE)
    model = create_model("maskrcnn", len(ds.classes)).train()
    loss_fn = MaskRCNNLoss()
    opt = torch.optim.AdamW(model.parameters(), 3e-3)
    xs = normalize(x)
    history = []
    for _ in range(20):
        loss, parts = loss_fn(model, xs, t)
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append({"total": float(loss.detach()), **{k: float(v) for k, v in parts.items()}})
    model.eval()
    meta = ModelMeta(task="instance", classes=list(ds.classes), input_size=(SIZE, SIZE), arch="maskrcnn",
                     output_stride=4, output_names=list(model.output_names),
                     extra={**model.meta_extra(), "score_threshold": 0.25, "iou_threshold": 0.5})
    ckpt = save_checkpoint(tmp_path_factory.mktemp("mrcnn") / "ckpt", model, meta)
    return history, ckpt, model


def test_loss_falls_in_a_few_steps(trained):
    history = trained[0]
    first, last = history[:3], history[-3:]
    mean = lambda rows, k: float(np.mean([r[k] for r in rows]))  # noqa: E731
    assert all(math.isfinite(r["total"]) for r in history)
    assert mean(last, "total") < 0.7 * mean(first, "total")
    assert mean(last, "rpn_cls") < 0.5 * mean(first, "rpn_cls") and mean(last, "mask") < mean(first, "mask")


def test_loss_without_objects_is_finite_and_reaches_every_head():
    torch.manual_seed(0)
    (x, t), _ = _batch(2, SIZE)
    t["valid"][:] = False
    model = create_model("maskrcnn", 6).train()
    loss, parts = MaskRCNNLoss()(model, normalize(x), t)
    assert math.isfinite(float(loss.detach())) and float(parts["mask"]) == 0.0 and float(parts["box"]) == 0.0
    loss.backward()
    assert model.rpn_head.obj.weight.grad is not None and model.box_predictor.cls.weight.grad is not None


def test_instance_trainer_drives_maskrcnn(tmp_path):
    from edgeseg.models.checkpoint import load_checkpoint
    from edgeseg.train.instance_trainer import InstanceTrainConfig, train_instance

    cfg = InstanceTrainConfig(model="maskrcnn", data="synthetic:8", val_data="synthetic:2",
                              data_kwargs={"size": SIZE}, input_size=(SIZE, SIZE), epochs=1, batch_size=2,
                              max_iters_per_epoch=2, warmup_iters=1, workers=0, out_dir=str(tmp_path), progress=False,
                              num_threads=1, loss_weights={"mask": 2.0})
    best = train_instance(cfg)
    hist = json.loads((tmp_path / "history.json").read_text())
    assert {f"loss_{p}" for p in ("rpn_cls", "rpn_box", "cls", "box", "mask")} <= set(hist[0])
    assert 0.0 <= hist[0]["val_mask_ap50"] <= 1.0 and (tmp_path / "curve.png").is_file()
    model, meta, cfg_json = load_checkpoint(best)
    assert isinstance(model, MaskRCNN) and cfg_json["model"]["name"] == "maskrcnn"
    assert meta.output_names == ["boxes", "labels", "scores", "masks"] and meta.extra["head"] == "maskrcnn"
    assert meta.extra["mask_size"] == 28 and meta.extra["graph_nms_iou"] == 0.5
    from edgeseg.errors import EdgesegError

    with pytest.raises(EdgesegError, match="loss_weights has unknown part.*rpn_cls"):
        train_instance(InstanceTrainConfig(model="maskrcnn", out_dir=str(tmp_path / "x"), loss_weights={"dice": 1.0}))


# ----------------------------------------------------------------------- export + runtime


@pytest.fixture(scope="module")
def mrcnn_onnx(trained) -> Path:
    from edgeseg.export.onnx import export_onnx

    ckpt = trained[1]
    out = ckpt.parent / "mrcnn.onnx"
    export_onnx(ckpt, out, verbose=False)
    return out


def test_export_uses_standard_ops_and_passes_parity(mrcnn_onnx):
    import onnx

    proto = onnx.load(str(mrcnn_onnx))
    onnx.checker.check_model(proto, full_check=True)
    used = {n.op_type for n in proto.graph.node}
    assert {"NonMaxSuppression", "RoiAlign", "TopK", "Gather"} <= used
    assert all(n.domain in ("", "ai.onnx") for n in proto.graph.node)  # standard operators only
    assert proto.opset_import[0].version == 17
    report = json.loads(mrcnn_onnx.with_suffix(".parity.json").read_text())
    assert report["passed"] and report["task"] == "instance"
    assert sum(im["detections"] for im in report["images"]) > 20  # it compared real detections
    assert report["agreement_logits"] >= 0.99 and report["agreement_frame"] >= 0.98


def test_onnx_and_torch_agree_on_raw_outputs(trained, mrcnn_onnx):
    import onnxruntime

    model = trained[2]
    sess = onnxruntime.InferenceSession(str(mrcnn_onnx), providers=["CPUExecutionProvider"])
    for i in range(3):
        p = load(mrcnn_onnx)
        x, _ = p.pre(generate(10 + i, size=(SIZE, SIZE)).image)
        got = sess.run(None, {"images": x})
        with torch.no_grad():
            ref = [t.numpy() for t in model(torch.from_numpy(x))]
        assert got[0].shape == ref[0].shape and len(ref[0]) > 0
        assert np.array_equal(got[1], ref[1])
        for a, b in zip(got, ref):
            np.testing.assert_allclose(a, b, atol=2e-4)


def test_predictor_returns_instance_results_with_pasted_masks(mrcnn_onnx, trained):
    from edgeseg.runtime.maskrcnn import MaskRCNNPredictor

    p = load(mrcnn_onnx, score_threshold=0.1)
    assert isinstance(p, MaskRCNNPredictor) and p.thresholds.score == pytest.approx(0.1)
    frame = generate(3, size=(90, 130)).image
    r = p(frame)
    assert isinstance(r, InstanceResult) and len(r) > 0 and set(r.timings) == {"pre", "infer", "post"}
    H, W = frame.shape[:2]
    assert (r.boxes >= 0).all() and (r.boxes[:, [0, 2]] <= W).all() and (r.boxes[:, [1, 3]] <= H).all()
    assert np.all(np.diff(r.scores) <= 0) and (r.scores > 0.1).all() and r.class_ids.max() < 6
    # the masks are the graph's 28x28 probabilities pasted into the frame boxes (detectron2 semantics)
    x, info = p.pre(frame)
    out = p.infer(x)[0]
    keep = out["scores"] > 0.1
    fb = out["boxes"][keep].astype(np.float32).copy()
    (rh, rw) = info.resized_hw
    fb[:, 0::2] = (fb[:, 0::2] - info.pad_left) * W / rw
    fb[:, 1::2] = (fb[:, 1::2] - info.pad_top) * H / rh
    order = np.argsort(-out["scores"][keep], kind="stable")
    want = ops.paste_masks(np.ascontiguousarray(out["masks"][keep][order]), fb[order], (H, W)).to_dense()
    assert np.array_equal(r.masks.to_dense(), want)
    np.testing.assert_allclose(r.boxes, np.clip(fb[order], 0, [W, H, W, H]), atol=1e-4)
    assert len(r.to_coco()) == len(r) and r.overlay().shape == frame.shape and 0 < r.instance_map().max() <= len(r)
    # torch backend (checkpoint directory) gives the same result type
    rt = load(trained[1], score_threshold=0.1)(frame)
    assert isinstance(rt, InstanceResult) and len(rt) == len(r)
    # the threaded pipeline and batches run the same post-processing, frame by frame
    frames = [generate(i, size=(80, 80)).image for i in range(2)]
    for a, b in zip([p(f) for f in frames], p.stream(frames)):
        assert len(a) == len(b) and np.array_equal(a.masks.to_dense(), b.masks.to_dense())
    assert [len(b) for b in p.predict_batch(frames)] == [len(p(f)) for f in frames]
    # thresholds can be tightened after loading; a grey frame gives an empty but valid result
    p.thresholds.max_detections = 1
    assert len(p(frame)) == 1
    empty = load(mrcnn_onnx, score_threshold=0.999)(np.full((50, 70, 3), 114, np.uint8))
    assert len(empty) == 0 and empty.masks.to_dense().shape == (0, 50, 70)


def test_foreign_maskrcnn_onnx_runs_with_user_facts(mrcnn_onnx, tmp_path):
    import onnx

    from edgeseg import defaults

    proto = onnx.load(str(mrcnn_onnx))
    keep = [p for p in proto.metadata_props if p.key != defaults.META_KEY]
    del proto.metadata_props[:]
    proto.metadata_props.extend(keep)
    bare = tmp_path / "foreign.onnx"
    onnx.save(proto, str(bare))
    with pytest.raises(ModelError, match="(?s)looks like a Mask R-CNN.*- classes.*- mean/std"):
        load(bare)
    names = ["a", "b", "c", "d", "e", "f"]
    p = load(bare, classes=names, mean=defaults.MEAN_RGB, std=defaults.STD_RGB, score_threshold=0.1)
    assert p.meta.extra["head"] == "maskrcnn" and p.input_size == (SIZE, SIZE)  # static size read from the graph
    frame = generate(3, size=(90, 130)).image
    r, ref = p(frame), load(mrcnn_onnx, score_threshold=0.1)(frame)
    assert len(r) == len(ref) > 0 and set(r.class_names()) <= set(names)
    assert np.array_equal(r.masks.to_dense(), ref.masks.to_dense())
    with pytest.raises(ModelError, match="class index"):
        load(bare, classes=["only"], mean=defaults.MEAN_RGB, std=defaults.STD_RGB, score_threshold=0.01)(frame)
