"""The COCO mask codec: RLE encode/decode (numpy, pycocotools-compatible) and polygons.

RLE follows pycocotools: the mask is flattened in column-major (Fortran) order and ``counts``
alternate runs of 0s and 1s, starting with 0s. The compressed form is the LEB128-like string of
``maskApi.c`` (5 bits per char, offset 48, counts after the second delta-coded against the
count two places back).

Masks of annotations follow ``COCO.annToMask``: :func:`segmentation_to_mask` decodes polygons
and both RLE forms with pycocotools when importable, else with this module's numpy codec and
:func:`coco_polygon_to_mask` (pycocotools' polygon rasterisation, bit for bit).
"""
from __future__ import annotations

from typing import Any, Sequence, Union

import cv2
import numpy as np

from ..errors import DataError


# ----------------------------------------------------------------------------------- RLE
def rle_counts(mask: np.ndarray) -> list[int]:
    """Run lengths (starting with zeros) of a 2-D mask in column-major order."""
    flat = np.asarray(mask, bool).ravel(order="F")
    if flat.size == 0:
        return [0]
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    edges = np.concatenate([[0], change, [flat.size]])
    runs = np.diff(edges).tolist()
    if flat[0]:
        runs = [0] + runs
    return [int(r) for r in runs]


def counts_to_string(counts: list[int]) -> str:
    """pycocotools' compressed RLE string for a list of counts (``rleToString``)."""
    out = bytearray()
    for i, x in enumerate(counts):
        x = int(x)
        if i > 2:
            x -= int(counts[i - 2])
        more = True
        while more:
            c = x & 0x1F
            x >>= 5  # arithmetic shift, like the C code on a signed long
            more = (x != -1) if (c & 0x10) else (x != 0)
            if more:
                c |= 0x20
            out.append(c + 48)
    return out.decode("ascii")


def string_to_counts(s: Union[str, bytes]) -> list[int]:
    """Inverse of :func:`counts_to_string` (``rleFrString``)."""
    data = s.encode("ascii") if isinstance(s, str) else bytes(s)
    counts: list[int] = []
    p = 0
    while p < len(data):
        x = k = 0
        more = True
        while more:
            if p >= len(data):
                raise DataError("compressed RLE string is truncated")
            c = data[p] - 48
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and (c & 0x10):
                x |= -1 << (5 * k)
        if len(counts) > 2:
            x += counts[-2]
        counts.append(x)
    return counts


def rle_encode(mask: np.ndarray, compressed: bool = True) -> dict[str, Any]:
    """Encode a 2-D bool mask as COCO RLE: {"size": [h, w], "counts": str | list[int]}."""
    m = np.asarray(mask)
    if m.ndim != 2:
        raise ValueError(f"mask must be HxW, got shape {m.shape}")
    counts = rle_counts(m)
    return {"size": [int(m.shape[0]), int(m.shape[1])],
            "counts": counts_to_string(counts) if compressed else counts}


def rle_decode(rle: dict[str, Any]) -> np.ndarray:
    """Decode COCO RLE (compressed string or uncompressed list counts) to a bool HxW mask."""
    try:
        h, w = (int(v) for v in rle["size"])
        counts = rle["counts"]
    except (KeyError, TypeError, ValueError):
        raise DataError(f"bad RLE: need {{'size': [h, w], 'counts': ...}}, got {rle!r:.80}"
                        ) from None
    if isinstance(counts, (str, bytes)):
        counts = string_to_counts(counts)
    counts = np.asarray(counts, np.int64)
    if counts.sum() != h * w or (counts < 0).any():
        raise DataError(f"bad RLE: counts sum to {int(counts.sum())}, expected h*w = {h * w}")
    vals = np.zeros(len(counts), bool)
    vals[1::2] = True
    flat = np.repeat(vals, counts)
    return flat.reshape((w, h)).T.copy()


