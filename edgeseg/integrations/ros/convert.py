"""numpy <-> ROS 2 image and vision messages, without ROS.

Reading works on any object with the message's attributes (a ``rosbags`` message, an ``rclpy``
message, a simple namespace): ``sensor_msgs/Image`` (``height``, ``width``, ``encoding``,
``is_bigendian``, ``step``, ``data``) and ``sensor_msgs/CompressedImage`` (``format``, ``data``),
both with a ``header`` (``stamp.sec``, ``stamp.nanosec``, ``frame_id``).

Writing goes through a :class:`MessageKit`, which knows how to build a message of a type from
keyword fields: one kit wraps a ``rosbags`` type store (bags), another ``rclpy``'s generated
classes (the node). Every field is always given, so both kinds of classes accept them.

A message that does not describe a valid image raises :class:`MessageError` saying what is wrong;
nothing is guessed.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, Sequence

import numpy as np

from ...errors import EdgesegError


class MessageError(EdgesegError, ValueError):
    """A ROS message is malformed or uses an encoding that is not supported."""


@dataclass(frozen=True)
class Encoding:
    """How pixels of one ``sensor_msgs/Image`` encoding are laid out."""

    dtype: str  #: element type ("uint8" or "uint16")
    channels: int  #: elements per pixel
    bgr: int | None  #: cv2 colour conversion code to BGR (None: already BGR / special)


def _cv_codes() -> dict[str, int | None]:
    import cv2

    return {
        "rgb8": cv2.COLOR_RGB2BGR, "bgr8": None, "rgba8": cv2.COLOR_RGBA2BGR, "bgra8": cv2.COLOR_BGRA2BGR,
        "mono8": cv2.COLOR_GRAY2BGR, "mono16": cv2.COLOR_GRAY2BGR,
        "yuv422": cv2.COLOR_YUV2BGR_UYVY, "yuv422_yuy2": cv2.COLOR_YUV2BGR_YUY2,
    }


_LAYOUT = {  # encoding -> (dtype, channels)
    "rgb8": ("uint8", 3), "bgr8": ("uint8", 3), "rgba8": ("uint8", 4), "bgra8": ("uint8", 4),
    "mono8": ("uint8", 1), "mono16": ("uint16", 1),
    "yuv422": ("uint8", 2), "yuv422_yuy2": ("uint8", 2),  # UYVY and YUYV byte orders
}
#: Other names ROS uses for the same layouts (sensor_msgs/image_encodings.hpp).
ALIASES = {"8UC1": "mono8", "8UC3": "bgr8", "8UC4": "bgra8", "16UC1": "mono16", "uyvy": "yuv422",
           "yuyv": "yuv422_yuy2"}
#: Encodings :func:`image_to_numpy` and :func:`image_to_bgr` read.
ENCODINGS = tuple(_LAYOUT)


def encoding(name: str) -> Encoding:
    """The layout of an image encoding (aliases resolved); :class:`MessageError` if unknown."""
    key = ALIASES.get(name, name)
    if key not in _LAYOUT:
        raise MessageError(f"unsupported image encoding {name!r}; supported: {', '.join(ENCODINGS)} "
                           f"(and {', '.join(ALIASES)})")
    dtype, channels = _LAYOUT[key]
    return Encoding(dtype, channels, _cv_codes()[key])


def stamp_ns(header: Any) -> int:
    """A header's stamp as integer nanoseconds."""
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


def _buffer(data: Any) -> np.ndarray:
    """A message's ``data`` (numpy array, bytes, array.array, list) as a flat uint8 view."""
    if isinstance(data, np.ndarray):
        return data.reshape(-1).view(np.uint8) if data.dtype.itemsize == 1 else np.frombuffer(
            data.tobytes(), np.uint8)
    if isinstance(data, (list, tuple)):
        return np.asarray(data, dtype=np.uint8)
    return np.frombuffer(memoryview(data).cast("B"), np.uint8)


