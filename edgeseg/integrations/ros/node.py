"""A ROS 2 node: segment the images of one topic and publish masks and detections.

    python -m edgeseg.ros --ros-args -p image_topic:=/camera/image_raw -p model:=my.onnx

Subscribes to ``image_topic`` (``sensor_msgs/Image``, or ``CompressedImage`` when the topic ends
in ``/compressed`` or ``compressed:=true``) with a depth-1 best-effort QoS, so a slow model always
works on the newest frame. Publishes, with each input's header, the topics of
:func:`convert.result_messages` under ``namespace`` (``class_mask``; ``detections`` and
``instance_mask`` for instance models; ``color_mask`` with ``color_mask:=true``) and
``<namespace>/label_info`` once, transient-local (latched).

Parameters: ``model`` (path; empty = the shipped model of ``task``), ``task`` ("semantic" or
"instance"), ``backend`` ("auto"), ``threads`` (0 = default), ``conf``/``iou`` (instance score and
NMS thresholds; negative = the model's), ``namespace`` ("/edgeseg"), ``color_mask`` (false),
``image_topic`` ("/camera/image_raw"), ``compressed`` (false).

The work per message is :class:`ImageProcessor`, which needs no ROS; this module only wires it to
``rclpy`` (imported when the node is created: it comes with a ROS 2 installation, not from PyPI).
A malformed message is counted and logged (throttled) and the node carries on.
"""
from __future__ import annotations

import array
import importlib
import sys
import time
from typing import Any, Callable, Sequence

import numpy as np

from . import convert as C

#: Parameters of the node and their defaults.
PARAMETERS: dict[str, Any] = {
    "model": "", "task": "semantic", "backend": "auto", "threads": 0, "conf": -1.0, "iou": -1.0,
    "namespace": "/edgeseg", "color_mask": False, "image_topic": "/camera/image_raw", "compressed": False,
}


class RclpyKit:
    """Builds messages as rclpy's generated classes (``sensor_msgs.msg.Image`` ...)."""

    def make(self, typename: str, **fields: Any) -> Any:
        pkg, _, name = typename.split("/")
        return getattr(importlib.import_module(f"{pkg}.msg"), name)(**fields)

    def bytes(self, data: np.ndarray) -> Any:
        return array.array("B", np.ascontiguousarray(data, np.uint8).tobytes())


class ImageProcessor:
    """Decode an image message, segment it, build the output messages (no ROS needed).

    Args:
        predictor: an edgeseg predictor (``predictor(bgr) -> result``).
        kit: the message kit of the caller (:class:`RclpyKit` in the node).
        color: also build ``color_mask``.
        log: called with a notice for malformed messages (the first ones, then every 100th).
    """

    def __init__(self, predictor: Any, kit: C.MessageKit, *, color: bool = False,
                 log: Callable[[str], None] | None = None) -> None:
        self.predictor = predictor
        self.kit = kit
        self.color = color
        self.log = log or (lambda m: print(f"edgeseg: {m}", file=sys.stderr))
        self.frames = 0
        self.malformed = 0
        self.last_ms = 0.0

    def label_info(self, stamp: int = 0, frame_id: str = "", threshold: float = 0.0) -> Any:
        return C.label_info_msg(self.kit, C.header(self.kit, stamp, frame_id), self.predictor.meta.classes, threshold)

    def __call__(self, msg: Any) -> list[tuple[str, Any]]:
        """The (relative topic, message) pairs for one input message; [] when it was malformed."""
        t0 = time.perf_counter()
        try:
            frame = C.message_to_bgr(msg)
        except C.MessageError as e:
            self.malformed += 1
            if self.malformed <= 10 or self.malformed % 100 == 0:
                self.log(f"skipped a malformed image message ({self.malformed} so far): {e}")
            return []
        result = self.predictor(frame)
        out = C.result_messages(self.kit, result, msg.header, color=self.color)
        self.frames += 1
        self.last_ms = (time.perf_counter() - t0) * 1e3
        return out


