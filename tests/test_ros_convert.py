"""numpy <-> ROS message conversion, checked by CDR round trips through rosbags' type store."""
from __future__ import annotations

import array
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

pytest.importorskip("rosbags", reason="rosbags is not installed (pip install 'edgeseg[ros]')")

from edgeseg.errors import EdgesegError  # noqa: E402
from edgeseg.integrations.ros import convert as C  # noqa: E402
from edgeseg.integrations.ros.types import RosbagsKit  # noqa: E402

KIT = RosbagsKit()
STAMP = 1_712_345_678_987_654_321


def _roundtrip(msg, typename="sensor_msgs/msg/Image"):
    return KIT.deserialize(KIT.serialize(msg), typename)


def _pixels(encoding: str, h: int, w: int, seed: int = 0) -> np.ndarray:
    enc = C.encoding(encoding)
    rng = np.random.default_rng(seed)
    shape = (h, w) if enc.channels == 1 else (h, w, enc.channels)
    hi = 65536 if enc.dtype == "uint16" else 256
    return rng.integers(0, hi, shape).astype(enc.dtype)


@pytest.mark.parametrize("encoding", C.ENCODINGS)
@pytest.mark.parametrize("pad", [0, 3, 64])
@pytest.mark.parametrize("bigendian", [False, True])
@pytest.mark.parametrize("hw", [(1, 2), (5, 6), (17, 34)])
def test_image_cdr_roundtrip_every_encoding(encoding, pad, bigendian, hw):
    h, w = hw
    a = _pixels(encoding, h, w, seed=h * w + pad)
    hdr = C.header(KIT, STAMP, "camera_optical")
    row = a.shape[1] * (a.shape[2] if a.ndim == 3 else 1) * a.dtype.itemsize
    msg = C.image_msg(KIT, a, encoding, hdr, step=row + pad, bigendian=bigendian)
    back = _roundtrip(msg)
    assert back.step == row + pad and back.encoding == encoding
    assert back.is_bigendian == (1 if bigendian and a.dtype.itemsize == 2 else 0)
    assert C.stamp_ns(back.header) == STAMP and back.header.frame_id == "camera_optical"
    got = C.image_to_numpy(back)
    assert got.dtype == a.dtype and got.shape == a.shape
    np.testing.assert_array_equal(got, a)


def test_mono16_bytes_follow_endianness():
    a = np.array([[0x1234, 0xABCD]], np.uint16)
    little = C.image_fields(a, "mono16")
    big = C.image_fields(a, "mono16", bigendian=True)
    assert bytes(little["data"]) == b"\x34\x12\xcd\xab" and little["is_bigendian"] == 0
    assert bytes(big["data"]) == b"\x12\x34\xab\xcd" and big["is_bigendian"] == 1
    # The same bytes read with the other flag are other numbers: the flag is honoured.
    wrong = SimpleNamespace(**{**big, "is_bigendian": 0})
    assert C.image_to_numpy(wrong).tolist() == [[0x3412, 0xCDAB]]
    bgr = C.image_to_bgr(SimpleNamespace(**big))
    assert bgr.shape == (1, 2, 3) and bgr[0, :, 0].tolist() == [0x12, 0xAB]  # the high byte


def test_colour_encodings_reach_bgr_in_the_right_order():
    bgr = np.zeros((2, 4, 3), np.uint8)
    bgr[..., 0], bgr[..., 1], bgr[..., 2] = 10, 20, 30  # B, G, R
    rgb = np.ascontiguousarray(bgr[..., ::-1])
    alpha = np.full((2, 4, 1), 7, np.uint8)
    hdr = C.header(KIT, 0, "")
    for arr, enc in [(bgr, "bgr8"), (rgb, "rgb8"), (np.concatenate([rgb, alpha], 2), "rgba8"),
                     (np.concatenate([bgr, alpha], 2), "bgra8")]:
        out = C.image_to_bgr(_roundtrip(C.image_msg(KIT, arr, enc, hdr)))
        assert out.shape == (2, 4, 3) and out.dtype == np.uint8, enc
        np.testing.assert_array_equal(out, bgr, err_msg=enc)
    gray = np.arange(8, dtype=np.uint8).reshape(2, 4)
    np.testing.assert_array_equal(C.image_to_bgr(_roundtrip(C.image_msg(KIT, gray, "mono8", hdr))),
                                  np.repeat(gray[..., None], 3, 2))