def image_to_numpy(msg: Any) -> np.ndarray:
    """A ``sensor_msgs/Image`` as an (H, W) or (H, W, C) array in its own encoding (native byte
    order, row padding removed; YUV 4:2:2 as (H, W, 2) bytes). Copies only when it must."""
    enc = encoding(str(msg.encoding))
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    data = _buffer(msg.data)
    itemsize = np.dtype(enc.dtype).itemsize
    row = w * enc.channels * itemsize
    if enc.channels == 2 and w % 2:
        raise MessageError(f"{msg.encoding} image has odd width {w}; YUV 4:2:2 pairs pixels, the width must be even")
    if step < row:
        raise MessageError(f"{msg.encoding} image {w}x{h}: step {step} is less than width * bytes per pixel = {row}")
    if step * h != data.size:
        raise MessageError(f"{msg.encoding} image {w}x{h}: step * height = {step} * {h} = {step * h} bytes, "
                           f"but data holds {data.size}")
    if h == 0 or w == 0:
        raise MessageError(f"{msg.encoding} image is empty ({w}x{h})")
    rows = data.reshape(h, step)[:, :row]
    if itemsize > 1:
        order = ">" if int(msg.is_bigendian) else "<"
        rows = np.ascontiguousarray(rows).view(np.dtype(enc.dtype).newbyteorder(order))
        rows = rows.astype(np.dtype(enc.dtype), copy=False)  # native order
    shape = (h, w) if enc.channels == 1 else (h, w, enc.channels)
    return np.ascontiguousarray(rows).reshape(shape)


def to_bgr(array: np.ndarray, encoding_name: str) -> np.ndarray:
    """An array in a ROS encoding (as from :func:`image_to_numpy`) as BGR uint8 (H, W, 3).
    16-bit mono keeps its high byte."""
    import cv2

    enc = encoding(encoding_name)
    if array.dtype == np.uint16:
        array = (array >> 8).astype(np.uint8)
    if enc.bgr is None:  # a view of the message's buffer may be read-only: frames are writable
        return array if array.flags.writeable and array.flags.c_contiguous else array.copy()
    return cv2.cvtColor(array, enc.bgr)


def image_to_bgr(msg: Any) -> np.ndarray:
    """A ``sensor_msgs/Image`` of any supported encoding as BGR uint8 (H, W, 3)."""
    return to_bgr(image_to_numpy(msg), str(msg.encoding))


_JPEG_SOI, _JPEG_EOI = b"\xff\xd8", b"\xff\xd9"
_PNG_SIG, _PNG_IEND = b"\x89PNG\r\n\x1a\n", b"IEND\xaeB`\x82"


def _compressed_kind(fmt: str) -> tuple[str, str | None]:
    """('jpeg' | 'png', the encoding of the compressed pixels if the format names it)."""
    f = fmt.lower().strip()
    # image_transport writes "<source encoding>; <jpeg|png> compressed <pixel encoding>"
    tail = f.split(";", 1)[1].strip() if ";" in f else f
    words = tail.replace(",", " ").split()
    kind = "jpeg" if ({"jpeg", "jpg"} & set(words)) else "png" if "png" in words else None
    if kind is None:
        raise MessageError(f"unsupported CompressedImage format {fmt!r}; supported: jpeg, png")
    pixels = words[words.index("compressed") + 1] if "compressed" in words[:-1] else None
    return kind, pixels


