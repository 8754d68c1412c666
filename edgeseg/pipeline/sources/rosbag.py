"""Every image message of one topic of a ROS 2 recording (rosbag2 folder, .mcap or .db3), in order.

Reads ``sensor_msgs/Image`` (every encoding of :mod:`edgeseg.integrations.ros.convert`) and
``sensor_msgs/CompressedImage`` (JPEG, PNG) with the pure-Python ``rosbags`` package (the ``ros``
extra), imported only when a recording is opened. Frames carry the message header's stamp and
frame_id. A malformed message is skipped, counted (``counters()["malformed_message"]``) and
logged; the run goes on.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator

from ...errors import InputFileError, SourceError
from .base import Frame, Source
from .registry import register_source

#: Message types read as frames.
IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")
#: Storage files opened directly (a rosbag2 folder has a metadata.yaml).
BAG_SUFFIXES = (".mcap", ".db3")
#: Skipped messages reported one by one before the log goes quiet (the count keeps going).
LOG_FIRST = 10


def is_recording(spec: Any) -> bool:
    """True when ``spec`` names a ROS 2 recording: a .mcap / .db3 file or a rosbag2 folder."""
    if not isinstance(spec, (str, Path)):
        return False
    p = Path(spec)
    return p.suffix.lower() in BAG_SUFFIXES or (p.is_dir() and (p / "metadata.yaml").is_file())


def _stderr(msg: str) -> None:
    print(f"edgeseg: {msg}", file=sys.stderr, flush=True)


class RosbagSource(Source):
    """The image messages of ``topic`` in a recording, as BGR frames in recording order.

    Args:
        path: a rosbag2 folder, or one .mcap / .db3 storage file.
        topic: the image topic; when None or not an image topic of the recording, a
            :class:`SourceError` lists the image topics there are.
        log: where notices about skipped messages go (default stderr).
    """

    def __init__(self, path: str | Path, topic: str | None = None,
                 log: Callable[[str], None] | None = None) -> None:
        from ...integrations.ros.types import require_rosbags, typestore

        require_rosbags()
        from rosbags.rosbag2 import Reader

        self.path = Path(path)
        self.log = log or _stderr
        if not self.path.exists():
            raise InputFileError(f"recording not found: {self.path}; give a rosbag2 folder or a .mcap/.db3 file")
        try:
            self._reader = Reader(self.path)
            self._reader.open()
        except Exception as e:  # rosbags raises its own errors, and sqlite/mcap ones below them
            hint = (" (an MCAP file cut short, e.g. by a crash, lacks its footer: `mcap recover` rebuilds it)"
                    if "end magic" in str(e) else "")
            raise SourceError(f"cannot open {self.path} as a ROS 2 recording: {e}{hint}") from None
        self._store = typestore()
        try:
            self.topics = {c.topic: c.msgtype for c in self._reader.connections if c.msgtype in IMAGE_TYPES}
            if topic not in self.topics:
                listing = ", ".join(f"{t} ({m.rsplit('/', 1)[-1]}, {self._count(t)} messages)"
                                    for t, m in sorted(self.topics.items())) or "none"
                what = "give the image topic to read with --topic" if topic is None else \
                    f"topic {topic!r} is not an image topic of the recording"
                raise SourceError(f"{what}; image topics in {self.path.name}: {listing}")
        except BaseException:
            self._reader.close()
            raise
        self.topic = topic
        self.msgtype = self.topics[topic]
        self._connections = [c for c in self._reader.connections if c.topic == topic]
        self.frame_count = self._count(topic)
        span = self._reader.duration / 1e9  # fps: the topic's messages over the recording's span (approximate)
        self.fps = (self.frame_count - 1) / span if self.frame_count > 1 and span > 0 else None
        self.malformed = 0
        self._closed = False

    def _count(self, topic: str) -> int:
        return sum(c.msgcount for c in self._reader.connections if c.topic == topic)

    def __iter__(self) -> Iterator[Frame]:
        from ...integrations.ros.convert import compressed_to_bgr, image_to_bgr, stamp_ns

        decode = compressed_to_bgr if self.msgtype.endswith("CompressedImage") else image_to_bgr
        tag = self.topic.strip("/").replace("/", "_") or "frame"
        t0 = time.perf_counter()
        for i, (conn, _t, raw) in enumerate(self._messages()):
            try:
                msg = self._store.deserialize_cdr(raw, conn.msgtype)
                image = decode(msg)
            except Exception as e:  # noqa: BLE001 - a bad message never stops the run
                self.malformed += 1
                if self.malformed <= LOG_FIRST:
                    more = " (further ones are only counted)" if self.malformed == LOG_FIRST else ""
                    self.log(f"skipped message {i} of {self.topic}: {e}{more}")
                t0 = time.perf_counter()
                continue
            t1 = time.perf_counter()
            yield Frame(image, i, f"{tag}_{i:06d}", t1, (t1 - t0) * 1e3,
                        stamp_ns=stamp_ns(msg.header), frame_id=str(msg.header.frame_id))
            t0 = time.perf_counter()

    def _messages(self) -> Iterator[tuple[Any, int, bytes]]:
        """The topic's raw messages; storage damage is a SourceError saying where reading stopped."""
        it = iter(self._reader.messages(connections=self._connections))
        n = 0
        while True:
            try:
                item = next(it)
            except StopIteration:
                return
            except Exception as e:  # noqa: BLE001 - sqlite / mcap / rosbags errors below
                raise SourceError(f"{self.path} is damaged: reading stopped after {n} messages of "
                                  f"{self.topic}: {e}") from None
            n += 1
            yield item

    def counters(self) -> dict[str, int]:
        """Messages skipped so far because they were malformed."""
        return {"malformed_message": self.malformed}

    def describe(self) -> str:
        return f"recording {self.path} {self.topic}"

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._reader.close()


@register_source("rosbag", priority=80, options=("topic",),
                 help="a ROS 2 recording (rosbag2 folder, .mcap or .db3) with --topic")
def _open_rosbag(spec: Any, topic: str | None = None) -> Source | None:
    if is_recording(spec):
        return RosbagSource(spec, topic)
    return None
