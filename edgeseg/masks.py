"""Box-local instance masks: :class:`MaskSet`.

Instance masks are small compared with the frame, so a :class:`MaskSet` keeps, for each of its K
masks, only the bitmap of the mask's *region* (an integer rectangle ``x0, y0, x1, y1`` of frame
pixels, end exclusive) and the frame size. All bitmaps live in one ``uint8`` buffer, so the C++
kernels (:func:`edgeseg.ops.assemble_masks`, :func:`edgeseg.ops.paste_masks`) fill a whole set
without per-mask Python allocations, and nothing ever allocates ``K x H x W`` unless the caller
asks for dense masks.

numpy only (plus the C++ core); never imports torch.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import _C
from ._native import call as _call
from .errors import ArrayError

__all__ = ["MaskSet"]

IndexLike = Union[int, Sequence[int], np.ndarray, slice]


class MaskSet:
    """K binary instance masks over an ``H x W`` frame, stored box-locally.

    Storage (read-only views are exposed as attributes):
        data: ``uint8`` buffer, mask ``k``'s bitmap (0/1, row-major over its region) at
            ``data[offsets[k]:offsets[k + 1]]``.
        offsets: ``int64`` ``(K + 1,)``, prefix sums of the region areas.
        regions: ``int32`` ``(K, 4)`` ``x0, y0, x1, y1`` (``0 <= x0 <= x1 <= W``, same for y);
            pixels outside a mask's region are 0. An empty mask has region ``(0, 0, 0, 0)``.
        image_hw: frame size ``(H, W)``.

    Build one with :func:`edgeseg.ops.assemble_masks`, :func:`edgeseg.ops.paste_masks`, or
    :meth:`from_dense`.
    """

    __slots__ = ("_data", "_offsets", "_regions", "_hw")

    def __init__(self, data: np.ndarray, offsets: np.ndarray, regions: np.ndarray,
                 image_hw: Sequence[int]) -> None:
        try:
            H, W = (int(v) for v in image_hw)
        except (TypeError, ValueError):
            raise ArrayError(f"MaskSet: image_hw must be (H, W), got {image_hw!r}") from None
        data = np.ascontiguousarray(data)
        if data.dtype == np.bool_:
            data = data.view(np.uint8)
        offsets = np.ascontiguousarray(offsets, dtype=np.int64)
        regions = np.ascontiguousarray(regions, dtype=np.int32)
        if regions.ndim == 1 and regions.size == 0:
            regions = regions.reshape(0, 4)
        # Validates consistency (dtype, shapes, regions inside the frame, offsets = areas).
        _call(_C.mask_areas, data, offsets, regions, H, W)
        views = [a.view() for a in (data, offsets, regions)]  # read-only views, caller's arrays
        for v in views:                                        # keep their own flags
            v.flags.writeable = False
        self._data, self._offsets, self._regions = views
        self._hw = (H, W)

    # ---- construction ----------------------------------------------------------------------

    @classmethod
    def from_dense(cls, masks: np.ndarray) -> "MaskSet":
        """Set from dense ``(K, H, W)`` masks (bool or 0/non-0); each region is the tight
        bounding rectangle of the mask's pixels (empty masks get the empty region)."""
        m = np.asarray(masks)
        if m.ndim != 3:
            raise ArrayError(f"MaskSet.from_dense: masks must have shape (K, H, W), "
                             f"got shape {tuple(m.shape)}")
        K, H, W = m.shape
        m = m != 0
        regions = np.zeros((K, 4), np.int32)
        parts: List[np.ndarray] = []
        for k in range(K):
            ys = np.flatnonzero(m[k].any(axis=1))
            if ys.size == 0:
                continue
            xs = np.flatnonzero(m[k].any(axis=0))
            y0, y1, x0, x1 = ys[0], ys[-1] + 1, xs[0], xs[-1] + 1
            regions[k] = (x0, y0, x1, y1)
            parts.append(m[k, y0:y1, x0:x1].reshape(-1))
        areas = (regions[:, 2] - regions[:, 0]).astype(np.int64) * (regions[:, 3] - regions[:, 1])
        offsets = np.concatenate([[0], np.cumsum(areas)]).astype(np.int64)
        data = np.concatenate(parts).view(np.uint8) if parts else np.zeros(0, np.uint8)
        return cls(data, offsets, regions, (H, W))

    @classmethod
    def _trusted(cls, data: np.ndarray, offsets: np.ndarray, regions: np.ndarray,
                 image_hw: Tuple[int, int]) -> "MaskSet":
        """Wrap arrays a C++ kernel just produced (consistent by construction; no checks)."""
        self = object.__new__(cls)
        for a in (data, offsets, regions):
            a.flags.writeable = False
        self._data, self._offsets, self._regions = data, offsets, regions
        self._hw = (int(image_hw[0]), int(image_hw[1]))
        return self

    @classmethod
    def empty(cls, image_hw: Sequence[int]) -> "MaskSet":
        """A set with no masks over a frame of ``image_hw``."""
        return cls(np.zeros(0, np.uint8), np.zeros(1, np.int64), np.zeros((0, 4), np.int32),
                   image_hw)

    # ---- access ----------------------------------------------------------------------------

    def __len__(self) -> int:
        return int(self._regions.shape[0])

    def __repr__(self) -> str:
        return f"MaskSet({len(self)} masks, image_hw={self._hw}, {self._data.nbytes} bytes)"

    @property
    def image_hw(self) -> Tuple[int, int]:
        """Frame size ``(H, W)``."""
        return self._hw

    @property
    def regions(self) -> np.ndarray:
        """``int32`` ``(K, 4)`` ``x0, y0, x1, y1`` of every mask's region (read-only)."""
        return self._regions

    @property
    def offsets(self) -> np.ndarray:
        """``int64`` ``(K + 1,)`` start of every bitmap in :attr:`data` (read-only)."""
        return self._offsets

    @property
    def data(self) -> np.ndarray:
        """``uint8`` buffer of all bitmaps, row-major over each region (read-only)."""
        return self._data

    def _index(self, i: int) -> int:
        k = len(self)
        i = int(i)
        if not -k <= i < k:
            raise IndexError(f"mask index {i} out of range for a MaskSet of {k} masks")
        return i % k

    def bitmap(self, i: int) -> np.ndarray:
        """Mask ``i`` over its region: a read-only bool ``(y1 - y0, x1 - x0)`` view."""
        i = self._index(i)
        x0, y0, x1, y1 = (int(v) for v in self._regions[i])
        return self._data[self._offsets[i]:self._offsets[i + 1]].view(np.bool_).reshape(
            y1 - y0, x1 - x0)

    def mask(self, i: int) -> np.ndarray:
        """Mask ``i`` as a dense bool ``(H, W)`` array."""
        out = np.zeros(self._hw, np.bool_)
        x0, y0, x1, y1 = (int(v) for v in self._regions[self._index(i)])
        out[y0:y1, x0:x1] = self.bitmap(i)
        return out

    def to_dense(self, indices: Optional[IndexLike] = None) -> np.ndarray:
        """Dense bool ``(n, H, W)`` masks of ``indices`` (default: all K). Allocates exactly
        ``n x H x W`` bytes; prefer :meth:`bitmap` / :attr:`regions` when you can."""
        idx = self._indices(indices)
        out = np.zeros((len(idx),) + self._hw, np.bool_)
        for j, i in enumerate(idx):
            x0, y0, x1, y1 = (int(v) for v in self._regions[i])
            out[j, y0:y1, x0:x1] = self.bitmap(i)
        return out

    def areas(self) -> np.ndarray:
        """Number of mask pixels of every mask, ``int64`` ``(K,)``."""
        return _call(_C.mask_areas, self._data, self._offsets, self._regions, *self._hw)

    def boxes(self) -> np.ndarray:
        """Tight ``float32`` ``(K, 4)`` xyxy pixel-edge boxes of the mask pixels (zeros when
        empty)."""
        out = np.zeros((len(self), 4), np.float32)
        for i in range(len(self)):
            b = self.bitmap(i)
            ys = np.flatnonzero(b.any(axis=1))
            if ys.size:
                xs = np.flatnonzero(b.any(axis=0))
                x0, y0 = self._regions[i, :2]
                out[i] = (x0 + xs[0], y0 + ys[0], x0 + xs[-1] + 1, y0 + ys[-1] + 1)
        return out

    def to_rle(self) -> List[Dict[str, Any]]:
        """COCO compressed RLE of every mask: ``{"size": [H, W], "counts": str}``, identical to
        ``pycocotools.mask.encode`` of the dense mask (whose ``counts`` is the same text as
        bytes). Computed from the box-local bitmaps in C++; no dense mask is built."""
        counts = _call(_C.mask_rle, self._data, self._offsets, self._regions, *self._hw)
        H, W = self._hw
        return [{"size": [H, W], "counts": c} for c in counts]

    def select(self, indices: IndexLike) -> "MaskSet":
        """A new set with the masks at ``indices`` (ints, a slice, or a bool mask of length K),
        in that order."""
        idx = self._indices(indices)
        regions = self._regions[idx] if len(idx) else np.zeros((0, 4), np.int32)
        parts = [self._data[self._offsets[i]:self._offsets[i + 1]] for i in idx]
        areas = np.array([p.size for p in parts], np.int64)
        offsets = np.concatenate([[0], np.cumsum(areas)]).astype(np.int64)
        data = np.concatenate(parts) if parts else np.zeros(0, np.uint8)
        return MaskSet(data, offsets, regions, self._hw)

    def _indices(self, indices: Optional[IndexLike]) -> np.ndarray:
        k = len(self)
        if indices is None:
            return np.arange(k)
        if isinstance(indices, slice):
            return np.arange(k)[indices]
        idx = np.asarray(indices)
        if idx.dtype == np.bool_:
            if idx.shape != (k,):
                raise ArrayError(f"MaskSet: a boolean index must have shape ({k},), "
                                 f"got shape {idx.shape}")
            return np.flatnonzero(idx)
        if idx.ndim == 0:
            idx = idx.reshape(1)
        if idx.ndim != 1 or (idx.size and idx.dtype.kind not in "iu"):
            raise ArrayError(f"MaskSet: indices must be integers, a slice or a bool mask, "
                             f"got {indices!r:.80}")
        idx = idx.astype(np.int64)
        if idx.size and (idx.min() < -k or idx.max() >= k):
            raise IndexError(f"MaskSet: index out of range for {k} masks: {indices!r:.80}")
        return idx % k if k else idx