def _message_class(typename: str) -> Any:
    pkg, _, name = typename.split("/")
    return getattr(importlib.import_module(f"{pkg}.msg"), name)


#: Output topics (relative) and their message types.
OUTPUT_TYPES = {"class_mask": "sensor_msgs/msg/Image", "color_mask": "sensor_msgs/msg/Image",
                "instance_mask": "sensor_msgs/msg/Image", "detections": "vision_msgs/msg/Detection2DArray",
                "label_info": "vision_msgs/msg/LabelInfo"}


def create_node(name: str = "edgeseg", *, predictor: Any = None, parameter_overrides: Sequence[Any] = ()) -> Any:
    """Create the rclpy node (``rclpy.init()`` must have been called). ``predictor`` replaces
    loading the ``model`` parameter (for embedding and tests)."""
    from rclpy.node import Node
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

    class SegmentationNode(Node):
        def __init__(self) -> None:
            super().__init__(name, parameter_overrides=list(parameter_overrides))
            for key, default in PARAMETERS.items():
                self.declare_parameter(key, default)
            p = {k: self.get_parameter(k).value for k in PARAMETERS}
            self.predictor = predictor if predictor is not None else self._load(p)
            ns = "/" + str(p["namespace"]).strip("/") if str(p["namespace"]).strip("/") else ""
            self.processor = ImageProcessor(self.predictor, RclpyKit(), color=bool(p["color_mask"]),
                                            log=lambda m: self.get_logger().warning(m))
            latched = QoSProfile(depth=1, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE,
                                 durability=DurabilityPolicy.TRANSIENT_LOCAL)
            self.pubs = {k: self.create_publisher(_message_class(t), f"{ns}/{k}", latched if k == "label_info" else 10)
                         for k, t in OUTPUT_TYPES.items()}
            conf = float(p["conf"])
            self.pubs["label_info"].publish(self.processor.label_info(threshold=max(conf, 0.0)))
            compressed = bool(p["compressed"]) or str(p["image_topic"]).rstrip("/").endswith("/compressed")
            in_type = "sensor_msgs/msg/CompressedImage" if compressed else "sensor_msgs/msg/Image"
            newest = QoSProfile(depth=1, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.BEST_EFFORT,
                                durability=DurabilityPolicy.VOLATILE)
            self.sub = self.create_subscription(_message_class(in_type), str(p["image_topic"]), self._on_image, newest)
            self.get_logger().info(f"segmenting {p['image_topic']} ({in_type}) with {self.predictor!r}; "
                                   f"publishing under {ns or '/'}")

        def _load(self, p: dict[str, Any]) -> Any:
            from ...runtime import load

            options = {"score_threshold": p["conf"], "iou_threshold": p["iou"]}
            options = {k: float(v) for k, v in options.items() if float(v) >= 0}
            model = str(p["model"]) or None  # None: the shipped model of the task
            return load(model, backend=str(p["backend"]), task=str(p["task"]) if model is None else "semantic",
                        threads=int(p["threads"]) or None, **options)

        def _on_image(self, msg: Any) -> None:
            for topic, out in self.processor(msg):
                self.pubs[topic].publish(out)

    return SegmentationNode()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m edgeseg.ros [--ros-args ...]``: run the node until Ctrl-C."""
    try:
        import rclpy
    except ImportError:
        print("edgeseg.ros needs ROS 2's Python client library (rclpy), which comes with a ROS 2 "
              "installation, not from PyPI: source it first (e.g. source /opt/ros/humble/setup.bash) "
              "and install vision_msgs (apt install ros-humble-vision-msgs)", file=sys.stderr)
        return 2
    from ...errors import EdgesegError

    rclpy.init(args=list(sys.argv if argv is None else argv))
    node = None
    try:
        node = create_node()
        rclpy.spin(node)
    except KeyboardInterrupt:
        pass
    except EdgesegError as e:
        print(f"edgeseg.ros: error: {e}", file=sys.stderr)
        return 2
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return 0
