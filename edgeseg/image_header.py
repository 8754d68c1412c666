"""Image dimensions read from a file's header, before any decoder allocates for them.

A 74-byte PNG can declare 60000 x 60000 pixels; decoding it would allocate ~10 GB. edgeseg reads
the declared size of PNG, JPEG, BMP, GIF and WebP files first and refuses images above
:data:`edgeseg.defaults.MAX_IMAGE_PIXELS` (OpenCV's own limit is set to the same value when
edgeseg is imported first, for the formats not parsed here).
"""
from __future__ import annotations

import struct


def declared_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) that the image header declares, or None when the format is not one of
    those parsed here or the header is too short to say."""
    try:
        if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
            return struct.unpack(">II", data[16:24])
        if data[:2] == b"BM" and len(data) >= 26:
            w, h = struct.unpack("<ii", data[18:26])
            return abs(w), abs(h)
        if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
            return struct.unpack("<HH", data[6:10])
        if data[:4] == b"RIFF" and data[8:12] == b"WEBP" and len(data) >= 30:
            return _webp(data)
        if data[:2] == b"\xff\xd8":
            return _jpeg(data)
    except struct.error:
        return None
    return None


def _webp(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8X":
        w = 1 + int.from_bytes(data[24:27], "little")
        h = 1 + int.from_bytes(data[27:30], "little")
        return w, h
    if chunk == b"VP8L" and len(data) >= 25:
        b = int.from_bytes(data[21:25], "little")
        return 1 + (b & 0x3FFF), 1 + ((b >> 14) & 0x3FFF)
    if chunk == b"VP8 " and len(data) >= 30:
        w, h = struct.unpack("<HH", data[26:30])
        return w & 0x3FFF, h & 0x3FFF
    return None


def _jpeg(data: bytes) -> tuple[int, int] | None:
    i, n = 2, len(data)
    while i + 4 <= n:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # standalone markers
            i += 2
            continue
        length = struct.unpack(">H", data[i + 2:i + 4])[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # start of frame
            if i + 9 > n:
                return None
            h, w = struct.unpack(">HH", data[i + 5:i + 9])
            return w, h
        i += 2 + length
    return None


#: Largest PNG chunk the format allows (PNG spec: lengths are below 2^31).
_PNG_MAX_CHUNK = (1 << 31) - 1


def structure_problem(data: bytes | memoryview) -> str | None:
    """What is wrong with the container structure of ``data``, or None when nothing is found.

    PNG: every chunk's declared length must fit inside the data and an IEND chunk must close it.
    Some decoders allocate a chunk's declared length before reading it (a 136-byte PNG declaring
    a 2.6 GB chunk made OpenCV 5.1 allocate 3.6 GB for 7 s), so this is checked before decoding.
    """
    mv = memoryview(data).cast("B") if not isinstance(data, bytes) else data
    if bytes(mv[:8]) != b"\x89PNG\r\n\x1a\n":
        return None
    i, n = 8, len(mv)
    while i + 8 <= n:
        length = int.from_bytes(mv[i:i + 4], "big")
        if length > _PNG_MAX_CHUNK or i + 12 + length > n:
            return (f"a PNG chunk at byte {i} declares {length} bytes, past the end of the file "
                    f"({n} bytes): truncated or corrupt")
        if bytes(mv[i + 4:i + 8]) == b"IEND":
            return None
        i += 12 + length
    return "the PNG stream has no IEND chunk: truncated"
