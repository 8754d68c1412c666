"""Fuzz ROS 2 image message conversion: the input is a CDR-serialized ``sensor_msgs/Image`` or
``sensor_msgs/CompressedImage`` (first byte picks which), deserialized by rosbags as a bag reader
does and converted with ``message_to_bgr``. Allowed outcomes, as the rosbag source and the node
handle them: rosbags' deserialization error (the message is skipped), MessageError (refused with
a message) or a BGR uint8 (H, W, 3) frame.
"""
from __future__ import annotations

import os

import atheris

from _harness import run

os.environ["EDGESEG_MAX_IMAGE_PIXELS"] = str(1 << 22)
with atheris.instrument_imports(include=["edgeseg"]):
    import numpy as np
    from rosbags.serde import SerdeError

    from edgeseg.integrations.ros.convert import MessageError, message_to_bgr
    from edgeseg.integrations.ros.types import RosbagsKit

KIT = RosbagsKit()
TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")


def test_one_input(data: bytes) -> None:
    if not data:
        return
    try:
        msg = KIT.deserialize(data[1:], TYPES[data[0] % 2])
    except SerdeError:
        return
    try:
        out = message_to_bgr(msg)
    except MessageError:
        return
    assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 3 and out.flags.writeable, out.shape


if __name__ == "__main__":
    run(test_one_input)
