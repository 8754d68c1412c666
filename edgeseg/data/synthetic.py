"""Synthetic segmentation scenes: shapes on cluttered backgrounds, deterministic by (index, seed).

Object classes differ by *shape* only (colour, texture, size and rotation are random), so a model
has to learn shape, not colour. Backgrounds carry gradients, low-frequency noise and thin clutter
(lines, small specks) that belong to the background class. Objects partly occlude each other;
instance masks are the visible parts. One 256x256 sample takes a few milliseconds, so training can
generate data on the fly.

Public API: CLASSES, PALETTE, Sample, generate, SyntheticSegmentation, write_voc, write_coco,
make_video.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence, Union

import cv2
import numpy as np

from .. import defaults
from ..errors import DataError, InputFileError
from ..geometry import parse_size
from ..meta import default_palette
from ._io import atomic_write_bytes, write_image_atomic, write_palette_png

PathLike = Union[str, "os.PathLike[str]"]

#: Class names; index 0 is the background.
CLASSES: tuple[str, ...] = ("background", "disc", "triangle", "square", "star", "cross", "ring")
#: One RGB colour per class (the PASCAL VOC colour map).
PALETTE: list[tuple[int, int, int]] = default_palette(len(CLASSES))

_MIN_VISIBLE_FRAC = 0.45  # a new object may hide at most 55 % of an earlier one
_MIN_VISIBLE_PX_FRAC = 0.002  # instances smaller than this fraction of the image are dropped


@dataclass
class Sample:
    """One synthetic scene.

    image: BGR uint8 HxWx3; semantic: uint8 HxW class ids (255 = ignore, only where a sliver of an
    object too small to keep is visible); instance_masks: bool NxHxW visible parts;
    instance_classes: int64 N ids into CLASSES; boxes: float32 Nx4 (x0, y0, x1, y1), pixel edges
    (x1 = last column + 1).
    """

    image: np.ndarray
    semantic: np.ndarray
    instance_masks: np.ndarray
    instance_classes: np.ndarray
    boxes: np.ndarray


# ----------------------------------------------------------------------------------- shapes
def _shape_polys(cls: int, r: float, rng: np.random.Generator) -> tuple[list[np.ndarray], float]:
    """Outline polygons (centred at 0, unrotated, radius ~r) of a class, and the inner radius of
    a ring's hole (0 for other classes)."""
    inner = 0.0
    if cls == 1 or cls == 6:  # disc / ring: circle polygons
        t = np.linspace(0, 2 * np.pi, 48, endpoint=False)
        pts = np.stack([np.cos(t), np.sin(t)], 1) * r
        if cls == 6:
            inner = r * rng.uniform(0.45, 0.62)
        return [pts], inner
    if cls == 2:  # triangle, roughly equilateral with jittered corners; enlarged so its area
        # is comparable with the other classes (class balance)
        t = np.array([0.0, 2 * np.pi / 3, 4 * np.pi / 3]) + rng.uniform(-0.18, 0.18, 3)
        rad = 1.25 * r * rng.uniform(0.9, 1.1, 3)
        return [np.stack([np.cos(t) * rad, np.sin(t) * rad], 1)], inner
    if cls == 3:  # square / mildly elongated rectangle
        a = rng.uniform(1.0, 1.45)
        hw, hh = r * 0.8 * np.sqrt(a), r * 0.8 / np.sqrt(a)
        return [np.array([[-hw, -hh], [hw, -hh], [hw, hh], [-hw, hh]])], inner
    if cls == 4:  # five-pointed star
        k = rng.uniform(0.38, 0.5)
        t = np.arange(10) * np.pi / 5
        rad = np.where(np.arange(10) % 2 == 0, 1.25 * r, 1.25 * r * k)  # enlarged, as triangle
        return [np.stack([np.cos(t) * rad, np.sin(t) * rad], 1)], inner
    if cls == 5:  # plus / cross with arms of width ~0.35 r*2
        w = r * rng.uniform(0.28, 0.38)
        p = np.array([[-w, -r], [w, -r], [w, -w], [r, -w], [r, w], [w, w], [w, r], [-w, r],
                      [-w, w], [-r, w], [-r, -w], [-w, -w]])
        return [p], inner
    raise ValueError(cls)


