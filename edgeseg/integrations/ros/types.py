"""The ``rosbags`` type store used for recordings: ROS 2 Humble types plus ``vision_msgs`` (4.x
definitions, registered from their .msg text when the store lacks them). Imports rosbags lazily."""
from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

from ...errors import EdgesegError

#: vision_msgs 4.x (ROS 2 Humble and later) message definitions, as in the package's msg/ folder.
VISION_MSGS = {
    "vision_msgs/msg/Point2D": "float64 x\nfloat64 y\n",
    "vision_msgs/msg/Pose2D": "vision_msgs/Point2D position\nfloat64 theta\n",
    "vision_msgs/msg/BoundingBox2D": "vision_msgs/Pose2D center\nfloat64 size_x\nfloat64 size_y\n",
    "vision_msgs/msg/ObjectHypothesis": "string class_id\nfloat64 score\n",
    "vision_msgs/msg/ObjectHypothesisWithPose": "vision_msgs/ObjectHypothesis hypothesis\n"
                                                "geometry_msgs/PoseWithCovariance pose\n",
    "vision_msgs/msg/Detection2D": "std_msgs/Header header\nvision_msgs/ObjectHypothesisWithPose[] results\n"
                                   "vision_msgs/BoundingBox2D bbox\nstring id\n",
    "vision_msgs/msg/Detection2DArray": "std_msgs/Header header\nvision_msgs/Detection2D[] detections\n",
    "vision_msgs/msg/VisionClass": "uint16 class_id\nstring class_name\n",
    "vision_msgs/msg/LabelInfo": "std_msgs/Header header\nvision_msgs/VisionClass[] class_map\nfloat32 threshold\n",
}


def require_rosbags() -> Any:
    """Import rosbags or say how to install it."""
    try:
        import rosbags
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise EdgesegError("reading or writing ROS 2 recordings needs the 'rosbags' package: "
                           "pip install 'edgeseg[ros]'") from e
    return rosbags


@lru_cache(maxsize=1)
def typestore() -> Any:
    """A rosbags Typestore with ROS 2 Humble's types and vision_msgs."""
    require_rosbags()
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    store = get_typestore(Stores.ROS2_HUMBLE)
    missing = {}
    for name, text in VISION_MSGS.items():
        if name not in store.types:
            missing.update(get_types_from_msg(text, name))
    if missing:
        store.register(missing)
    return store


class RosbagsKit:
    """Builds messages as rosbags dataclasses (for writing bags and CDR round trips)."""

    def __init__(self, store: Any = None) -> None:
        self.store = store if store is not None else typestore()

    def make(self, typename: str, **fields: Any) -> Any:
        return self.store.types[typename](**fields)

    def bytes(self, data: np.ndarray) -> Any:
        return np.ascontiguousarray(data, np.uint8).reshape(-1)

    def serialize(self, msg: Any) -> bytes:
        return bytes(self.store.serialize_cdr(msg, msg.__msgtype__))

    def deserialize(self, data: bytes, typename: str) -> Any:
        return self.store.deserialize_cdr(data, typename)
