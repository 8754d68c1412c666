"""edgeseg.tracking: Tracker association (box / mask IoU, Kalman, lost-track buffer), semantic
stabilisers, tracking metrics (TrackEval, cross-checked by py-motmetrics), MOTS text format,
synthetic tracking videos, and track ids in results."""
from __future__ import annotations

import json

import numpy as np
import pytest

import edgeseg
from edgeseg.data.mots import MOTSSequence, read_mots_txt, write_mots_sequence, write_mots_txt
from edgeseg.data.synthetic_tracks import TrackingVideo, noisy_detections
from edgeseg.errors import ArrayError, DataError, EdgesegError
from edgeseg.masks import MaskSet
from edgeseg.tracking import Hysteresis, ModeFilter, ProbabilityEMA, Tracker, make_stabiliser
from edgeseg.tracking.kalman import initiate, predict, update, xyah_to_xyxy, xyxy_to_xyah


def _square(cx, cy, r, hw=(120, 160)):
    m = np.zeros(hw, bool)
    m[max(0, cy - r):cy + r, max(0, cx - r):cx + r] = True
    return m


def _frame(centres, r=10, hw=(120, 160)):
    dense = np.stack([_square(cx, cy, r, hw) for cx, cy in centres])
    masks = MaskSet.from_dense(dense)
    return masks.boxes().astype(np.float64), masks


# ---- Kalman ---------------------------------------------------------------------------------------

def test_kalman_learns_constant_velocity():
    mean, cov = initiate(np.array([[0, 0, 10, 20]], float))
    for t in range(1, 15):
        mean, cov = predict(mean, cov)
        mean, cov = update(mean, cov, np.array([[3 * t, 2 * t, 3 * t + 10, 2 * t + 20]], float))
    mean, _ = predict(mean, cov)
    np.testing.assert_allclose(xyah_to_xyxy(mean)[0], [45, 30, 55, 50], atol=0.5)
    np.testing.assert_allclose(mean[0, 4:6], [3, 2], atol=0.1)
    b = np.array([[1, 2, 5, 10]], float)
    np.testing.assert_allclose(xyah_to_xyxy(xyxy_to_xyah(b)), b)


# ---- Tracker --------------------------------------------------------------------------------------

@pytest.mark.parametrize("matching", ["box", "mask"])
def test_ids_persist_and_survive_a_gap(matching):
    t = Tracker(matching=matching, buffer=5)
    seen = []
    for k in range(12):
        boxes, masks = _frame([(20 + 4 * k, 30), (140 - 4 * k, 90)])
        keep = [0] if 5 <= k <= 7 else [0, 1]  # object 2 unseen for 3 frames
        ids = t.update(boxes[keep], [0.9] * len(keep), [1] * len(keep), masks.select(keep))
        seen.append(ids.tolist())
    assert seen[0] == [1, 2] and all(s[0] == 1 for s in seen)
    assert seen[8:] == [[1, 2]] * 4  # found again with its old id (the Kalman predicted the motion)


def test_tentative_tracks_need_a_second_frame_and_lost_tracks_expire():
    t = Tracker(matching="box", buffer=2)
    b, m = _frame([(30, 30)])
    assert t.update(b, [0.9], masks=m).tolist() == [1]      # first frame: confirmed at once
    b2, m2 = _frame([(30, 30), (120, 80)])
    assert t.update(b2, [0.9, 0.9], masks=m2).tolist() == [1, -1]  # new object: tentative
    assert t.update(b2, [0.9, 0.9], masks=m2).tolist() == [1, 2]
    for _ in range(3):
        t.update(np.zeros((0, 4)), np.zeros(0))
    assert len(t) == 0  # both lost for more than 2 frames
    assert t.update(b, [0.9], masks=m).tolist() == [-1]  # a new track, not the old id