# ------------------------------------------------------------------------------- polygons
def polygons_to_mask(polygons: list[list[float]], h: int, w: int) -> np.ndarray:
    """Rasterise COCO polygons ([[x0, y0, x1, y1, ...], ...]) into a bool HxW mask.

    COCO coordinates are continuous (pixel i spans [i, i+1)); pixels on the outline are
    included, so :func:`mask_to_polygons` followed by this gives back the mask (without holes).
    """
    m = np.zeros((h, w), np.uint8)
    pts = [np.round((np.asarray(p, np.float64).reshape(-1, 2) - 0.5) * 16).astype(np.int32)
           for p in polygons if len(p) >= 6]
    if pts:
        cv2.fillPoly(m, pts, 1, lineType=cv2.LINE_8, shift=4)
    return m.astype(bool)


def mask_to_polygons(mask: np.ndarray, min_points: int = 3) -> list[list[float]]:
    """Outer contours of a mask as COCO polygons (holes are not representable; lossy)."""
    contours, _ = cv2.findContours(np.asarray(mask, np.uint8), cv2.RETR_EXTERNAL,
                                   cv2.CHAIN_APPROX_SIMPLE)
    out = []
    for c in contours:
        if len(c) >= min_points:
            # pixel centres -> COCO's continuous coordinates (pixel i spans [i, i+1])
            out.append([float(v) + 0.5 for v in c.reshape(-1)])
    return out


def annotation_to_mask(ann: dict[str, Any], h: int, w: int) -> np.ndarray:
    """The bool HxW mask of one COCO annotation (polygon list, RLE or uncompressed RLE)."""
    seg = ann.get("segmentation")
    if isinstance(seg, list):
        return polygons_to_mask(seg, h, w)
    if isinstance(seg, dict):
        m = rle_decode(seg)
        if m.shape != (h, w):
            raise DataError(f"annotation {ann.get('id')}: RLE size {m.shape} != image {(h, w)}")
        return m
    raise DataError(f"annotation {ann.get('id')} has no usable 'segmentation'")


# ------------------------------------------------------- pycocotools-exact rasterisation
def coco_polygon_to_mask(polygon: "Sequence[float] | np.ndarray", h: int, w: int) -> np.ndarray:
    """Rasterise one COCO polygon ``[x0, y0, x1, y1, ...]`` exactly like pycocotools.

    A vectorised numpy port of the rule in ``maskApi.c`` (``rleFrPoly``): vertices are scaled by
    5 and rounded, the outline is walked densely, and each crossing of a pixel-column centre
    toggles the column-major scan at the first pixel centre below it. Unlike
    :func:`polygons_to_mask` this excludes most outline pixels, so it matches the masks COCO
    annotations and ``COCO.annToMask`` produce bit for bit.
    """
    h, w = int(h), int(w)
    xy = np.asarray(polygon, np.float64).ravel()
    k = xy.size // 2
    if k == 0 or h <= 0 or w <= 0:
        return np.zeros((max(h, 0), max(w, 0)), bool)
    scale = 5.0
    # C's (int)(v + .5) truncates toward zero
    x = np.trunc(scale * xy[0:2 * k:2] + 0.5).astype(np.int64)
    y = np.trunc(scale * xy[1:2 * k:2] + 0.5).astype(np.int64)
    x0, x1 = x, np.roll(x, -1)
    y0, y1 = y, np.roll(y, -1)
    dx, dy = np.abs(x1 - x0), np.abs(y1 - y0)
    horiz = dx >= dy
    flip = (horiz & (x0 > x1)) | (~horiz & (y0 > y1))
    xs, xe = np.where(flip, x1, x0), np.where(flip, x0, x1)
    ys, ye = np.where(flip, y1, y0), np.where(flip, y0, y1)
    n = np.where(horiz, dx, dy)
    num = np.where(horiz, ye - ys, xe - xs).astype(np.float64)
    slope = np.divide(num, n, out=np.zeros_like(num), where=n > 0)
    # every segment contributes n + 1 points, walked from its original start to its end
    seg = np.repeat(np.arange(k), n + 1)
    d = np.arange(seg.size) - np.repeat(np.cumsum(n + 1) - (n + 1), n + 1)
    t = np.where(flip[seg], n[seg] - d, d)
    along = np.trunc(np.where(horiz[seg], ys[seg], xs[seg]) + slope[seg] * t + 0.5).astype(np.int64)
    u = np.where(horiz[seg], t + xs[seg], along)
    v = np.where(horiz[seg], along, t + ys[seg])
    # crossings of pixel-column centres (u changes), downsampled back to pixel units
    j = np.flatnonzero(u[1:] != u[:-1]) + 1
    xd = np.where(u[j] < u[j - 1], u[j], u[j] - 1).astype(np.float64)
    xd = (xd + 0.5) / scale - 0.5
    ok = (np.floor(xd) == xd) & (xd >= 0) & (xd <= w - 1)
    yd = np.minimum(v[j], v[j - 1]).astype(np.float64)
    yd = np.ceil(np.clip((yd + 0.5) / scale - 0.5, 0, h))
    pos = xd[ok].astype(np.int64) * h + yd[ok].astype(np.int64)
    toggles = np.bincount(pos[pos < h * w], minlength=h * w) & 1
    flat = np.cumsum(toggles, dtype=np.int64) & 1
    return flat.astype(bool).reshape(w, h).T.copy()