@pytest.mark.parametrize("encoding, y_at", [("yuv422", (1, 3)), ("yuv422_yuy2", (0, 2))])
def test_yuv422_byte_orders(encoding, y_at):
    """UYVY is U Y0 V Y1, YUY2 is Y0 U Y1 V: with neutral chroma each pixel is grey and follows
    its own Y byte; reading the bytes in the other order gives colours."""
    w = 8
    y = np.linspace(40, 220, w).astype(np.uint8)
    packed = np.full((1, w // 2, 4), 128, np.uint8)
    packed[0, :, y_at[0]], packed[0, :, y_at[1]] = y[0::2], y[1::2]
    a = packed.reshape(1, w, 2)
    out = C.image_to_bgr(_roundtrip(C.image_msg(KIT, a, encoding, C.header(KIT, 0, ""))))
    assert out.shape == (1, w, 3)
    assert (np.ptp(out[0].astype(int), axis=1) <= 1).all()  # grey
    assert (np.diff(out[0, :, 1].astype(int)) > 0).all()  # brightness follows Y, pixel by pixel
    other = "yuv422_yuy2" if encoding == "yuv422" else "yuv422"
    swapped = C.to_bgr(a, other)
    assert np.ptp(swapped[0].astype(int), axis=1).max() > 20


def test_reads_messages_whose_data_is_bytes_or_array():
    """rclpy hands ``uint8[]`` as array.array; other callers may use bytes."""
    a = _pixels("rgb8", 3, 5)
    f = C.image_fields(a, "rgb8", step=16)
    for data in (bytes(f["data"]), array.array("B", bytes(f["data"])), list(f["data"])):
        msg = SimpleNamespace(**{**f, "data": data})
        np.testing.assert_array_equal(C.image_to_numpy(msg), a)


@pytest.mark.parametrize("fmt", ["jpeg", "png"])
def test_compressed_roundtrip(fmt):
    yy, xx = np.mgrid[0:24, 0:32]
    bgr = np.stack([xx * 7, yy * 9, np.full_like(xx, 60)], axis=2).astype(np.uint8)  # smooth, colourful
    msg = _roundtrip(C.compressed_msg(KIT, bgr, fmt, C.header(KIT, STAMP, "cam")), "sensor_msgs/msg/CompressedImage")
    assert C.stamp_ns(msg.header) == STAMP
    out = C.message_to_bgr(msg)
    assert out.shape == bgr.shape and out.dtype == np.uint8
    if fmt == "png":
        np.testing.assert_array_equal(out, bgr)
    else:
        assert np.abs(out.astype(int) - bgr).mean() < 4
        assert np.abs(out[..., ::-1].astype(int) - bgr).mean() > 40  # channel order matters


def test_compressed_png_of_rgb_pixels_and_mono16():
    rgb = np.zeros((4, 4, 3), np.uint8)
    rgb[..., 0] = 200  # red, stored in RGB order inside the PNG stream
    ok, buf = cv2.imencode(".png", rgb)  # OpenCV writes the array's channels as they are
    msg = SimpleNamespace(format="rgb8; png compressed rgb8", data=buf.reshape(-1))
    assert C.compressed_to_bgr(msg)[0, 0].tolist() == [0, 0, 200]
    ok, buf = cv2.imencode(".png", np.full((3, 3), 0x8000, np.uint16))
    assert C.compressed_to_bgr(SimpleNamespace(format="png", data=buf.reshape(-1)))[0, 0].tolist() == [128] * 3


def test_malformed_images_are_clear_errors():
    a = _pixels("bgr8", 4, 5)
    f = C.image_fields(a, "bgr8")
    with pytest.raises(EdgesegError, match="step \\* height"):
        C.image_to_numpy(SimpleNamespace(**{**f, "data": f["data"][:-1]}))
    with pytest.raises(EdgesegError, match="step \\* height"):
        C.image_to_numpy(SimpleNamespace(**{**f, "height": 5}))
    with pytest.raises(EdgesegError, match="less than width"):
        C.image_to_numpy(SimpleNamespace(**{**f, "step": 14, "data": f["data"][:56]}))
    with pytest.raises(EdgesegError, match="unsupported image encoding 'bayer_rggb8'"):
        C.image_to_numpy(SimpleNamespace(**{**f, "encoding": "bayer_rggb8"}))
    with pytest.raises(EdgesegError, match="odd width"):
        C.image_to_numpy(SimpleNamespace(height=1, width=3, encoding="yuv422", is_bigendian=0, step=6, data=b"\0" * 6))
    with pytest.raises(EdgesegError, match="empty"):
        C.image_to_numpy(SimpleNamespace(height=0, width=3, encoding="mono8", is_bigendian=0, step=3, data=b""))
    with pytest.raises(EdgesegError, match="needs a uint16"):
        C.image_fields(a, "mono16")


@pytest.mark.parametrize("fmt", ["jpeg", "png"])
def test_truncated_or_foreign_compressed_images_are_errors(fmt):
    bgr = np.random.default_rng(2).integers(0, 255, (32, 32, 3)).astype(np.uint8)
    msg = C.compressed_msg(KIT, bgr, fmt, C.header(KIT, 0, ""))
    data = bytes(msg.data)
    for cut in (len(data) // 2, len(data) - 1, 10):
        with pytest.raises(EdgesegError, match="truncated|does not start"):
            C.compressed_to_bgr(SimpleNamespace(format=msg.format, data=data[:cut]))
    # a complete-looking stream with a corrupt body
    bad = data[:8] + b"\x00" * (len(data) - 20) + data[-12:]
    with pytest.raises(EdgesegError):
        C.compressed_to_bgr(SimpleNamespace(format=msg.format, data=bad))
    with pytest.raises(EdgesegError, match="unsupported CompressedImage format"):
        C.compressed_to_bgr(SimpleNamespace(format="16UC1; compressedDepth", data=data))


def test_masks_label_info_and_detections_roundtrip():
    hdr = C.header(KIT, STAMP, "cam")
    labels = np.array([[0, 1], [2, 7]], np.uint8)
    mask, enc = C.class_mask(labels)
    assert enc == "mono8"
    np.testing.assert_array_equal(C.image_to_numpy(_roundtrip(C.image_msg(KIT, mask, enc, hdr))), labels)
    wide, enc16 = C.class_mask(np.array([[0, 300]], np.int32))
    assert enc16 == "mono16" and wide.tolist() == [[0, 300]]
    colours = C.color_mask(labels, [(1, 2, 3), (4, 5, 6), (7, 8, 9)])
    assert colours[0, 1].tolist() == [4, 5, 6] and colours[1, 1].tolist() == [0, 0, 0]  # past the palette
    info = _roundtrip(C.label_info_msg(KIT, hdr, ["road", "car"], 0.25), "vision_msgs/msg/LabelInfo")
    assert [(c.class_id, c.class_name) for c in info.class_map] == [(0, "road"), (1, "car")]
    assert info.threshold == pytest.approx(0.25)
    boxes = np.array([[1.5, 2.0, 11.0, 22.5], [0, 0, 4, 4]], np.float32)
    det = _roundtrip(C.detections_msg(KIT, hdr, boxes, np.array([0.9, 0.4], np.float32), np.array([3, 0])),
                     "vision_msgs/msg/Detection2DArray")
    assert [d.id for d in det.detections] == ["1", "2"]
    assert C.stamp_ns(det.detections[0].header) == STAMP
    b, s, c = C.detections_to_numpy(det)
    np.testing.assert_allclose(b, boxes, atol=1e-5)
    np.testing.assert_allclose(s, [0.9, 0.4], rtol=1e-6)
    assert c.tolist() == [3, 0]


@pytest.mark.parametrize("fmt", ["jpeg", "png"])
def test_compressed_image_bombs_are_refused_before_decoding(fmt):
    """A header declaring a huge image is refused from the header, before any allocation."""
    ok, buf = cv2.imencode(".jpg" if fmt == "jpeg" else ".png", np.zeros((8, 8, 3), np.uint8))
    raw = bytearray(buf.tobytes())
    if fmt == "png":
        raw[16:24] = (40_000).to_bytes(4, "big") * 2  # IHDR width, height
    else:
        i = next(i for i in range(2, len(raw) - 1) if raw[i] == 0xFF and raw[i + 1] in (0xC0, 0xC2))
        raw[i + 5:i + 9] = (40_000).to_bytes(2, "big") * 2  # SOF height, width
    with pytest.raises(EdgesegError, match="40000x40000 image; refusing"):
        C.compressed_to_bgr(SimpleNamespace(format=fmt, data=bytes(raw)))
    with pytest.raises(EdgesegError, match="no readable"):
        C.compressed_to_bgr(SimpleNamespace(format=fmt, data=bytes(raw[:12]) + (b"\xff\xd9" if fmt == "jpeg" else
                                                                               b"IEND\xaeB`\x82")))


def test_mutated_messages_decode_or_raise_clear_errors():
    """Byte flips and truncations of serialized Image / JPEG / PNG messages: each one either fails
    to deserialize (rosbags' SerdeError), is refused with a MessageError, or decodes to a valid
    BGR frame; nothing else escapes (a run skips the first two kinds)."""
    from rosbags.serde import SerdeError

    rng = np.random.default_rng(7)
    img = rng.integers(0, 255, (20, 30, 3)).astype(np.uint8)
    hdr = C.header(KIT, 5, "cam")
    msgs = [(KIT.serialize(C.image_msg(KIT, img, "bgr8", hdr)), "sensor_msgs/msg/Image"),
            (KIT.serialize(C.compressed_msg(KIT, img, "jpeg", hdr)), "sensor_msgs/msg/CompressedImage"),
            (KIT.serialize(C.compressed_msg(KIT, img, "png", hdr)), "sensor_msgs/msg/CompressedImage")]
    outcomes = {"serde": 0, "refused": 0, "decoded": 0}
    for it in range(900):
        raw, typename = msgs[it % 3]
        b = bytearray(raw)
        for _ in range(int(rng.integers(1, 4))):
            b[int(rng.integers(0, len(b)))] = int(rng.integers(0, 256))
        if rng.random() < 0.2:
            b = b[: int(rng.integers(0, len(b)))]
        try:
            msg = KIT.deserialize(bytes(b), typename)
        except SerdeError:
            outcomes["serde"] += 1
            continue
        try:
            out = C.message_to_bgr(msg)
        except C.MessageError:
            outcomes["refused"] += 1
            continue
        assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 3 and out.flags.writeable
        outcomes["decoded"] += 1
    assert min(outcomes.values()) > 50, outcomes  # every path was exercised