def test_low_score_detections_continue_tracks_but_do_not_start_them():
    t = Tracker(matching="box")
    b, m = _frame([(40, 40)])
    t.update(b, [0.9])
    assert t.update(b + 1, [0.3]).tolist() == [1]  # ByteTrack's second association
    t2 = Tracker(matching="box")
    assert t2.update(b, [0.3]).tolist() == [-1] and len(t2) == 0


def test_classes_are_not_mixed_unless_asked():
    b, _ = _frame([(40, 40)])
    t = Tracker(matching="box")
    t.update(b, [0.9], [1])
    assert t.update(b, [0.9], [2]).tolist() == [-1]
    t = Tracker(matching="box", class_aware=False)
    t.update(b, [0.9], [1])
    assert t.update(b, [0.9], [2]).tolist() == [1]


def test_tracker_refuses_bad_input():
    with pytest.raises(EdgesegError, match="masks"):
        Tracker(matching="mask").update(np.zeros((1, 4)), [0.9])
    with pytest.raises(EdgesegError, match="matching"):
        Tracker(matching="centroid")
    with pytest.raises(ArrayError, match="boxes"):
        Tracker(matching="box").update(np.zeros((2, 4)), [0.9])
    with pytest.raises(ArrayError, match="finite"):
        Tracker(matching="box").update(np.full((1, 4), np.nan), [0.9])
    with pytest.raises(EdgesegError, match="low"):
        Tracker(low=0.8, high=0.5)


@pytest.mark.parametrize("matching", ["box", "mask"])
def test_no_id_switches_without_crossings(matching):
    from edgeseg.eval.tracking import FrameTracks, evaluate_tracking

    video = TrackingVideo("separate", 25, size=(128, 160), seed=3)
    rng = np.random.default_rng(0)
    t = Tracker(matching=matching)
    gt, pred = [], []
    for f in video:
        b, s, c, m = noisy_detections(f, rng)
        ids = t.update(b, s, c, m)
        k = np.flatnonzero(ids >= 0)
        gt.append(FrameTracks(f.track_ids, f.boxes, f.masks))
        pred.append(FrameTracks(ids[k], b[k], m.select(k)))
    r = evaluate_tracking(gt, pred, "mask", cross_check=True)
    assert r["IDSW"] == 0 and r["MOTA"] > 0.85 and r["IDF1"] > 0.9
    mm = r["motmetrics"]  # the two evaluators agree
    assert mm["IDSW"] == r["IDSW"] and mm["MOTA"] == pytest.approx(r["MOTA"], abs=1e-9)
    assert mm["IDF1"] == pytest.approx(r["IDF1"], abs=1e-9)


# ---- metrics --------------------------------------------------------------------------------------

def test_metrics_on_a_hand_made_case_agree_between_evaluators():
    from edgeseg.eval.tracking import FrameTracks, evaluate_tracking

    boxes = np.array([[0, 0, 10, 10], [50, 50, 60, 60]], float)
    gt = [FrameTracks([1, 2], boxes) for _ in range(4)]
    # frames 0-1 right, then the tracker swaps the two ids: 2 ID switches; frame 3 misses one
    pred = [FrameTracks([7, 8], boxes), FrameTracks([7, 8], boxes), FrameTracks([8, 7], boxes),
            FrameTracks([8], boxes[:1])]
    r = evaluate_tracking(gt, pred, "box", cross_check=True)
    assert r["IDSW"] == 2 and r["FN"] == 1 and r["FP"] == 0 and r["TP"] == 7
    assert r["MOTA"] == pytest.approx((8 - 1 - 0 - 2) / 8)
    assert r["motmetrics"] == {"MOTA": pytest.approx(r["MOTA"]), "IDF1": pytest.approx(r["IDF1"]), "IDSW": 2}
    assert r["sMOTA"] == pytest.approx((7 - 0 - 2) / 8)
    perfect = evaluate_tracking(gt, gt, "box")
    assert perfect["HOTA"] == pytest.approx(1.0) and perfect["IDF1"] == pytest.approx(1.0)


