"""VOC layout, indexed-PNG reading (own decoder vs independent writers), and error messages."""
from __future__ import annotations

import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgeseg.data import open_dataset
from edgeseg.data._io import decode_palette_png, encode_palette_png, read_label
from edgeseg.data.synthetic import CLASSES, generate, write_voc
from edgeseg.data.voc import CLASSES as VOC_CLASSES
from edgeseg.data.voc import VOCSegmentation
from edgeseg.errors import DataError, InputFileError
from edgeseg.meta import voc_palette

SIZE = (48, 64)


@pytest.fixture(scope="module")
def voc_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("voc") / "VOCdevkit" / "VOC2012"
    write_voc(root, n_train=3, n_val=2, seed=4, size=SIZE)
    return root


# --------------------------------------------------------------- a reference PNG encoder
def _chunk(tag: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body))


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else (b if pb <= pc else c)


def _filtered_palette_png(idx: np.ndarray, filters: list[int]) -> bytes:
    """An 8-bit indexed PNG whose row y uses filter filters[y % len(filters)] (slow, obvious)."""
    h, w = idx.shape
    raw = bytearray()
    prev = [0] * w
    for y in range(h):
        f = filters[y % len(filters)]
        row = [int(v) for v in idx[y]]
        out = []
        for x in range(w):
            a = row[x - 1] if x else 0
            b = prev[x]
            c = prev[x - 1] if x else 0
            pred = [0, a, b, (a + b) // 2, _paeth(a, b, c)][f]
            out.append((row[x] - pred) & 0xFF)
        raw += bytes([f] + out)
        prev = row
    pal = np.array(voc_palette(256), np.uint8).tobytes()
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 3, 0, 0, 0))
            + _chunk(b"PLTE", pal) + _chunk(b"IDAT", zlib.compress(bytes(raw)))
            + _chunk(b"IEND", b""))


