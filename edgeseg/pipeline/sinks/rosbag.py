"""Results as a ROS 2 recording: masks and detections as messages, stamped like their input frames.

Topics under ``namespace`` (default ``/edgeseg``), each message with the input frame's header
(stamp and frame_id; the stamp is also the message's time in the recording):

- ``<ns>/label_info``: ``vision_msgs/LabelInfo`` (class id -> name), once, offered transient-local
  (latched);
- semantic models: ``<ns>/class_mask``, ``sensor_msgs/Image`` mono8 class ids at camera resolution
  (mono16 past 255 classes);
- instance models: ``<ns>/detections``, ``vision_msgs/Detection2DArray`` (detection i has id
  ``i + 1``), and ``<ns>/instance_mask``, mono16, 0 = none, i + 1 = detection i;
- with ``color=True``: ``<ns>/color_mask``, rgb8 class colours (black where nothing was found on
  instance models).

The target is a ``.mcap`` or ``.db3`` file (the single storage file) or, for any other name, a
rosbag2 folder in MCAP storage. It is written beside the target under a temporary name and moved
into place on close, so it appears complete or not at all. Uses ``rosbags`` (the ``ros`` extra).
"""
from __future__ import annotations

import os
import shutil
import time
from typing import TYPE_CHECKING, Any

from ...errors import EdgesegError
from .base import StagedSink

if TYPE_CHECKING:  # pragma: no cover
    from ..results import StreamResult

#: Suffixes written as a single storage file; anything else becomes a rosbag2 folder.
FILE_SUFFIXES = {".mcap": "MCAP", ".db3": "SQLITE3"}


def _topic(namespace: str, name: str) -> str:
    ns = "/" + namespace.strip("/") if namespace.strip("/") else ""
    return f"{ns}/{name}"


class RosbagSink(StagedSink):
    """Write results into a ROS 2 recording (see the module docstring for topics and layout).

    Args:
        path: ``out.mcap``, ``out.db3`` or a folder name (rosbag2, MCAP storage).
        namespace: topic prefix.
        color: also write ``<ns>/color_mask`` (rgb8).
        threshold: the score threshold stored in LabelInfo.
        compress: MCAP only: zstd-compressed chunks (read by every MCAP reader; the masks are
            mostly runs, so the file is far smaller and the sink is no longer bound by the disk).
    """

    needs_image = False
    kind = "rosbag"

    def __init__(self, path: str | os.PathLike, namespace: str = "/edgeseg", color: bool = False,
                 threshold: float = 0.0, compress: bool = True) -> None:
        from ...integrations.ros.types import RosbagsKit, require_rosbags

        require_rosbags()
        from rosbags.rosbag2 import StoragePlugin, Writer

        self._stage(path)
        self.namespace = namespace
        self.color = color
        self.threshold = float(threshold)
        self.single = self.path.suffix.lower() in FILE_SUFFIXES
        if not self.single and self.path.exists() and (not self.path.is_dir() or any(self.path.iterdir())):
            raise EdgesegError(f"{self.path} exists; a recording folder is never overwritten: remove it or "
                               "choose another name (or a .mcap / .db3 file name)")
        if self.single and self.path.is_dir():
            raise EdgesegError(f"{self.path} is a folder; give a file name or remove it")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(self._tmp, ignore_errors=True)
        plugin = getattr(StoragePlugin, FILE_SUFFIXES.get(self.path.suffix.lower(), "MCAP"))
        self._kit = RosbagsKit()
        self._writer: Any = Writer(self._tmp / "bag", version=9, storage_plugin=plugin)
        if plugin == StoragePlugin.MCAP and compress:  # zstd chunks: masks shrink ~50-100x, disks are slow
            from rosbags.rosbag2.enums import CompressionFormat, CompressionMode

            self._writer.set_compression(CompressionMode.STORAGE, CompressionFormat.ZSTD)
        self._writer.open()
        self._conns: dict[str, Any] = {}
        self._info_written = False
        self.frames = 0

    # ------------------------------------------------------------------------------ writing
    def _conn(self, name: str, msgtype: str, latched: bool = False) -> Any:
        if name not in self._conns:
            qos = ()
            if latched:
                from rosbags.interfaces import (Qos, QosDurability, QosHistory, QosLiveliness, QosReliability,
                                                QosTime)

                qos = (Qos(QosHistory.KEEP_LAST, 1, QosReliability.RELIABLE, QosDurability.TRANSIENT_LOCAL,
                           QosTime(0, 0), QosTime(0, 0), QosLiveliness.AUTOMATIC, QosTime(0, 0), False),)
            self._conns[name] = self._writer.add_connection(_topic(self.namespace, name), msgtype,
                                                            typestore=self._kit.store, offered_qos_profiles=qos)
        return self._conns[name]

    def _write(self, name: str, msg: Any, t: int, latched: bool = False) -> None:
        conn = self._conn(name, msg.__msgtype__, latched)
        self._writer.write(conn, t, self._kit.serialize(msg))

    def put(self, result: "StreamResult") -> None:
        from ...integrations.ros import convert as C

        if self._writer is None:
            raise EdgesegError("RosbagSink is closed")
        kit = self._kit
        stamp = getattr(result, "stamp_ns", None)
        stamp = time.time_ns() if stamp is None else stamp
        t = stamp if stamp > 0 else time.time_ns()
        hdr = C.header(kit, stamp, getattr(result, "frame_id", ""))
        if not self._info_written:
            self._write("label_info", C.label_info_msg(kit, hdr, result.meta.classes, self.threshold), t, latched=True)
            self._info_written = True
        for name, msg in C.result_messages(kit, result, hdr, color=self.color):
            self._write(name, msg, t)
        self.frames += 1

    # ------------------------------------------------------------------------------ finishing
    def _finish(self, writer: Any) -> None:
        writer.close()
        bag = self._tmp / "bag"
        if self.single:
            (storage,) = [p for p in bag.iterdir() if p.suffix in FILE_SUFFIXES]
            os.replace(storage, self.path)
        else:
            if self.path.is_dir():
                self.path.rmdir()  # empty (checked when opening)
            os.replace(bag, self.path)
        shutil.rmtree(self._tmp, ignore_errors=True)

    def _drop(self, writer: Any) -> None:
        if writer is not None:
            try:
                writer.close()
            except Exception:  # noqa: BLE001 - the partial output is dropped anyway
                pass
        shutil.rmtree(self._tmp, ignore_errors=True)