def _draw_shape(canvas: np.ndarray, cls: int, cx: float, cy: float, r: float, angle: float,
                rng: np.random.Generator) -> tuple[int, int, int, int]:
    """Rasterise one shape (value 1) into a zeroed uint8 canvas; return a bbox (x0, y0, x1, y1)
    clipped to the canvas that contains every drawn pixel (it may be empty)."""
    polys, inner = _shape_polys(cls, r, rng)
    c, s = np.cos(angle), np.sin(angle)
    rot = np.array([[c, -s], [s, c]])
    shift = 4  # sub-pixel precision for fillPoly
    world = [p @ rot.T + (cx, cy) for p in polys]
    pts = [np.round(p * (1 << shift)).astype(np.int32) for p in world]
    cv2.fillPoly(canvas, pts, 1, lineType=cv2.LINE_8, shift=shift)
    if inner > 0:
        cv2.circle(canvas, (int(round(cx * 16)), int(round(cy * 16))), int(round(inner * 16)), 0,
                   -1, lineType=cv2.LINE_8, shift=4)
    allp = np.concatenate(world)
    h, w = canvas.shape
    x0, y0 = np.floor(allp.min(0)).astype(int) - 1
    x1, y1 = np.ceil(allp.max(0)).astype(int) + 2
    return max(0, int(x0)), max(0, int(y0)), min(w, int(x1)), min(h, int(y1))


# ------------------------------------------------------------------------------ appearance
def _low_freq_noise(rng: np.random.Generator, h: int, w: int, cells: int, ch: int) -> np.ndarray:
    """Smooth noise in [-1, 1]: a small random grid upsampled bilinearly (cubic is 10x slower)."""
    g = rng.uniform(-1, 1, (cells, cells, ch)).astype(np.float32)
    out = cv2.resize(g, (w, h), interpolation=cv2.INTER_LINEAR)
    return out.reshape(h, w, ch)