def compressed_to_bgr(msg: Any) -> np.ndarray:
    """A ``sensor_msgs/CompressedImage`` (JPEG or PNG) as BGR uint8 (H, W, 3). A truncated or
    corrupt stream is an error, never a partly decoded image."""
    import cv2

    from ... import defaults
    from ...image_header import declared_size, structure_problem

    kind, pixels = _compressed_kind(str(msg.format))
    data = _buffer(msg.data)
    raw = data.tobytes()
    if kind == "jpeg":
        if not raw.startswith(_JPEG_SOI):
            raise MessageError(f"CompressedImage ({msg.format}) does not start like a JPEG stream")
        if not raw.rstrip(b"\x00").endswith(_JPEG_EOI):
            raise MessageError(f"CompressedImage ({msg.format}) is truncated: the JPEG stream has no end marker")
    else:
        if not raw.startswith(_PNG_SIG):
            raise MessageError(f"CompressedImage ({msg.format}) does not start like a PNG stream")
        if not raw.endswith(_PNG_IEND):
            raise MessageError(f"CompressedImage ({msg.format}) is truncated: the PNG stream has no IEND chunk")
    size = declared_size(raw[:65536])  # checked before any decoder allocates for it
    if size is None:
        raise MessageError(f"CompressedImage ({msg.format}) has no readable {kind.upper()} image header: corrupt data")
    limit = defaults.max_image_pixels()
    if size[0] * size[1] > limit or 0 in size:
        raise MessageError(f"CompressedImage ({msg.format}) declares a {size[0]}x{size[1]} image; refusing to "
                           f"decode more than {limit} pixels ({defaults.MAX_IMAGE_PIXELS_ENV}) or an empty image")
    problem = structure_problem(raw)
    if problem:
        raise MessageError(f"CompressedImage ({msg.format}) cannot be decoded: {problem}")
    try:
        image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    except cv2.error:
        image = None
    if image is None or image.size == 0:
        raise MessageError(f"CompressedImage ({msg.format}, {len(raw)} bytes) cannot be decoded: corrupt data")
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if pixels in ("rgb8", "rgba8"):  # OpenCV decodes as if the stream held BGR
        image = np.ascontiguousarray(image[:, :, ::-1])
    return image


def message_to_bgr(msg: Any) -> np.ndarray:
    """An Image or CompressedImage message as BGR uint8 (told apart by their fields)."""
    return compressed_to_bgr(msg) if hasattr(msg, "format") else image_to_bgr(msg)


# ------------------------------------------------------------------------------------- writing
class MessageKit(Protocol):
    """Builds messages: ``make("sensor_msgs/msg/Image", **fields)``; ``bytes(array)`` turns a flat
    uint8 array into what the message class takes for a ``uint8[]`` field."""

    def make(self, typename: str, **fields: Any) -> Any: ...

    def bytes(self, data: np.ndarray) -> Any: ...


def header(kit: MessageKit, stamp: int, frame_id: str) -> Any:
    """A ``std_msgs/Header`` from integer nanoseconds and a frame id."""
    sec, nanosec = divmod(int(stamp), 1_000_000_000)
    return kit.make("std_msgs/msg/Header",
                    stamp=kit.make("builtin_interfaces/msg/Time", sec=sec, nanosec=nanosec),
                    frame_id=str(frame_id))


def image_fields(array: np.ndarray, encoding_name: str, *, step: int | None = None,
                 bigendian: bool = False) -> dict[str, Any]:
    """The Image fields (height, width, encoding, is_bigendian, step, data as flat uint8) of an
    array in a ROS encoding; ``step`` pads rows, ``bigendian`` stores 16-bit data big-endian."""
    enc = encoding(encoding_name)
    want = np.dtype(enc.dtype)
    shape_ok = array.ndim == (2 if enc.channels == 1 else 3) and (enc.channels == 1 or array.shape[2] == enc.channels)
    if array.dtype != want or not shape_ok:
        shape = "(H, W)" if enc.channels == 1 else f"(H, W, {enc.channels})"
        raise MessageError(f"{encoding_name} needs a {want} array of shape {shape}, got {array.dtype} {array.shape}")
    h, w = array.shape[:2]
    if enc.channels == 2 and w % 2:
        raise MessageError(f"{encoding_name} needs an even width, got {w}")
    if want.itemsize > 1:
        array = array.astype(want.newbyteorder(">" if bigendian else "<"), copy=False)
    rows = np.ascontiguousarray(array).view(np.uint8).reshape(h, -1)
    row = rows.shape[1]
    step = row if step is None else int(step)
    if step < row:
        raise MessageError(f"step {step} is less than width * bytes per pixel = {row}")
    if step > row:
        padded = np.zeros((h, step), np.uint8)
        padded[:, :row] = rows
        rows = padded
    return dict(height=h, width=w, encoding=encoding_name, is_bigendian=int(bool(bigendian) and want.itemsize > 1),
                step=step, data=rows.reshape(-1))