def _random_labels(h=37, w=53, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    lab = rng.integers(0, 21, (h, w)).astype(np.uint8)
    lab[rng.random((h, w)) < 0.1] = 255
    return lab


@pytest.mark.parametrize("filters", [[0], [1], [2], [3], [4], [0, 1, 2, 3, 4], [4, 3, 2, 1]])
def test_palette_decoder_handles_every_row_filter(filters):
    lab = _random_labels()
    got, pal = decode_palette_png(_filtered_palette_png(lab, filters))
    assert np.array_equal(got, lab)
    assert pal is not None and tuple(pal[1]) == (128, 0, 0)


def test_palette_png_with_libpng_chosen_filters(tmp_path):
    """cv2 (libpng) writes a grayscale PNG with adaptive filters; relabel it as indexed."""
    lab = (np.add.outer(np.arange(90), np.arange(120)) % 23).astype(np.uint8)
    lab[10:40, 30:70] = 255
    ok, buf = cv2.imencode(".png", lab)
    data = buf.tobytes()
    ihdr = bytearray(data[16:29])
    ihdr[9] = 3  # colour type 0 (grey) -> 3 (indexed); the pixel bytes stay valid
    png = (data[:8] + _chunk(b"IHDR", bytes(ihdr))
           + _chunk(b"PLTE", np.array(voc_palette(256), np.uint8).tobytes()) + data[33:])
    path = tmp_path / "x.png"
    path.write_bytes(png)
    assert np.array_equal(read_label(path), lab)


def test_pillow_written_p_mode_png_is_read_as_indices(tmp_path):
    Image = pytest.importorskip("PIL.Image")
    lab = _random_labels(40, 60, seed=1)
    im = Image.fromarray(lab, mode="P")
    im.putpalette([v for c in voc_palette(256) for v in c])
    im.save(tmp_path / "p.png")
    assert np.array_equal(read_label(tmp_path / "p.png"), lab)
    # 4-bit palette PNG (Pillow packs two pixels per byte)
    small = (lab % 16).astype(np.uint8)
    im4 = Image.fromarray(small, mode="P")
    im4.putpalette([v for c in voc_palette(16) for v in c])
    im4.save(tmp_path / "p4.png", bits=4)
    assert np.array_equal(read_label(tmp_path / "p4.png"), small)


def test_our_palette_png_reads_back_in_pillow_and_opencv(tmp_path):
    lab = _random_labels()
    (tmp_path / "o.png").write_bytes(encode_palette_png(lab, voc_palette(256)))
    bgr = cv2.imread(str(tmp_path / "o.png"), cv2.IMREAD_COLOR)  # libpng expands to colours
    pal = np.array(voc_palette(256), np.uint8)
    assert np.array_equal(bgr[..., ::-1], pal[lab])
    Image = pytest.importorskip("PIL.Image")
    with Image.open(tmp_path / "o.png") as im:
        assert im.mode == "P"
        assert np.array_equal(np.array(im), lab)


def test_grayscale_label_png(tmp_path):
    lab = _random_labels()
    cv2.imwrite(str(tmp_path / "g.png"), lab)
    assert np.array_equal(read_label(tmp_path / "g.png"), lab)
    cv2.imwrite(str(tmp_path / "c.png"), np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(InputFileError, match="channels"):
        read_label(tmp_path / "c.png")


# ----------------------------------------------------------------------------- dataset
def test_written_layout_is_real_voc(voc_root):
    for d in ("JPEGImages", "SegmentationClass", "SegmentationObject", "ImageSets/Segmentation"):
        assert (voc_root / d).is_dir()
    sets = voc_root / "ImageSets" / "Segmentation"
    train = sets.joinpath("train.txt").read_text().split()
    val = sets.joinpath("val.txt").read_text().split()
    assert len(train) == 3 and len(val) == 2 and not set(train) & set(val)
    assert sets.joinpath("trainval.txt").read_text().split() == train + val
    assert len(list(voc_root.glob("JPEGImages/*.jpg"))) == 5
    assert len(list(voc_root.glob("SegmentationObject/*.png"))) == 5


@pytest.mark.parametrize("which", ["voc2012", "vocdevkit", "parent"])
def test_root_may_be_voc2012_or_devkit(voc_root, which):
    root = {"voc2012": voc_root, "vocdevkit": voc_root.parent, "parent": voc_root.parent.parent}
    ds = VOCSegmentation(root[which], "train")
    assert ds.root == voc_root and len(ds) == 3


def test_samples_match_generator(voc_root):
    ds = VOCSegmentation(voc_root, "val")
    assert ds.classes == CLASSES  # from classes.txt
    img, lab = ds[1]
    ref = generate(1, 5, SIZE)  # val uses seed + 1
    assert img.shape == (*SIZE, 3) and img.dtype == np.uint8
    assert np.array_equal(lab, ref.semantic)
    assert np.abs(img.astype(int) - ref.image).mean() < 8  # JPEG
    masks, cls = ds.instances(1)
    assert np.array_equal(masks, ref.instance_masks)
    assert np.array_equal(cls, ref.instance_classes)


def test_boundary_band_is_ignore(tmp_path):
    write_voc(tmp_path, 1, 0, seed=0, size=SIZE, boundary=2)
    _, lab = VOCSegmentation(tmp_path, "train")[0]
    ref = generate(0, 0, SIZE).semantic
    assert (lab == 255).any()
    keep = lab != 255
    assert np.array_equal(lab[keep], ref[keep])


def test_open_dataset_voc(voc_root):
    ds = open_dataset(f"voc:{voc_root.parent}", "trainval")
    assert len(ds) == 5 and ds.palette[:len(ds.classes)] == voc_palette(len(CLASSES))


def test_default_classes_are_voc(tmp_path, voc_root):
    import shutil

    root = tmp_path / "VOC2012"
    shutil.copytree(voc_root, root)
    (root / "classes.txt").unlink()
    ds = VOCSegmentation(root)
    assert ds.classes == VOC_CLASSES and len(ds.palette) == 21


def test_layout_errors_name_what_is_missing(tmp_path, voc_root):
    with pytest.raises(DataError, match="JPEGImages"):
        VOCSegmentation(tmp_path)
    with pytest.raises(DataError, match="does not exist"):
        VOCSegmentation(tmp_path / "nope")
    with pytest.raises(DataError, match="available splits"):
        VOCSegmentation(voc_root, "test")
    (tmp_path / "JPEGImages").mkdir()
    with pytest.raises(DataError, match="SegmentationClass"):
        VOCSegmentation(tmp_path)


def test_missing_and_corrupt_files(tmp_path, voc_root):
    import shutil

    root = tmp_path / "VOC2012"
    shutil.copytree(voc_root, root)
    ds = VOCSegmentation(root, "train")
    (root / "JPEGImages" / f"{ds.ids[0]}.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(InputFileError, match="cannot decode"):
        ds[0]
    png = root / "SegmentationClass" / f"{ds.ids[1]}.png"
    png.write_bytes(png.read_bytes()[:60])  # truncated
    with pytest.raises(InputFileError):
        ds[1]
    (root / "SegmentationClass" / f"{ds.ids[2]}.png").unlink()
    with pytest.raises(DataError, match=ds.ids[2]):
        VOCSegmentation(root, "train")
