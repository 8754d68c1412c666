"""File helpers for datasets: atomic writes, image reading, and indexed (palette) PNG I/O.

Label PNGs of VOC are indexed ('P' mode) images; OpenCV expands them to colours, so this module
reads the palette indices itself (zlib + PNG row filters 0-4), with numpy only.
"""
from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path
from typing import Optional, Sequence, Union

import cv2
import numpy as np

from .._io import atomic_write_bytes, read_image, write_image as write_image_atomic  # noqa: F401
from ..errors import InputFileError

PathLike = Union[str, "os.PathLike[str]"]
_PNG_SIG = b"\x89PNG\r\n\x1a\n"


def _read_bytes(path: PathLike) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise InputFileError(f"file not found: {path}") from None
    except OSError as e:
        raise InputFileError(f"cannot read {path}: {e.strerror or e}") from None


def read_label(path: PathLike) -> np.ndarray:
    """Read a label PNG as uint8 HxW: palette indices for indexed PNGs, values for grayscale.

    Colour (RGB) label images are rejected: they need a colour-to-class mapping first.
    """
    data = _read_bytes(path)
    if data[:8] == _PNG_SIG:
        ctype = _png_color_type(data, path)
        if ctype == 3:
            return decode_palette_png(data, path)[0]
    lab = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if lab is None:
        raise InputFileError(f"cannot decode label image {path}: the file is empty, truncated or "
                             "not an image; re-download or re-create it")
    if lab.ndim == 3 and lab.shape[2] == 1:
        lab = lab[..., 0]
    if lab.ndim != 2:
        raise InputFileError(f"label image {path} has {lab.shape[2]} channels; expected an indexed "
                             "(palette) or 8-bit grayscale PNG of class ids")
    if lab.dtype != np.uint8:
        if lab.max(initial=0) > 255:
            raise InputFileError(f"label image {path} holds values > 255 ({lab.dtype}); expected "
                                 "8-bit class ids")
        lab = lab.astype(np.uint8)
    return lab


# ------------------------------------------------------------------------------ palette PNGs
def _chunks(data: bytes, path: PathLike):
    pos = 8
    n = len(data)
    while pos + 8 <= n:
        length, ctype = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if len(body) != length:
            raise InputFileError(f"PNG {path} is truncated (chunk {ctype!r}); re-create the file")
        yield ctype, body
        pos += 12 + length
        if ctype == b"IEND":
            return
    raise InputFileError(f"PNG {path} is truncated (no IEND chunk); re-create the file")


def _png_color_type(data: bytes, path: PathLike) -> int:
    if len(data) < 33 or data[12:16] != b"IHDR":
        raise InputFileError(f"PNG {path} has no IHDR header; the file is corrupt")
    return data[25]