def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Float32 BGR background: gradient + smooth colour noise + clutter (lines, small specks)."""
    c0, c1 = rng.uniform(20, 235, (2, 3)).astype(np.float32)
    ang = rng.uniform(0, 2 * np.pi)
    cells = int(rng.integers(3, 9))
    # gradient and coarse noise are evaluated on a small grid and upsampled once
    g = np.linspace(-0.5, 0.5, cells, dtype=np.float32)
    t = np.clip(np.cos(ang) * g[None, :] + np.sin(ang) * g[:, None] + 0.5, 0, 1)[..., None]
    grid = c0 + t * (c1 - c0)
    grid += rng.uniform(-1, 1, grid.shape).astype(np.float32) * rng.uniform(10, 45)
    img = cv2.resize(grid, (w, h), interpolation=cv2.INTER_LINEAR)
    if rng.random() < 0.5:  # finer grey texture
        n = int(rng.integers(16, 40))
        fine = np.repeat(rng.uniform(-1, 1, (n, n, 1)).astype(np.float32), 3, axis=2)
        fine *= rng.uniform(5, 25)
        img += cv2.resize(fine, (w, h), interpolation=cv2.INTER_LINEAR)
    side = min(h, w)
    for _ in range(int(rng.integers(2, 12))):  # clutter lines
        p = rng.uniform(0, 1, 4) * (w, h, w, h)
        col = rng.uniform(0, 255, 3).tolist()
        cv2.line(img, (int(p[0]), int(p[1])), (int(p[2]), int(p[3])), col,
                 int(rng.integers(1, max(2, side // 64))), cv2.LINE_AA)
    for _ in range(int(rng.integers(0, 10))):  # small specks / blobs (well below object size)
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        ax = rng.uniform(0.008, 0.04) * side
        col = rng.uniform(0, 255, 3).tolist()
        axes = (max(1, int(ax)), max(1, int(ax * rng.uniform(0.3, 1))))
        cv2.ellipse(img, (int(cx), int(cy)), axes,
                    float(rng.uniform(0, 180)), 0, 360, col, -1, cv2.LINE_AA)
    return img


def _paint_object(img: np.ndarray, mask: np.ndarray, bbox: tuple[int, int, int, int],
                  rng: np.random.Generator) -> None:
    """Fill the masked pixels with a random colour, shading and texture (in place, float32)."""
    x0, y0, x1, y1 = bbox
    region = img[y0:y1, x0:x1]
    m = mask[y0:y1, x0:x1]
    hh, ww = y1 - y0, x1 - x0
    bg_mean = np.asarray(cv2.mean(region, m)[:3], np.float32)
    for _ in range(8):  # keep some contrast against what lies beneath
        col = rng.uniform(0, 255, 3).astype(np.float32)
        if np.abs(col - bg_mean).sum() > 90:
            break
    # linear shading: a 2x2 grid of colours upsampled over the box
    gx, gy = rng.uniform(-1, 1, 2) * rng.uniform(0, 35)
    corners = np.array([[-gx - gy, gx - gy], [-gx + gy, gx + gy]], np.float32)[..., None] + col
    fill = cv2.resize(corners, (ww, hh), interpolation=cv2.INTER_LINEAR).reshape(hh, ww, 3)
    kind = rng.integers(0, 4)
    if kind == 1:  # stripes
        a, f = rng.uniform(0, np.pi), rng.uniform(2, 7) * np.pi
        yy = np.linspace(-1, 1, hh, dtype=np.float32)[:, None]
        xx = np.linspace(-1, 1, ww, dtype=np.float32)[None, :]
        fill += (np.sin(f * (np.cos(a) * xx + np.sin(a) * yy)) * rng.uniform(15, 45))[..., None]
    elif kind == 2:  # blotchy texture
        fill += _low_freq_noise(rng, hh, ww, int(rng.integers(4, 10)), 3) * rng.uniform(15, 45)
    elif kind == 3:  # second colour blended by a smooth field
        col2 = rng.uniform(0, 255, 3).astype(np.float32)
        t = _low_freq_noise(rng, hh, ww, 3, 1) * 0.25 + 0.25
        fill += t * (col2 - fill)
    np.copyto(region, fill, where=m.astype(bool)[..., None])


# -------------------------------------------------------------------------------- generator
def _as_hw(size: Union[int, Sequence[int]]) -> tuple[int, int]:
    return parse_size(size, "synthetic image size", DataError, minimum=16)


def _rng(index: int, seed: int) -> np.random.Generator:
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, int(index) & 0xFFFFFFFF, 0x5E6])


def _place_objects(rng: np.random.Generator, h: int, w: int, img: np.ndarray
                   ) -> tuple[np.ndarray, list[int]]:
    """Draw 1-5 objects into img; return the instance-id map (0 = none) and each id's class.

    A placement that would hide more than 55 % of an earlier object is re-drawn elsewhere
    (up to 6 tries, then the object is skipped), so occlusion stays moderate.
    """
    side = min(h, w)
    inst = np.zeros((h, w), np.uint8)
    canvas = np.zeros((h, w), np.uint8)
    classes: list[int] = []
    areas: list[int] = []  # full (unoccluded, in-frame) area of each placed object
    visible = np.zeros(8, np.int64)  # visible pixels per instance id
    n_obj = int(rng.integers(1, 6))
    for _ in range(n_obj):
        for _attempt in range(6):
            cls = int(rng.integers(1, len(CLASSES)))
            r = rng.uniform(0.08, 0.235) * side  # diameter 16-47 % of the image side
            cx, cy = rng.uniform(0.1 * w, 0.9 * w), rng.uniform(0.1 * h, 0.9 * h)
            canvas[:] = 0
            x0, y0, x1, y1 = _draw_shape(canvas, cls, cx, cy, r, rng.uniform(0, 2 * np.pi), rng)
            if x1 <= x0 or y1 <= y0:
                continue
            new = canvas[y0:y1, x0:x1].view(bool)
            full = int(np.count_nonzero(new))
            if full < 0.075 * np.pi * r * r:  # mostly outside the frame
                continue
            k = len(classes) + 1
            hidden = np.bincount(inst[y0:y1, x0:x1][new], minlength=k)[:k]
            left = visible[1:k] - hidden[1:]
            if classes and np.any(left < _MIN_VISIBLE_FRAC * np.asarray(areas)):
                continue
            ys, xs = np.nonzero(new.any(1))[0], np.nonzero(new.any(0))[0]
            bbox = (x0 + int(xs[0]), y0 + int(ys[0]), x0 + int(xs[-1]) + 1, y0 + int(ys[-1]) + 1)
            _paint_object(img, canvas, bbox, rng)
            visible[:k] -= hidden
            visible[k] = full
            classes.append(cls)
            areas.append(full)
            inst[y0:y1, x0:x1][new] = k
            break
    return inst, classes


def _photometric(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
    """Lighting (smooth gain field, colour cast, offset), blur and sensor noise -> BGR uint8."""
    h, w = img.shape[:2]
    gain = 1 + rng.uniform(-1, 1, (2, 2, 1)).astype(np.float32) * rng.uniform(0, 0.35)
    gain = gain * rng.uniform(0.6, 1.3) * rng.uniform(0.85, 1.15, 3).astype(np.float32)
    img *= cv2.resize(gain, (w, h), interpolation=cv2.INTER_LINEAR)
    img += rng.uniform(-25, 25)
    np.maximum(img, 0, out=img)
    sigma = rng.uniform(0, 1.3)
    if sigma > 0.3:
        img = cv2.GaussianBlur(img, (5, 5), sigma)
    out = cv2.convertScaleAbs(img)  # saturating round to uint8 (all values are >= 0)
    amp = int(rng.integers(0, 24))
    if amp > 1:  # uniform sensor noise in [-amp/2, amp/2): random bytes scaled by a LUT
        noise = np.frombuffer(rng.bytes(h * w * 3), np.uint8).reshape(h, w, 3)
        noise = cv2.LUT(noise, ((np.arange(256) * amp) >> 8).astype(np.uint8))
        out = cv2.subtract(cv2.add(out, noise), np.full_like(out, amp // 2))
    return out


def generate(index: int, seed: int = 0, size: Union[int, Sequence[int]] = (256, 256)) -> Sample:
    """Generate scene ``index`` of the stream ``seed``; the same arguments give the same sample."""
    h, w = _as_hw(size)
    rng = _rng(index, seed)
    img = _background(rng, h, w)
    inst, classes = _place_objects(rng, h, w, img)
    image = _photometric(rng, img)
    return _finish(image, inst, classes)


def _finish(image: np.ndarray, inst: np.ndarray, classes: list[int]) -> Sample:
    """Build the Sample from an instance-id map, dropping slivers (marked 255 in semantic)."""
    h, w = inst.shape
    lut = np.zeros(256, np.uint8)
    lut[1:len(classes) + 1] = classes
    semantic = lut[inst]
    counts = np.bincount(inst.ravel(), minlength=len(classes) + 1)
    keep = [i for i in range(1, len(classes) + 1) if counts[i] >= _MIN_VISIBLE_PX_FRAC * h * w]
    for i in range(1, len(classes) + 1):
        if i not in keep and counts[i] > 0:
            semantic[inst == i] = 255
    masks = np.stack([inst == i for i in keep]) if keep else np.zeros((0, h, w), bool)
    boxes = np.zeros((len(keep), 4), np.float32)
    for j, m in enumerate(masks):
        ys, xs = np.nonzero(m.any(1))[0], np.nonzero(m.any(0))[0]
        boxes[j] = (xs[0], ys[0], xs[-1] + 1, ys[-1] + 1)
    cls = np.array([classes[i - 1] for i in keep], np.int64)
    return Sample(image, semantic, masks, cls, boxes)


def _check_index(i: int, n: int) -> int:
    """``i`` as an index into ``n`` samples (negative counts from the end); IndexError outside."""
    i = int(i)
    if i < 0:
        i += n
    if not 0 <= i < n:
        raise IndexError(f"index {i} out of range for {n} samples")
    return i


class _SyntheticScenes:
    """``n`` synthetic scenes, scene i being ``generate(i, seed, size)`` (base of the datasets)."""

    def __init__(self, n: int, seed: int = 0, size: Union[int, Sequence[int]] = (256, 256)) -> None:
        if int(n) <= 0:
            raise DataError(f"synthetic dataset size must be positive, got {n}")
        self.n, self.seed, self.size = int(n), int(seed), _as_hw(size)

    def __len__(self) -> int:
        return self.n

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n={self.n}, seed={self.seed}, size={self.size})"


class SyntheticSegmentation(_SyntheticScenes):
    """A fixed-length synthetic dataset: ``ds[i] -> (image BGR uint8, label uint8)``.

    Sample i is ``generate(i, seed, size)``; use distinct seeds for train and validation.
    """

    classes: tuple[str, ...] = CLASSES
    palette: list[tuple[int, int, int]] = PALETTE

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        s = self.sample(i)
        return s.image, s.semantic

    def sample(self, i: int) -> Sample:
        """The full Sample (with instances) for index i."""
        return generate(_check_index(i, self.n), self.seed, self.size)

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for i in range(self.n):
            yield self[i]


# ---------------------------------------------------------------------------------- writers
def write_voc(root: PathLike, n_train: int, n_val: int, seed: int = 0,
              size: Union[int, Sequence[int]] = (256, 256), boundary: int = 0) -> Path:
    """Write a synthetic set in the PASCAL VOC 2012 layout under ``root`` and return root.

    root/JPEGImages/*.jpg, root/SegmentationClass/*.png and root/SegmentationObject/*.png
    (indexed PNGs with the VOC colour map; object ids 1..N, 0 background),
    root/ImageSets/Segmentation/{train,val,trainval}.txt, and root/classes.txt (class names,
    read by VOCSegmentation). Train uses stream ``seed``, val
    ``seed + 1``. ``boundary`` > 0 marks a band of that many pixels around objects with 255,
    like the real VOC annotations.
    """
    root = Path(root)
    for d in ("JPEGImages", "SegmentationClass", "SegmentationObject", "ImageSets/Segmentation"):
        (root / d).mkdir(parents=True, exist_ok=True)
    pal = default_palette(256)
    names: dict[str, list[str]] = {"train": [], "val": []}
    for split, n, s in (("train", n_train, seed), ("val", n_val, seed + 1)):
        for i in range(int(n)):
            name = f"{split}_{s:04d}_{i:06d}"
            smp = generate(i, s, size)
            sem = smp.semantic.copy()
            obj = np.zeros_like(sem)
            for k, m in enumerate(smp.instance_masks):
                obj[m] = k + 1
            obj[sem == 255] = 255
            if boundary > 0:
                band = _boundary_band(obj, boundary)
                sem[band] = 255
                obj[band] = 255
            write_image_atomic(root / "JPEGImages" / f"{name}.jpg", smp.image,
                               [cv2.IMWRITE_JPEG_QUALITY, 95])
            write_palette_png(root / "SegmentationClass" / f"{name}.png", sem, pal)
            write_palette_png(root / "SegmentationObject" / f"{name}.png", obj, pal)
            names[split].append(name)
    atomic_write_bytes(root / "classes.txt", "".join(c + "\n" for c in CLASSES).encode())
    sets = root / "ImageSets" / "Segmentation"
    for split, lst in (("train", names["train"]), ("val", names["val"]),
                       ("trainval", names["train"] + names["val"])):
        atomic_write_bytes(sets / f"{split}.txt", "".join(x + "\n" for x in lst).encode())
    return root


def _boundary_band(obj: np.ndarray, width: int) -> np.ndarray:
    """Pixels within ``width`` of a change of object id (an inner/outer edge band)."""
    k = np.ones((2 * width + 1, 2 * width + 1), np.uint8)
    hi = cv2.dilate(obj, k)
    lo = cv2.erode(obj, k)
    return hi != lo


def write_coco(image_dir: PathLike, json_path: PathLike, n: int, seed: int = 0,
               size: Union[int, Sequence[int]] = (256, 256), rle: str = "compressed") -> Path:
    """Write ``n`` synthetic scenes as JPEGs in ``image_dir`` plus a COCO instances JSON.

    ``rle``: "compressed" (COCO string counts), "uncompressed" (list counts) or "polygon".
    Category ids are the synthetic class ids (1..6). Returns the JSON path.
    """
    from .coco_rle import mask_to_polygons, rle_encode

    if rle not in ("compressed", "uncompressed", "polygon"):
        raise DataError(f"rle must be 'compressed', 'uncompressed' or 'polygon', got {rle!r}")
    image_dir, json_path = Path(image_dir), Path(json_path)
    image_dir.mkdir(parents=True, exist_ok=True)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    images, anns = [], []
    for i in range(int(n)):
        smp = generate(i, seed, size)
        h, w = smp.semantic.shape
        fname = f"{seed:04d}_{i:06d}.jpg"
        write_image_atomic(image_dir / fname, smp.image, [cv2.IMWRITE_JPEG_QUALITY, 95])
        images.append({"id": i + 1, "file_name": fname, "height": h, "width": w})
        for m, c, b in zip(smp.instance_masks, smp.instance_classes, smp.boxes):
            if rle == "polygon":
                seg = mask_to_polygons(m)
                if not seg:
                    continue
            else:
                seg = rle_encode(m, compressed=(rle == "compressed"))
            x0, y0, x1, y1 = (float(v) for v in b)
            anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": int(c),
                         "segmentation": seg, "area": float(m.sum()),
                         "bbox": [x0, y0, x1 - x0, y1 - y0], "iscrowd": 0})
    cats = [{"id": k, "name": name, "supercategory": "shape"} for k, name in enumerate(CLASSES)
            if k > 0]
    doc = {"info": {"description": "edgeseg synthetic shapes", "version": "1.0"},
           "licenses": [], "images": images, "annotations": anns, "categories": cats}
    atomic_write_bytes(json_path, json.dumps(doc).encode())
    return json_path


# ------------------------------------------------------------------------------------ video
class _Mover:
    """An object moving smoothly: position/angle are linear-plus-sine functions of time."""

    def __init__(self, rng: np.random.Generator, h: int, w: int) -> None:
        side = min(h, w)
        self.cls = int(rng.integers(1, len(CLASSES)))
        self.r = rng.uniform(0.08, 0.18) * side
        self.p0 = rng.uniform(0.2, 0.8, 2) * (w, h)
        self.v = rng.uniform(-1, 1, 2) * side * 0.004
        self.amp = rng.uniform(0, 0.15, 2) * side
        self.freq = rng.uniform(0.01, 0.05, 2)
        self.a0, self.va = rng.uniform(0, 2 * np.pi), rng.uniform(-0.04, 0.04)
        self.shape_seed = int(rng.integers(0, 2 ** 31))
        self.paint_seed = int(rng.integers(0, 2 ** 31))
        self.wh = np.array([w, h], float)

    def pose(self, t: int) -> tuple[float, float, float]:
        p = self.p0 + self.v * t + self.amp * np.sin(self.freq * t * 2 * np.pi)
        # bounce inside the frame (triangle wave over [0.1, 0.9] of each side)
        lo, hi = 0.1 * self.wh, 0.9 * self.wh
        span = hi - lo
        q = np.mod(p - lo, 2 * span)
        p = lo + np.where(q > span, 2 * span - q, q)
        return float(p[0]), float(p[1]), self.a0 + self.va * t


def video_frame(t: int, size: Union[int, Sequence[int]] = (256, 256), seed: int = 0
                ) -> Sample:
    """Frame ``t`` of the moving scene used by :func:`make_video` (image + ground truth)."""
    h, w = _as_hw(size)
    rng = _rng(0, seed ^ 0x71DE0)
    bg = _background(rng, h, w)
    movers = [_Mover(rng, h, w) for _ in range(int(rng.integers(2, 5)))]
    img = bg.copy()
    inst = np.zeros((h, w), np.uint8)
    canvas = np.zeros((h, w), np.uint8)
    for k, mv in enumerate(movers):
        cx, cy, a = mv.pose(t)
        canvas[:] = 0
        _draw_shape(canvas, mv.cls, cx, cy, mv.r, a, np.random.default_rng(mv.shape_seed))
        if not canvas.any():
            continue
        ys, xs = np.nonzero(canvas.any(1))[0], np.nonzero(canvas.any(0))[0]
        _paint_object(img, canvas, (int(xs[0]), int(ys[0]), int(xs[-1]) + 1, int(ys[-1]) + 1),
                      np.random.default_rng(mv.paint_seed))
        inst[canvas.astype(bool)] = k + 1
    frng = np.random.default_rng([seed & 0xFFFFFFFF, t, 0xF0])
    noise = frng.integers(0, 8, (h, w, 3), dtype=np.uint8)
    image = cv2.subtract(cv2.add(np.clip(img, 0, 255).astype(np.uint8), noise), 4)
    return _finish(image, inst, [mv.cls for mv in movers])


def make_video(path: PathLike, n_frames: int, size: Union[int, Sequence[int]] = (256, 256),
               fps: float = defaults.VIDEO_FPS, seed: int = 0) -> Path:
    """Write a video of a moving synthetic scene; return the path actually written.

    Tries mp4v into ``path`` (.mp4); if that writer cannot open, writes MJPG into ``path`` with
    an .avi suffix. The file appears atomically. Per-frame ground truth:
    ``video_frame(t, size, seed)``.
    """
    h, w = _as_hw(size)
    if int(n_frames) <= 0:
        raise DataError(f"n_frames must be positive, got {n_frames}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    attempts = [(path if path.suffix else path.with_suffix(".mp4"), "mp4v"),
                (path.with_suffix(".avi"), "MJPG")]
    for target, codec in attempts:
        tmp = target.with_name(f".{target.stem}.tmp{os.getpid()}{target.suffix}")
        wr = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*codec), float(fps), (w, h))
        if not wr.isOpened():
            wr.release()
            tmp.unlink(missing_ok=True)
            continue
        try:
            for t in range(int(n_frames)):
                wr.write(video_frame(t, (h, w), seed).image)
        finally:
            wr.release()
        if not tmp.exists() or tmp.stat().st_size == 0:
            tmp.unlink(missing_ok=True)
            continue
        os.replace(tmp, target)
        return target
    raise InputFileError(f"could not open a video writer for {path} (tried mp4v .mp4 and MJPG "
                         ".avi); check that the folder is writable and OpenCV has video support")
