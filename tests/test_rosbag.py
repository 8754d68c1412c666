"""ROS 2 recordings in and out: the rosbag source and sink, through real bags written by rosbags."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rosbags", reason="rosbags is not installed (pip install 'edgeseg[ros]')")

from edgeseg.cli import main  # noqa: E402
from edgeseg.data.synthetic import generate  # noqa: E402
from edgeseg.errors import EdgesegError, SourceError  # noqa: E402
from edgeseg.integrations.ros import convert as C  # noqa: E402
from edgeseg.integrations.ros.bagio import read_messages, topics, write_image_bag  # noqa: E402
from edgeseg.integrations.ros.types import RosbagsKit  # noqa: E402
from edgeseg.pipeline import Pipeline, open_source  # noqa: E402
from edgeseg.pipeline.sinks import RosbagSink  # noqa: E402
from edgeseg.runtime import load  # noqa: E402

ASSETS = Path(__file__).resolve().parents[1] / "edgeseg" / "assets"
TOPIC = "/camera/image_raw"
START = 1_700_000_000_000_000_000
HW = (48, 64)


def _scenes(n: int, hw=HW) -> list[np.ndarray]:
    return [generate(i, seed=3, size=hw).image for i in range(n)]


def _malformed() -> list[tuple[int, bytes]]:
    """Three bad messages: step * height != len(data), an unknown encoding, and bytes that are not CDR."""
    kit = RosbagsKit()
    hdr = C.header(kit, START, "camera")
    short = kit.make("sensor_msgs/msg/Image", header=hdr, height=48, width=64, encoding="bgr8", is_bigendian=0,
                     step=192, data=np.zeros(100, np.uint8))
    bayer = kit.make("sensor_msgs/msg/Image", header=hdr, height=2, width=2, encoding="bayer_rggb8",
                     is_bigendian=0, step=2, data=np.zeros(4, np.uint8))
    return [(0, kit.serialize(short)), (1, kit.serialize(bayer)), (2, b"\x00\x01\x00\x00\x07")]


def _storage_path(folder: Path, layout: str) -> Path:
    return folder if layout == "folder" else next(p for p in folder.iterdir() if p.suffix in (".mcap", ".db3"))


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
@pytest.mark.parametrize("layout", ["folder", "file"])
def test_source_reads_every_storage_and_keeps_headers(tmp_path, storage, layout):
    frames = _scenes(4)
    bag = write_image_bag(tmp_path / "drive", frames, topic=TOPIC, fps=10, frame_id="cam_front", storage=storage,
                          step_pad=5, start_ns=START)
    src = open_source(_storage_path(bag, layout), topic=TOPIC)
    with src:
        got = list(src)
        assert src.fps == pytest.approx(10.0)
        assert src.frame_count == 4
    assert [f.index for f in got] == [0, 1, 2, 3]
    for i, (f, ref) in enumerate(zip(got, frames)):
        np.testing.assert_array_equal(f.image, ref)
        assert f.image.flags.writeable and f.image.flags.c_contiguous
        assert f.stamp_ns == START + i * 100_000_000 and f.frame_id == "cam_front"


@pytest.mark.parametrize("kind", ["mono16_be", "mono16_le", "yuv422", "rgba8", "png"])
def test_source_decodes_encodings(tmp_path, kind):
    rng = np.random.default_rng(0)
    if kind.startswith("mono16"):
        frames = [rng.integers(0, 65536, HW).astype(np.uint16) for _ in range(2)]
        bag = write_image_bag(tmp_path / "b", frames, encoding="mono16", bigendian=kind.endswith("be"))
        expect = [np.repeat((f >> 8).astype(np.uint8)[..., None], 3, 2) for f in frames]
    elif kind == "yuv422":
        frames = [np.full(HW + (2,), 128, np.uint8) for _ in range(2)]
        frames[1][..., 1] = 200  # UYVY: odd bytes are Y
        bag = write_image_bag(tmp_path / "b", frames, encoding="yuv422")
        expect = [C.to_bgr(f, "yuv422") for f in frames]
        assert expect[1].mean() > expect[0].mean() + 50
    elif kind == "rgba8":
        bgr = _scenes(2)
        frames = [np.concatenate([f[..., ::-1], np.full(HW + (1,), 9, np.uint8)], 2) for f in bgr]
        bag = write_image_bag(tmp_path / "b", frames, encoding="rgba8")
        expect = bgr
    else:
        expect = _scenes(2)
        bag = write_image_bag(tmp_path / "b", expect, compressed="png")
    with open_source(bag, topic=TOPIC) as src:
        got = [f.image for f in src]
    assert len(got) == 2
    for g, e in zip(got, expect):
        np.testing.assert_array_equal(g, e)


def test_topic_missing_or_wrong_lists_the_image_topics(tmp_path):
    from rosbags.rosbag2 import Writer

    kit = RosbagsKit()
    img = C.image_msg(kit, np.zeros((2, 2), np.uint8), "mono8", C.header(kit, START, "c"))
    with Writer(tmp_path / "two", version=9) as w:
        for topic in ("/left/image_raw", "/right/image_raw"):
            w.write(w.add_connection(topic, img.__msgtype__, typestore=kit.store), START, kit.serialize(img))
        w.write(w.add_connection("/header", "std_msgs/msg/Header", typestore=kit.store), START,
                kit.serialize(img.header))
    for topic in (None, "/nope"):
        with pytest.raises(SourceError) as e:
            open_source(tmp_path / "two", topic=topic)
        msg = str(e.value)
        assert "/left/image_raw (Image, 1 messages)" in msg and "/right/image_raw" in msg and "/header" not in msg
    with pytest.raises(EdgesegError, match="cannot open"):
        (tmp_path / "junk.mcap").write_bytes(b"not an mcap file at all")
        open_source(tmp_path / "junk.mcap", topic=TOPIC)


def test_run_semantic_bag_to_bag_skips_malformed_messages(tmp_path, capsys):
    frames = _scenes(5)
    bag = write_image_bag(tmp_path / "drive", frames, topic=TOPIC, fps=20, frame_id="cam", extra=_malformed())
    out = tmp_path / "out.mcap"
    rc = main(["run", "--source", str(bag), "--topic", TOPIC, "--save-bag", str(out), "--bag-color",
               "--bag-namespace", "/seg", "--stats", str(tmp_path / "s.json"), "--quiet"])
    cap = capsys.readouterr()
    assert rc == 0, cap.err
    stats = json.loads((tmp_path / "s.json").read_text())
    assert stats["frames"] == 5 and stats["events"]["malformed_message"] == 3
    assert "step * height" in cap.err and "bayer_rggb8" in cap.err and cap.err.count("skipped message") == 3
    assert topics(out) == {"/seg/label_info": ("vision_msgs/msg/LabelInfo", 1),
                           "/seg/class_mask": ("sensor_msgs/msg/Image", 5),
                           "/seg/color_mask": ("sensor_msgs/msg/Image", 5)}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    from rosbags.interfaces import QosDurability
    from rosbags.rosbag2 import Reader

    with Reader(out) as r:  # label_info is offered latched (transient local)
        qos = {c.topic: c.ext.offered_qos_profiles for c in r.connections}
    assert qos["/seg/label_info"][0].durability == QosDurability.TRANSIENT_LOCAL
    predictor = load(ASSETS / "semantic_default.onnx")
    masks = list(read_messages(out, "/seg/class_mask"))
    colours = list(read_messages(out, "/seg/color_mask"))
    ((_, info),) = read_messages(out, "/seg/label_info")
    assert [c.class_name for c in info.class_map] == predictor.meta.classes
    for i, (frame, (t, m), (_, cm)) in enumerate(zip(frames, masks, colours)):
        stamp = START + i * 50_000_000
        assert t == stamp and C.stamp_ns(m.header) == stamp and m.header.frame_id == "cam"
        assert (m.encoding, m.height, m.width) == ("mono8", *HW)
        labels = predictor(frame).labels
        np.testing.assert_array_equal(C.image_to_numpy(m), labels)
        palette = np.asarray(predictor.meta.palette, np.uint8)
        np.testing.assert_array_equal(C.image_to_numpy(cm), palette[labels])


def test_truncated_compressed_images_are_skipped(tmp_path, capsys):
    frames = _scenes(3)
    kit = RosbagsKit()
    good = C.compressed_msg(kit, frames[0], "jpeg", C.header(kit, START, "cam"))
    cut = kit.make("sensor_msgs/msg/CompressedImage", header=good.header, format=good.format,
                   data=good.data[: len(good.data) // 2])
    bag = write_image_bag(tmp_path / "jpg", frames, compressed="jpeg", extra=[(1, kit.serialize(cut))])
    src = open_source(bag, topic=TOPIC)
    logged: list[str] = []
    src.log = logged.append
    with src:
        got = list(src)
    assert [f.index for f in got] == [0, 1, 3]  # message 2 was the truncated one
    assert src.counters() == {"malformed_message": 1} and "truncated" in logged[0]


def test_instance_model_writes_detections_and_instance_mask(tmp_path):
    frames = _scenes(3, (64, 80))
    bag = write_image_bag(tmp_path / "drive", frames, topic=TOPIC, fps=15, frame_id="cam")
    predictor = load(ASSETS / "instance_default.onnx")
    results = []
    pipe = Pipeline(predictor, open_source(bag, topic=TOPIC),
                    [RosbagSink(tmp_path / "inst", namespace="edgeseg", color=True)], on_result=results.append)
    pipe.run()
    assert pipe.closed == [str(tmp_path / "inst")]
    assert (tmp_path / "inst" / "metadata.yaml").is_file()  # a rosbag2 folder
    names = topics(tmp_path / "inst")
    assert {k: v[1] for k, v in names.items()} == {"/edgeseg/label_info": 1, "/edgeseg/detections": 3,
                                                   "/edgeseg/instance_mask": 3, "/edgeseg/color_mask": 3}
    dets = [m for _, m in read_messages(tmp_path / "inst", "/edgeseg/detections")]
    ids = [m for _, m in read_messages(tmp_path / "inst", "/edgeseg/instance_mask")]
    colours = [m for _, m in read_messages(tmp_path / "inst", "/edgeseg/color_mask")]
    palette = np.asarray(predictor.meta.palette, np.uint8)
    assert sum(len(r) for r in results) > 0, "the shipped instance model found nothing to check against"
    for r, d, im, cm in zip(results, dets, ids, colours):
        assert C.stamp_ns(d.header) == r.stamp_ns and d.header.frame_id == "cam"
        boxes, scores, classes = C.detections_to_numpy(d)
        np.testing.assert_allclose(boxes, r.boxes, atol=1e-4)
        np.testing.assert_allclose(scores, r.scores, rtol=1e-6)
        assert classes.tolist() == r.class_ids.tolist()
        assert im.encoding == "mono16"
        np.testing.assert_array_equal(C.image_to_numpy(im), r.instance_map())
        inst = r.instance_map()
        expect = np.where((inst > 0)[..., None], palette[np.concatenate([[0], r.class_ids])[inst]], 0)
        np.testing.assert_array_equal(C.image_to_numpy(cm), expect)


def test_sink_is_atomic(tmp_path):
    from edgeseg.pipeline import StreamResult

    predictor = load(ASSETS / "semantic_default.onnx")
    frames = _scenes(2)
    sink = RosbagSink(tmp_path / "o.db3")
    for f in frames:
        sink.put(StreamResult(predictor(f), stamp_ns=START, frame_id="x"))
    assert not (tmp_path / "o.db3").exists()  # nothing at the target until close
    sink.abort()
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("x")
    with pytest.raises(EdgesegError, match="never overwritten"):
        RosbagSink(tmp_path / "full")
    sink = RosbagSink(tmp_path / "o.db3")
    sink.put(StreamResult(predictor(frames[0]), stamp_ns=START, frame_id="x"))
    assert sink.close() == tmp_path / "o.db3"
    assert topics(tmp_path / "o.db3")["/edgeseg/class_mask"][1] == 1


def test_cli_errors_and_lazy_imports(tmp_path, capsys):
    bag = write_image_bag(tmp_path / "drive", _scenes(1))
    assert main(["run", "--source", str(bag), "--quiet"]) == 2
    assert "image topics in drive: /camera/image_raw (Image, 1 messages)" in capsys.readouterr().err
    assert main(["run", "--source", "synthetic", "--topic", TOPIC, "--frames", "1", "--quiet"]) == 2
    assert "--topic applies to ROS 2 recordings" in capsys.readouterr().err
    code = "import sys, edgeseg.pipeline, edgeseg.cli.run; print('rosbags' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"


def test_damaged_recordings_are_clear_errors(tmp_path):
    frames = _scenes(6)
    mcap = write_image_bag(tmp_path / "m", frames) / "m.mcap"
    cut = tmp_path / "cut.mcap"
    cut.write_bytes(mcap.read_bytes()[: mcap.stat().st_size // 2])
    with pytest.raises(SourceError, match="mcap recover"):
        open_source(cut, topic=TOPIC)
    db3 = write_image_bag(tmp_path / "s", frames, storage="sqlite3") / "s.db3"
    cut = tmp_path / "cut.db3"
    cut.write_bytes(db3.read_bytes()[:-100])  # the last page is gone
    with pytest.raises(SourceError, match="damaged: reading stopped after"):
        with open_source(cut, topic=TOPIC) as src:
            list(src)


def test_output_reads_in_the_reference_mcap_reader(tmp_path):
    """Foxglove's own MCAP libraries (what MCAP viewers use) decode every output message from
    the schemas embedded in the file, vision_msgs included, with the input's stamps."""
    read_ros2_messages = pytest.importorskip("mcap_ros2.reader", reason="mcap-ros2-support is not installed"
                                             ).read_ros2_messages
    frames = _scenes(2, (64, 80))
    bag = write_image_bag(tmp_path / "drive", frames, fps=10, frame_id="cam")
    out = tmp_path / "inst.mcap"
    predictor = load(ASSETS / "instance_default.onnx")
    Pipeline(predictor, open_source(bag, topic=TOPIC), [RosbagSink(out, color=True)]).run()
    seen: dict[str, list] = {}
    for m in read_ros2_messages(str(out)):
        seen.setdefault(m.channel.topic, []).append(m)
    assert sorted(seen) == ["/edgeseg/color_mask", "/edgeseg/detections", "/edgeseg/instance_mask",
                            "/edgeseg/label_info"]
    assert [c.class_name for c in seen["/edgeseg/label_info"][0].ros_msg.class_map] == predictor.meta.classes
    for i, m in enumerate(seen["/edgeseg/instance_mask"]):
        msg = m.ros_msg
        assert m.log_time_ns == START + i * 100_000_000 and msg.header.frame_id == "cam"
        assert (msg.encoding, msg.height, msg.width) == ("mono16", 64, 80)
        ref = predictor(frames[i])
        np.testing.assert_array_equal(C.image_to_numpy(msg), ref.instance_map())
        dets = seen["/edgeseg/detections"][i].ros_msg.detections
        assert [d.results[0].hypothesis.class_id for d in dets] == [str(c) for c in ref.class_ids]
