"""Write and read ROS 2 recordings of images with ``rosbags`` (for demos, tests and benchmarks)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from . import convert as C
from .types import RosbagsKit, require_rosbags


def write_image_bag(path: str | os.PathLike, frames: Iterable[np.ndarray], *, topic: str = "/camera/image_raw",
                    encoding: str = "bgr8", fps: float = 30.0, frame_id: str = "camera",
                    start_ns: int = 1_700_000_000_000_000_000,
                    storage: str = "mcap", compressed: str | None = None, step_pad: int = 0,
                    bigendian: bool = False, extra: Iterable[tuple[int, bytes]] = ()) -> Path:
    """Record frames as a rosbag2 folder (``storage`` "mcap" or "sqlite3") on ``topic``.

    Each frame is an array in ``encoding`` (see :func:`convert.image_fields`), or BGR uint8 with
    ``compressed`` "jpeg"/"png" (a CompressedImage topic). Frame i is stamped
    ``start_ns + i / fps`` in its header and in the recording. ``extra`` adds raw CDR payloads
    ``(index, bytes)`` on the same topic after frame ``index`` (malformed messages for tests).
    """
    require_rosbags()
    from rosbags.rosbag2 import StoragePlugin, Writer

    kit = RosbagsKit()
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    msgtype = "sensor_msgs/msg/CompressedImage" if compressed else "sensor_msgs/msg/Image"
    extra_at: dict[int, list[bytes]] = {}
    for i, raw in extra:
        extra_at.setdefault(int(i), []).append(raw)
    path = Path(path)
    with Writer(path, version=9, storage_plugin=plugin) as w:
        conn = w.add_connection(topic, msgtype, typestore=kit.store)
        for i, frame in enumerate(frames):
            t = start_ns + int(round(i * 1e9 / fps))
            hdr = C.header(kit, t, frame_id)
            if compressed:
                msg = C.compressed_msg(kit, frame, compressed, hdr)
            else:
                row = frame.shape[1] * (frame.shape[2] if frame.ndim == 3 else 1) * frame.dtype.itemsize
                msg = C.image_msg(kit, frame, encoding, hdr, step=row + step_pad if step_pad else None,
                                  bigendian=bigendian)
            w.write(conn, t, kit.serialize(msg))
            for raw in extra_at.get(i, []):
                w.write(conn, t + 1, raw)
    return path


def read_messages(path: str | os.PathLike, topic: str) -> Iterator[tuple[int, Any]]:
    """(recording time ns, message) of every message on ``topic``, deserialised with the
    edgeseg type store (ROS 2 Humble + vision_msgs)."""
    require_rosbags()
    from rosbags.rosbag2 import Reader

    kit = RosbagsKit()
    with Reader(Path(path)) as r:
        conns = [c for c in r.connections if c.topic == topic]
        for conn, t, raw in r.messages(connections=conns):
            yield t, kit.deserialize(raw, conn.msgtype)


def topics(path: str | os.PathLike) -> dict[str, tuple[str, int]]:
    """{topic: (message type, count)} of a recording."""
    require_rosbags()
    from rosbags.rosbag2 import Reader

    with Reader(Path(path)) as r:
        out: dict[str, tuple[str, int]] = {}
        for c in r.connections:
            n = out.get(c.topic, (c.msgtype, 0))[1]
            out[c.topic] = (c.msgtype, n + c.msgcount)
        return out