def test_video_stability_definition():
    from edgeseg.eval.tracking import VideoStability

    gt = np.zeros((4, 4), np.uint8)
    gt[0, 0] = 255
    v = VideoStability(3)
    p1 = gt.copy()
    p1[0, 0] = 0
    v.update(p1, gt)
    p2 = p1.copy()
    p2[1, 1] = 2  # one stable pixel flips
    v.update(p2, gt)
    assert v.stable == 15 and v.changed == 1 and v.flicker == pytest.approx(1 / 15)


# ---- stabilisers ----------------------------------------------------------------------------------

def test_hysteresis_ignores_single_frame_flicker_and_follows_real_changes():
    h = Hysteresis(2)
    a, b = np.zeros((2, 2), np.uint8), np.ones((2, 2), np.uint8)
    assert (h.labels(a) == 0).all()
    assert (h.labels(b) == 0).all()   # one frame of class 1: not shown
    assert (h.labels(a) == 0).all()
    assert (h.labels(b) == 0).all()
    assert (h.labels(b) == 1).all()   # two frames in a row: shown


def test_mode_filter_and_specs():
    assert isinstance(make_stabiliser(3), ModeFilter) and make_stabiliser("mode:5").k == 5
    assert isinstance(make_stabiliser("hysteresis:3"), Hysteresis)
    assert make_stabiliser("ema:0.25").a == 0.25
    assert make_stabiliser(0) is None and make_stabiliser("off") is None
    chain = make_stabiliser("flow-ema:0.5+hysteresis:2")
    assert chain.uses_scores and chain.describe() == "flow-ema:0.5+hysteresis:2"
    for bad in ("1", "wobble:2", "ema:2", "mode:x", "ema:0.5+off"):
        with pytest.raises(EdgesegError):
            make_stabiliser(bad)
    f = ModeFilter(3)
    x, y = np.zeros((2, 2), np.uint8), np.ones((2, 2), np.uint8)
    f(x), f(y)
    assert (f(x) == 0).all()


def test_probability_ema_blends_log_probabilities():
    e = ProbabilityEMA(0.5)
    l1 = np.zeros((2, 1, 1), np.float32)
    l1[0] = 10
    l2 = np.zeros((2, 1, 1), np.float32)
    l2[1] = 10
    first = e.scores(l1).copy()
    np.testing.assert_allclose(np.exp(first).sum(0), 1.0, rtol=1e-5)  # log-probabilities
    p = e.scores(l2)
    assert p[0, 0, 0] == pytest.approx(p[1, 0, 0], abs=1e-4)  # the two frames weigh the same
    e2 = ProbabilityEMA(0.25)
    e2.scores(l1)
    s = e2.scores(l2)  # the newest frame weighs 0.25: the older class still wins
    assert s[:, 0, 0] == pytest.approx([0.25 * -10 + 0.75 * 0, 0.25 * 0 + 0.75 * -10], abs=1e-3)
    with pytest.raises(EdgesegError, match="float"):
        e.scores(np.zeros((4, 4), np.int64))
    with pytest.raises(EdgesegError, match="frame"):
        make_stabiliser("flow-ema:0.5").scores(l1)


