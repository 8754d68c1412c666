"""Instance models through export, runtime, pipeline and CLI (real ONNX Runtime sessions).

The model is a randomly initialised yoloseg_n whose class prior is raised so that it produces
plenty of detections: these tests check the plumbing (parity, coordinates, masks, formats), not
accuracy (tools/train_instance_model.py and the zoo eval do that).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edgeseg import load, ops  # noqa: E402
from edgeseg.cli import main  # noqa: E402
from edgeseg.data.synthetic import CLASSES, generate  # noqa: E402
from edgeseg.errors import ModelError  # noqa: E402
from edgeseg.runtime import InstancePredictor, InstanceResult  # noqa: E402
from edgeseg.runtime.instance import InstanceThresholds, postprocess_instances  # noqa: E402

SIZE = 64


@pytest.fixture(scope="module")
def inst_onnx(instance_ckpt, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("inst") / "inst.onnx"
    assert main(["export", str(instance_ckpt), "--format", "onnx", "--out", str(out)]) == 0
    return out


def test_export_writes_instance_meta_and_passes_parity(inst_onnx):
    report = json.loads(inst_onnx.with_suffix(".parity.json").read_text())
    assert report["task"] == "instance" and report["passed"]
    assert report["agreement_frame"] >= 0.999 and report["agreement_logits"] >= 0.999
    assert sum(im["detections"] for im in report["images"]) > 0  # parity compared real detections
    p = load(inst_onnx)
    assert isinstance(p, InstancePredictor) and p.meta.task == "instance"
    assert p.thresholds.score == pytest.approx(0.1)  # from the metadata


def test_result_geometry_and_formats(inst_onnx):
    p = load(inst_onnx)
    frame = generate(3, size=(90, 130)).image
    r = p(frame)
    assert isinstance(r, InstanceResult) and len(r) > 0
    assert set(r.timings) == {"pre", "infer", "post"}
    H, W = frame.shape[:2]
    assert r.boxes.dtype == np.float32 and r.boxes.shape == (len(r), 4)
    assert (r.boxes[:, [0, 2]] >= 0).all() and (r.boxes[:, [0, 2]] <= W).all()
    assert (r.boxes[:, [1, 3]] >= 0).all() and (r.boxes[:, [1, 3]] <= H).all()
    assert np.all(np.diff(r.scores) <= 0) and (r.scores > 0.1).all()
    assert r.class_ids.max() < len(CLASSES) - 1
    # masks live inside their boxes (pixel centres inside the box)
    dense = r.masks.to_dense()
    assert dense.shape == (len(r), H, W)
    ys, xs = np.mgrid[0:H, 0:W] + 0.5
    for k in range(len(r)):
        x0, y0, x1, y1 = r.boxes[k]
        inside = (xs >= x0) & (xs < x1) & (ys >= y0) & (ys < y1)
        assert not (dense[k] & ~inside).any()
    # COCO results: RLE decodes to the same masks, bbox is xywh
    from pycocotools import mask as mask_util

    coco = r.to_coco(image_id=7)
    assert len(coco) == len(r) and coco[0]["image_id"] == 7
    for k, d in enumerate(coco):
        rle = {"size": d["segmentation"]["size"], "counts": d["segmentation"]["counts"].encode()}
        assert np.array_equal(mask_util.decode(rle).astype(bool), dense[k])
        x0, y0, x1, y1 = r.boxes[k]
        assert d["bbox"] == pytest.approx([x0, y0, x1 - x0, y1 - y0], abs=0.01)
        assert d["category_id"] == int(r.class_ids[k]) + 1
    imap = r.instance_map()
    assert imap.dtype == np.uint16 and imap.max() <= len(r)
    top = dense[0]
    assert (imap[top] == 1).all()  # the best detection is on top of the map
    vis = r.overlay()
    assert vis.shape == frame.shape and vis.dtype == np.uint8 and not np.array_equal(vis, frame)
    summary = r.to_dict()
    assert summary["task"] == "instance" and len(summary["detections"]) == len(r)
    json.dumps(summary)


def test_postprocess_matches_a_numpy_restatement(inst_onnx):
    """Runtime post-processing = boxes mapped back through the letterbox + exact box-local masks."""
    p = load(inst_onnx)
    frame = generate(5, size=(100, 60)).image
    x, info = p.pre(frame)
    out = p.infer(x)[0]
    thr = InstanceThresholds(score=0.1)
    det = postprocess_instances(out, info, thr)
    idx, cls, sc = ops.select_detections(out["boxes"], out["scores"], score_threshold=0.1, iou_threshold=thr.iou,
                                         max_candidates=thr.max_candidates, max_detections=thr.max_detections)
    b = out["boxes"][idx]
    (H, W), (rh, rw) = info.src_hw, info.resized_hw
    expect = np.stack([(b[:, 0] - info.pad_left) * W / rw, (b[:, 1] - info.pad_top) * H / rh,
                       (b[:, 2] - info.pad_left) * W / rw, (b[:, 3] - info.pad_top) * H / rh], 1)
    expect = np.clip(expect, 0, [W, H, W, H])
    np.testing.assert_allclose(det["boxes"], expect, rtol=1e-5, atol=1e-4)
    assert np.array_equal(det["class_ids"], cls) and np.allclose(det["scores"], sc)
    np.testing.assert_allclose(info.to_frame(b), expect, rtol=1e-5, atol=1e-4)


def test_torch_backend_agrees_with_onnx(instance_ckpt, inst_onnx):
    # A random model's scores nearly tie, so compare the raw heads (NMS would amplify 1e-6 noise).
    frame = generate(1, size=(SIZE, SIZE)).image
    a, b = load(inst_onnx), load(instance_ckpt)
    x, _ = a.pre(frame)
    ra, rb = a.infer(x)[0], b.infer(x)[0]
    assert set(ra) == set(rb) == {"boxes", "scores", "coeffs", "protos"}
    for k in ra:
        np.testing.assert_allclose(ra[k], rb[k], rtol=1e-4, atol=1e-4)
    assert isinstance(b(frame), InstanceResult)


def test_thresholds_from_load_and_errors(inst_onnx, tiny_onnx):
    p = load(inst_onnx, score_threshold=0.3, max_detections=2)
    r = p(generate(2, size=(SIZE, SIZE)).image)
    assert len(r) <= 2 and (r.scores > 0.3).all()
    with pytest.raises(ModelError, match="instance models only"):
        load(tiny_onnx, score_threshold=0.3)
    with pytest.raises(ModelError, match="threshold must be in"):
        load(inst_onnx, iou_threshold=1.5)


def test_batch_and_stream(inst_onnx):
    p = load(inst_onnx)
    frames = [generate(i, size=(80, 80)).image for i in range(3)]
    singles = [p(f) for f in frames]
    streamed = list(p.stream(frames))
    assert [s.index for s in streamed] == [0, 1, 2]
    for a, b in zip(singles, streamed):
        assert len(a) == len(b) and np.array_equal(a.masks.to_dense(), b.masks.to_dense())
        rec = b.record()
        assert len(rec["detections"]) == len(b) and "histogram" not in rec
        assert rec["detections"] == [] or rec["detections"][0]["rle"]["size"] == [80, 80]
    with pytest.raises(Exception, match="semantic label maps"):
        list(p.stream(frames, smooth=3))


def test_cli_predict_eval_run_instance(inst_onnx, tmp_path):
    from edgeseg._io import write_image

    imgs = tmp_path / "imgs"
    for i in range(2):
        write_image(imgs / f"im{i}.png", generate(i, size=(72, 96)).image)
    out = tmp_path / "pred"
    assert main(["predict", str(inst_onnx), str(imgs), "--out", str(out), "--quiet", "--conf", "0.12"]) == 0
    assert (out / "im0_overlay.jpg").is_file() and (out / "im1_instances.png").is_file()
    dets = json.loads((out / "detections.json").read_text())
    assert dets and {"file", "bbox", "score", "segmentation", "class"} <= set(dets[0])
    assert all(d["score"] > 0.12 for d in dets)

    rep = tmp_path / "eval.json"
    assert main(["eval", str(inst_onnx), "--data", "synthetic:6", "--quiet", "--json", str(rep)]) == 0
    r = json.loads(rep.read_text())
    assert r["evaluator"] == "pycocotools COCOeval" and r["images"] == 6
    assert 0.0 <= r["segm"]["AP50"] <= 1.0 and 0.0 <= r["bbox"]["AP"] <= 1.0

    js = tmp_path / "run.jsonl"
    assert main(["run", "--source", str(imgs), "--model", str(inst_onnx), "--json", str(js), "--quiet",
                 "--save-dir", str(tmp_path / "vis")]) == 0
    lines = [json.loads(line) for line in js.read_text().splitlines()]
    assert len(lines) == 2 and "detections" in lines[0]
    assert len(list((tmp_path / "vis").glob("*.jpg"))) == 2


def test_semantic_eval_rejects_instance_options_cleanly(tiny_onnx, capsys):
    assert main(["predict", str(tiny_onnx), "nowhere.png", "--conf", "0.5"]) == 2
    assert "instance models only" in capsys.readouterr().err