def image_msg(kit: MessageKit, array: np.ndarray, encoding_name: str, hdr: Any, *, step: int | None = None,
              bigendian: bool = False) -> Any:
    """A ``sensor_msgs/Image`` holding ``array`` (see :func:`image_fields`)."""
    f = image_fields(array, encoding_name, step=step, bigendian=bigendian)
    f["data"] = kit.bytes(f["data"])
    return kit.make("sensor_msgs/msg/Image", header=hdr, **f)


def compressed_msg(kit: MessageKit, bgr: np.ndarray, fmt: str, hdr: Any, quality: int = 90) -> Any:
    """A ``sensor_msgs/CompressedImage`` of a BGR image, ``fmt`` "jpeg" or "png"."""
    import cv2

    ok, buf = cv2.imencode(".jpg" if fmt == "jpeg" else ".png", bgr,
                           [cv2.IMWRITE_JPEG_QUALITY, quality] if fmt == "jpeg" else [])
    if not ok:
        raise MessageError(f"cannot encode the image as {fmt}")
    return kit.make("sensor_msgs/msg/CompressedImage", header=hdr, format=f"bgr8; {fmt} compressed bgr8",
                    data=kit.bytes(buf.reshape(-1)))


def class_mask(labels: np.ndarray) -> tuple[np.ndarray, str]:
    """Class ids as an image array and its encoding: mono8, or mono16 past 255 classes."""
    if labels.dtype == np.uint8:
        return np.ascontiguousarray(labels), "mono8"
    if labels.size and (labels.min() < 0 or labels.max() > 65535):
        raise MessageError("class ids outside 0..65535 cannot be stored in an image")
    return labels.astype(np.uint16), "mono16"


def color_mask(labels: np.ndarray, palette_rgb: Sequence[Sequence[int]]) -> np.ndarray:
    """Each pixel's class colour, RGB uint8 (H, W, 3) (for an rgb8 image); ids past the palette are black."""
    from ... import ops

    h, w = labels.shape
    pal = np.ascontiguousarray(np.asarray(palette_rgb, np.uint8).reshape(-1, 3))
    # The core's overlay at alpha 1 paints palette colours exactly and leaves other ids untouched.
    return ops.overlay(np.zeros((h, w, 3), np.uint8), np.ascontiguousarray(labels), pal, alpha=1.0)


def label_info_msg(kit: MessageKit, hdr: Any, class_names: Sequence[str], threshold: float = 0.0) -> Any:
    """A ``vision_msgs/LabelInfo``: class id i (as in the class mask) is ``class_names[i]``."""
    classes = [kit.make("vision_msgs/msg/VisionClass", class_id=i, class_name=str(n))
               for i, n in enumerate(class_names)]
    return kit.make("vision_msgs/msg/LabelInfo", header=hdr, class_map=classes, threshold=float(threshold))