def test_flow_ema_follows_motion():
    """A textured square moving right: the flow-compensated average keeps the square's class where
    the square is now; the plain average smears it back over where it was."""
    from edgeseg.geometry import letterbox_info

    info = letterbox_info((64, 64), (64, 64))
    plain, flow = ProbabilityEMA(0.3), make_stabiliser("flow-ema:0.3")
    rng = np.random.default_rng(0)
    texture = rng.integers(0, 255, (64, 64, 3)).astype(np.uint8)
    for t in range(6):
        x0 = 8 + 6 * t
        img = (texture // 4).copy()
        img[20:44, x0:x0 + 16] = texture[20:44, 8:24]
        logits = np.zeros((2, 8, 8), np.float32)
        logits[1, 2:6, x0 // 8:(x0 + 16) // 8] = 8.0  # class 1 on the square's cells
        logits[0] = 4.0
        p_plain, p_flow = plain.scores(logits), flow.scores(logits, img, info)
    now = logits[1] > 4
    # probability of the square's class: more of it where the square is, less smeared behind it
    assert p_flow[1][now].sum() > p_plain[1][now].sum()
    assert p_flow[1][~now].sum() < p_plain[1][~now].sum()


# ---- MOTS format ----------------------------------------------------------------------------------

def test_mots_roundtrip_and_sequence(tmp_path):
    pycoco = pytest.importorskip("pycocotools.mask")
    video = TrackingVideo("crossing", 3, size=(64, 80), seed=1)
    root = write_mots_sequence(tmp_path / "seq", video)
    seq = MOTSSequence(root)
    assert len(seq) == 3
    for t in range(3):
        f, g = video[t], seq[t]
        assert np.array_equal(f.track_ids, g.track_ids) and np.array_equal(f.masks.to_dense(), g.masks.to_dense())
        assert np.array_equal(f.image, g.image)
    objs = read_mots_txt(root / "gt" / "gt.txt")
    o = objs[1][0]  # frames counted from 1 in MOTSChallenge layout
    ref = pycoco.decode({"size": [o.height, o.width], "counts": o.rle.encode()})
    assert np.array_equal(ref.astype(bool), o.mask())


def test_mots_writer_removes_overlaps_and_reader_refuses_bad_lines(tmp_path):
    a = np.zeros((2, 6, 6), bool)
    a[0, :3], a[1, 1:5] = True, True
    p = write_mots_txt(tmp_path / "r.txt", [(0, [1001, 1002], [1, 1], MaskSet.from_dense(a))])
    objs = read_mots_txt(p)[0]
    m0, m1 = objs[0].mask(), objs[1].mask()
    assert not (m0 & m1).any() and m0.sum() == 18 and m1.sum() == 12
    (tmp_path / "bad.txt").write_text("0 1 1 6 6\n")
    with pytest.raises(DataError, match="bad.txt:1"):
        read_mots_txt(tmp_path / "bad.txt")


# ---- results --------------------------------------------------------------------------------------

def test_track_ids_in_results_json_coco_and_overlay():
    from edgeseg.meta import ModelMeta
    from edgeseg.runtime.results import InstanceResult

    meta = ModelMeta(task="instance", classes=["a", "b"], input_size=(64, 64))
    boxes, masks = _frame([(30, 30), (100, 80)])
    frame = np.full((120, 160, 3), 90, np.uint8)
    r = InstanceResult(boxes.astype(np.float32), np.array([0.9, 0.8], np.float32), np.array([0, 1], np.int32),
                       masks, frame, meta)
    t = Tracker(matching="mask")
    tr = t(r)
    assert tr.track_ids.tolist() == [1, 2] and r.track_ids is None
    d = json.loads(json.dumps(tr.to_dict()))
    assert [x["track_id"] for x in d["detections"]] == [1, 2]
    assert [x["track_id"] for x in tr.to_coco()] == [1, 2]
    vis = tr.overlay()
    assert vis.shape == frame.shape and not np.array_equal(vis, frame)
    # colour per id: the same id keeps its colour when the detections come in another order
    from edgeseg.runtime.results import instance_colors
    assert np.array_equal(instance_colors(np.array([2, 1]))[::-1], instance_colors(np.array([1, 2])))


def test_edgeseg_tracker_is_exported_lazily():
    assert edgeseg.Tracker is Tracker


# ---- pipeline and CLI -----------------------------------------------------------------------------

def test_stream_with_track_gives_ids_and_semantic_smoothing_specs():
    from edgeseg.pipeline import as_source, stream

    video = TrackingVideo("separate", 8, seed=0)
    p = edgeseg.load(None, task="instance")
    results = list(stream(p, [f.image for f in video], track=True))
    assert len(results) == 8 and all(r.track_ids is not None for r in results)
    assert "track" in results[-1].timings
    assert {i for r in results for i in r.track_ids.tolist()} <= set(range(1, 20))
    rec = results[-1].record()
    assert all("track_id" in d for d in rec["detections"])
    with pytest.raises(EdgesegError, match="--track"):
        list(stream(edgeseg.load(None), [video[0].image], track=True))
    for spec in ("ema:0.5", "flow-ema:0.5", "hysteresis:2"):
        sem = list(stream(edgeseg.load(None), [f.image for f in video][:3], smooth=spec))
        assert len(sem) == 3 and sem[-1].labels.shape == video[0].semantic.shape
    from edgeseg.pipeline import Pipeline

    frames = [f.image for f in video][:2]
    plain = list(Pipeline(edgeseg.load(None), as_source(frames), render=True, hud=False))
    legend = list(Pipeline(edgeseg.load(None), as_source(frames), render=True, hud=False, legend=True))
    assert not np.array_equal(plain[-1].vis, legend[-1].vis)  # the legend box is drawn


def test_cli_eval_track_and_run_track(tmp_path, capsys):
    import cv2

    from edgeseg.cli import main

    assert main(["eval", "default", "--task", "track", "--data", "synthetic:separate", "--frames", "10",
                 "--json", str(tmp_path / "r.json")]) == 0
    out = capsys.readouterr().out
    assert "HOTA" in out and "IDF1" in out and "sMOTSA" in out
    rep = json.loads((tmp_path / "r.json").read_text())
    assert rep["combined"]["IDSW"] == 0 and rep["combined"]["frames"] == 10

    video = TrackingVideo("crossing", 6, seed=1)
    src = tmp_path / "v.avi"
    w = cv2.VideoWriter(str(src), cv2.VideoWriter_fourcc(*"MJPG"), 10, (256, 256))
    for f in video:
        w.write(f.image)
    w.release()
    assert main(["run", "--task", "instance", "--source", str(src), "--track", "--json",
                 str(tmp_path / "o.jsonl"), "--quiet"]) == 0
    lines = [json.loads(x) for x in (tmp_path / "o.jsonl").read_text().splitlines()]
    assert len(lines) == 6 and any("track_id" in d for x in lines for d in x["detections"])


def test_kitti_mots_layout(tmp_path):
    import cv2

    video = TrackingVideo("separate", 2, size=(48, 64), seed=2)
    (tmp_path / "instances_txt").mkdir()
    img_dir = tmp_path / "image_02" / "0002"
    img_dir.mkdir(parents=True)
    rows = []
    for t, f in enumerate(video):  # KITTI-MOTS counts frames from 0; ids class * 1000 + instance
        cv2.imwrite(str(img_dir / f"{t:06d}.png"), f.image)
        rows.append((t, 2000 + f.track_ids, [2] * len(f.track_ids), f.masks))
    write_mots_txt(tmp_path / "instances_txt" / "0002.txt", rows)
    seq = MOTSSequence(tmp_path / "instances_txt" / "0002.txt")
    assert len(seq) == 2 and seq[1].track_ids.tolist() == (2000 + video[1].track_ids).tolist()
    assert np.array_equal(seq[0].masks.to_dense(), video[0].masks.to_dense())


def test_cli_eval_track_on_mots_data(tmp_path, capsys):
    from edgeseg.cli import main

    write_mots_sequence(tmp_path / "MOTS-synth" / "seq1", TrackingVideo("crossing", 4, seed=5))
    assert main(["eval", "default", "--task", "track", "--data", f"mots:{tmp_path / 'MOTS-synth'}",
                 "--json", str(tmp_path / "r.json")]) == 0
    rep = json.loads((tmp_path / "r.json").read_text())
    assert list(rep["per_sequence"]) == ["seq1"] and rep["combined"]["frames"] == 4
    capsys.readouterr()
    assert main(["eval", "default", "--task", "track", "--data", f"mots:{tmp_path / 'nothing'}"]) == 2
    assert "MOTS data not found" in capsys.readouterr().err