def decode_palette_png(data: bytes, path: PathLike = "<bytes>"
                       ) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """Decode an indexed PNG (colour type 3, bit depth 1/2/4/8, not interlaced).

    Returns (indices uint8 HxW, palette uint8 Kx3 RGB or None).
    """
    if data[:8] != _PNG_SIG:
        raise InputFileError(f"{path} is not a PNG file")
    ihdr = None
    pal = None
    idat = []
    for ctype, body in _chunks(data, path):
        if ctype == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", body)
        elif ctype == b"PLTE":
            pal = np.frombuffer(body, np.uint8).reshape(-1, 3)
        elif ctype == b"IDAT":
            idat.append(body)
    if ihdr is None:
        raise InputFileError(f"PNG {path} has no IHDR header; the file is corrupt")
    w, h, depth, ctype_, _comp, _filt, interlace = ihdr
    if ctype_ != 3 or depth not in (1, 2, 4, 8):
        raise InputFileError(f"PNG {path}: expected an indexed PNG with bit depth <= 8, got colour "
                             f"type {ctype_} depth {depth}")
    if interlace:
        raise InputFileError(f"PNG {path} is interlaced (Adam7); save it without interlacing")
    try:
        raw = zlib.decompress(b"".join(idat))
    except zlib.error as e:
        raise InputFileError(f"PNG {path} has corrupt image data ({e}); re-create the file"
                             ) from None
    stride = (w * depth + 7) // 8
    if len(raw) < h * (stride + 1):
        raise InputFileError(f"PNG {path} has too little image data; the file is truncated")
    rows = np.frombuffer(raw, np.uint8, count=h * (stride + 1)).reshape(h, stride + 1)
    out = _unfilter(rows, bpp=1)
    if depth < 8:
        bits = np.unpackbits(out, axis=1)  # MSB first, as PNG packs
        bits = bits.reshape(h, stride * 8 // depth, depth)[:, :w]
        weights = (1 << np.arange(depth - 1, -1, -1)).astype(np.uint8)
        out = (bits * weights).sum(-1).astype(np.uint8)
    return np.ascontiguousarray(out[:, :w]), pal


def _unfilter(rows: np.ndarray, bpp: int) -> np.ndarray:
    """Undo PNG row filters. Sub/Up are vectorised; Average/Paeth rows loop in Python."""
    h, n = rows.shape[0], rows.shape[1] - 1
    out = np.zeros((h, n), np.uint8)
    prev = np.zeros(n, np.uint8)
    for y in range(h):
        f = int(rows[y, 0])
        line = rows[y, 1:]
        if f == 0:
            cur = line.copy()
        elif f == 1:
            cur = line.copy()
            for k in range(bpp):  # running sum per byte lane, modulo 256
                cur[k::bpp] = np.cumsum(line[k::bpp], dtype=np.uint8)
        elif f == 2:
            cur = line + prev
        elif f == 3:
            cur = _unfilter_avg(line, prev, bpp)
        elif f == 4:
            cur = _unfilter_paeth(line, prev, bpp)
        else:
            raise InputFileError(f"PNG row uses unknown filter type {f}; the file is corrupt")
        out[y] = cur
        prev = cur
    return out


def _unfilter_avg(line: np.ndarray, prev: np.ndarray, bpp: int) -> np.ndarray:
    x = line.tolist()
    b = prev.tolist()
    for i in range(len(x)):
        a = x[i - bpp] if i >= bpp else 0
        x[i] = (x[i] + ((a + b[i]) >> 1)) & 0xFF
    return np.array(x, np.uint8)


def _unfilter_paeth(line: np.ndarray, prev: np.ndarray, bpp: int) -> np.ndarray:
    x = line.tolist()
    b = prev.tolist()
    for i in range(len(x)):
        if i >= bpp:
            a, c = x[i - bpp], b[i - bpp]
        else:
            a = c = 0
        bb = b[i]
        p = a + bb - c
        pa, pb, pc = abs(p - a), abs(p - bb), abs(p - c)
        pred = a if (pa <= pb and pa <= pc) else (bb if pb <= pc else c)
        x[i] = (x[i] + pred) & 0xFF
    return np.array(x, np.uint8)


def encode_palette_png(indices: np.ndarray, palette: Sequence[Sequence[int]]) -> bytes:
    """Encode uint8 HxW indices as an 8-bit indexed PNG with the given RGB palette."""
    idx = np.ascontiguousarray(indices, dtype=np.uint8)
    if idx.ndim != 2:
        raise ValueError(f"indices must be HxW, got shape {idx.shape}")
    h, w = idx.shape
    pal = np.asarray(palette, np.uint8).reshape(-1, 3)[:256]

    def chunk(tag: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + tag + body + struct.pack(
            ">I", zlib.crc32(tag + body) & 0xFFFFFFFF)

    raw = np.zeros((h, w + 1), np.uint8)  # filter byte 0 (None) per row
    raw[:, 1:] = idx
    return (_PNG_SIG
            + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 3, 0, 0, 0))
            + chunk(b"PLTE", pal.tobytes())
            + chunk(b"IDAT", zlib.compress(raw.tobytes(), 6))
            + chunk(b"IEND", b""))


def write_palette_png(path: PathLike, indices: np.ndarray,
                      palette: Sequence[Sequence[int]]) -> None:
    """Write an indexed PNG atomically (see :func:`encode_palette_png`)."""
    atomic_write_bytes(path, encode_palette_png(indices, palette))