def detections_msg(kit: MessageKit, hdr: Any, boxes: np.ndarray, scores: np.ndarray,
                   class_ids: np.ndarray) -> Any:
    """A ``vision_msgs/Detection2DArray``: detection i has ``id`` str(i + 1) (its value in the
    instance mask), the box centre and size in pixels, and one hypothesis whose ``class_id`` is the
    class index as text (see LabelInfo) with the score."""
    dets = []
    for i, (box, score, cls) in enumerate(zip(np.asarray(boxes, np.float64), scores, class_ids)):
        x0, y0, x1, y1 = (float(v) for v in box)
        pose = kit.make("geometry_msgs/msg/PoseWithCovariance",
                        pose=kit.make("geometry_msgs/msg/Pose",
                                      position=kit.make("geometry_msgs/msg/Point", x=0.0, y=0.0, z=0.0),
                                      orientation=kit.make("geometry_msgs/msg/Quaternion", x=0.0, y=0.0, z=0.0, w=1.0)),
                        covariance=np.zeros(36, np.float64))
        hypothesis = kit.make("vision_msgs/msg/ObjectHypothesis", class_id=str(int(cls)), score=float(score))
        hyp = kit.make("vision_msgs/msg/ObjectHypothesisWithPose", hypothesis=hypothesis, pose=pose)
        centre = kit.make("vision_msgs/msg/Pose2D",
                          position=kit.make("vision_msgs/msg/Point2D", x=(x0 + x1) / 2, y=(y0 + y1) / 2), theta=0.0)
        bbox = kit.make("vision_msgs/msg/BoundingBox2D", center=centre, size_x=x1 - x0, size_y=y1 - y0)
        dets.append(kit.make("vision_msgs/msg/Detection2D", header=hdr, results=[hyp], bbox=bbox, id=str(i + 1)))
    return kit.make("vision_msgs/msg/Detection2DArray", header=hdr, detections=dets)


def detections_to_numpy(msg: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(boxes xyxy float64 (N, 4), scores (N,), class ids (N,)) of a Detection2DArray written by
    :func:`detections_msg`."""
    boxes, scores, ids = [], [], []
    for d in msg.detections:
        cx, cy = d.bbox.center.position.x, d.bbox.center.position.y
        boxes.append((cx - d.bbox.size_x / 2, cy - d.bbox.size_y / 2, cx + d.bbox.size_x / 2, cy + d.bbox.size_y / 2))
        scores.append(d.results[0].hypothesis.score)
        ids.append(int(d.results[0].hypothesis.class_id))
    return (np.asarray(boxes, np.float64).reshape(-1, 4), np.asarray(scores, np.float64), np.asarray(ids, np.int64))


def result_messages(kit: MessageKit, result: Any, hdr: Any, *, color: bool = False) -> list[tuple[str, Any]]:
    """The messages of one frame's result, as (topic name relative to the namespace, message):
    semantic: ``class_mask``; instance: ``detections`` and ``instance_mask`` (mono16, i + 1 =
    detection i); with ``color``: ``color_mask`` (rgb8 class colours, black where an instance
    model found nothing). Every message carries ``hdr``."""
    meta = result.meta
    labels = getattr(result, "labels", None)
    out: list[tuple[str, Any]] = []
    if labels is not None:
        mask, enc = class_mask(labels)
        out.append(("class_mask", image_msg(kit, mask, enc, hdr)))
        if color:
            out.append(("color_mask", image_msg(kit, color_mask(labels, meta.palette), "rgb8", hdr)))
        return out
    out.append(("detections", detections_msg(kit, hdr, result.boxes, result.scores, result.class_ids)))
    ids = result.instance_map()
    out.append(("instance_mask", image_msg(kit, ids, "mono16", hdr)))
    if color:  # instance i + 1 gets its class's colour
        palette = np.asarray(meta.palette, np.uint8).reshape(-1, 3)
        per_instance = np.concatenate([np.zeros((1, 3), np.uint8), palette[np.asarray(result.class_ids, np.int64)]])
        ids_small = ids.astype(np.uint8 if len(per_instance) <= 256 else np.int32)
        out.append(("color_mask", image_msg(kit, color_mask(ids_small, per_instance), "rgb8", hdr)))
    return out
