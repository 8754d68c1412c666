"""The ROS 2 node: its per-message work (ROS-free, always tested) and the rclpy wiring (tested
where rclpy exists: it comes with a ROS 2 installation, not from PyPI)."""
from __future__ import annotations

import importlib.util
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rosbags", reason="rosbags is not installed (pip install 'edgeseg[ros]')")

from edgeseg.data.synthetic import generate  # noqa: E402
from edgeseg.integrations.ros import convert as C  # noqa: E402
from edgeseg.integrations.ros.node import ImageProcessor  # noqa: E402
from edgeseg.integrations.ros.types import RosbagsKit  # noqa: E402
from edgeseg.runtime import load  # noqa: E402

ASSETS = Path(__file__).resolve().parents[1] / "edgeseg" / "assets"
HAVE_RCLPY = importlib.util.find_spec("rclpy") is not None
STAMP = 1_700_000_123_000_000_007


def _image(kit, bgr, encoding="rgb8"):
    arr = np.ascontiguousarray(bgr[..., ::-1]) if encoding == "rgb8" else bgr
    return C.image_msg(kit, arr, encoding, C.header(kit, STAMP, "cam"))


def test_processor_semantic_messages_and_malformed_input():
    kit = RosbagsKit()
    predictor = load(ASSETS / "semantic_default.onnx")
    logs: list[str] = []
    proc = ImageProcessor(predictor, kit, color=True, log=logs.append)
    bgr = generate(2, seed=4, size=(50, 70)).image
    out = dict(proc(_image(kit, bgr)))
    assert set(out) == {"class_mask", "color_mask"}
    mask = kit.deserialize(kit.serialize(out["class_mask"]), "sensor_msgs/msg/Image")
    assert C.stamp_ns(mask.header) == STAMP and mask.header.frame_id == "cam"
    np.testing.assert_array_equal(C.image_to_numpy(mask), predictor(bgr).labels)
    bad = kit.make("sensor_msgs/msg/Image", header=C.header(kit, STAMP, "cam"), height=50, width=70,
                   encoding="rgb8", is_bigendian=0, step=210, data=np.zeros(10, np.uint8))
    assert proc(bad) == [] and proc.malformed == 1 and "step * height" in logs[0]
    png = C.compressed_msg(kit, bgr, "png", C.header(kit, STAMP, "cam"))
    np.testing.assert_array_equal(C.image_to_numpy(dict(proc(png))["class_mask"]), predictor(bgr).labels)
    assert proc.frames == 2
    info = proc.label_info()
    assert [c.class_name for c in info.class_map] == predictor.meta.classes


def test_processor_instance_messages():
    kit = RosbagsKit()
    predictor = load(ASSETS / "instance_default.onnx")
    bgr = generate(7, seed=4, size=(64, 80)).image
    out = dict(ImageProcessor(predictor, kit)(_image(kit, bgr, "bgr8")))
    assert set(out) == {"detections", "instance_mask"}
    ref = predictor(bgr)
    boxes, scores, classes = C.detections_to_numpy(out["detections"])
    np.testing.assert_allclose(boxes, ref.boxes, atol=1e-4)
    assert classes.tolist() == ref.class_ids.tolist()
    np.testing.assert_array_equal(C.image_to_numpy(out["instance_mask"]), ref.instance_map())


@pytest.mark.skipif(HAVE_RCLPY, reason="rclpy is installed: the node itself is tested instead")
def test_module_entry_without_rclpy_says_what_to_do():
    r = subprocess.run([sys.executable, "-m", "edgeseg.ros"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "rclpy" in r.stderr and "setup.bash" in r.stderr


@pytest.mark.skipif(not HAVE_RCLPY, reason="rclpy comes with a ROS 2 installation, not from PyPI; "
                                           "not installed here (source /opt/ros/<distro>/setup.bash)")
def test_node_publishes_masks_with_the_input_header():  # pragma: no cover - needs ROS 2
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image
    from vision_msgs.msg import LabelInfo

    from edgeseg.integrations.ros.node import RclpyKit, create_node

    rclpy.init()
    try:
        predictor = load(ASSETS / "semantic_default.onnx")
        node = create_node("edgeseg_test", predictor=predictor, parameter_overrides=[
            Parameter("image_topic", value="/test/image"), Parameter("namespace", value="/t"),
            Parameter("color_mask", value=True)])
        peer = rclpy.create_node("edgeseg_test_peer")
        got: dict[str, list] = {"class_mask": [], "color_mask": [], "label_info": []}
        for name in ("class_mask", "color_mask"):
            peer.create_subscription(Image, f"/t/{name}", lambda m, n=name: got[n].append(m), 10)
        peer.create_subscription(LabelInfo, "/t/label_info", got["label_info"].append,
                                 QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL))
        pub = peer.create_publisher(Image, "/test/image", QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT))
        kit = RclpyKit()
        bgr = generate(3, seed=4, size=(40, 56)).image
        msg = C.image_msg(kit, bgr, "bgr8", C.header(kit, STAMP, "cam"))
        ex = SingleThreadedExecutor()
        ex.add_node(node)
        ex.add_node(peer)
        deadline = time.monotonic() + 20
        while not (got["class_mask"] and got["color_mask"] and got["label_info"]) and time.monotonic() < deadline:
            pub.publish(msg)
            ex.spin_once(timeout_sec=0.1)
        assert got["class_mask"] and got["color_mask"] and got["label_info"]
        m = got["class_mask"][0]
        assert (m.header.stamp.sec, m.header.stamp.nanosec, m.header.frame_id) == (STAMP // 10**9, STAMP % 10**9, "cam")
        np.testing.assert_array_equal(C.image_to_numpy(m), predictor(bgr).labels)
        assert [c.class_name for c in got["label_info"][0].class_map] == predictor.meta.classes
        node.destroy_node()
        peer.destroy_node()
    finally:
        rclpy.try_shutdown()
