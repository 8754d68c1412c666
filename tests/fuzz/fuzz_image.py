"""Fuzz image decoding: ``image_header.declared_size`` on the raw bytes (must return None or a
pair of non-negative ints, never raise) and ``edgeseg._io.read_image`` on the bytes written to a
file (must return a BGR uint8 (H, W, 3) array or raise InputFileError).

Seeds are tiny PNG, JPEG, BMP, GIF and WebP files, so mutations reach the decoders' headers;
OpenCV's decoders run under edgeseg's image-size limit (lowered here so that a mutated header
declaring a large image is refused quickly, as it would be at the default limit).
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import atheris

from _harness import run

os.environ["EDGESEG_MAX_IMAGE_PIXELS"] = str(1 << 22)
with atheris.instrument_imports(include=["edgeseg"]):
    import numpy as np

    from edgeseg._io import read_image
    from edgeseg.errors import InputFileError
    from edgeseg.image_header import declared_size

FOLDER = Path(tempfile.mkdtemp(prefix="edgeseg-fuzz-image-"))


def test_one_input(data: bytes) -> None:
    size = declared_size(data)
    assert size is None or (len(size) == 2 and all(isinstance(v, int) and v >= 0 for v in size)), size
    path = FOLDER / "image"
    path.write_bytes(data)
    try:
        image = read_image(path)
    except InputFileError:
        return
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3 and image.size > 0, image.shape


if __name__ == "__main__":
    run(test_one_input)