def _pycocotools_mask():
    try:
        from pycocotools import mask as mask_util
    except ImportError:
        return None
    return mask_util


def segmentation_to_mask(segmentation: Any, h: int, w: int, backend: str = "auto") -> np.ndarray:
    """The bool HxW mask of a COCO ``segmentation`` with ``COCO.annToMask`` semantics.

    Accepts polygon lists (their union; polygons with fewer than 3 points are ignored),
    uncompressed RLE (list counts) and compressed RLE (str/bytes counts). ``h, w`` are the
    image's size from the annotation file. ``backend``: "pycocotools", "numpy" (our own codec
    and :func:`coco_polygon_to_mask`; identical results) or "auto" (pycocotools if importable).
    """
    if backend not in ("auto", "pycocotools", "numpy"):
        raise ValueError(f"backend must be 'auto', 'pycocotools' or 'numpy', got {backend!r}")
    mu = None if backend == "numpy" else _pycocotools_mask()
    if backend == "pycocotools" and mu is None:
        raise DataError("backend='pycocotools' needs pycocotools: pip install pycocotools")
    h, w = int(h), int(w)
    if isinstance(segmentation, list):
        polys = [np.asarray(p, np.float64).ravel() for p in segmentation]
        polys = [p[:p.size // 2 * 2] for p in polys if p.size >= 6]
        if not polys:
            return np.zeros((h, w), bool)
        if mu is not None:
            # pycocotools reads a first polygon of 4 numbers as a box; we dropped those above
            rle = mu.merge(mu.frPyObjects([p.tolist() for p in polys], h, w))
            return mu.decode(rle).astype(bool)
        out = np.zeros((h, w), bool)
        for p in polys:
            out |= coco_polygon_to_mask(p, h, w)
        return out
    if isinstance(segmentation, dict) and "counts" in segmentation and "size" in segmentation:
        counts = segmentation["counts"]
        size = [int(v) for v in segmentation["size"]]
        if size != [h, w]:
            raise DataError(f"RLE size {size} does not match the image size {[h, w]}")
        if mu is not None:
            if isinstance(counts, list):
                rle = mu.frPyObjects(segmentation, h, w)
            else:
                rle = {"size": size, "counts": counts.encode("ascii") if isinstance(counts, str)
                       else counts}
            return mu.decode(rle).astype(bool)
        return rle_decode(segmentation)
    raise DataError(f"unsupported COCO segmentation {segmentation!r:.80}: expected a list of "
                    "polygons or an RLE dict with 'size' and 'counts'")


__all__ = ["rle_counts", "counts_to_string", "string_to_counts", "rle_encode", "rle_decode", "polygons_to_mask", "mask_to_polygons", "annotation_to_mask", "coco_polygon_to_mask", "segmentation_to_mask"]
