"""Small file helpers shared across the package: atomic writes and image reading."""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from .errors import InputFileError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".m4v", ".webm", ".mpg", ".mpeg")


def _file_mode() -> int:
    """The mode a plainly created file gets (0666 less the umask); mkstemp would leave 0600."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


FILE_MODE = _file_mode()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it onto ``path`` only if the block succeeds.

    Readers never see a half-written file, and a failure leaves any previous file untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix or path.suffix, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, FILE_MODE)
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def check_writable(path: str | os.PathLike, what: str = "output", folder: bool = False) -> Path:
    """Check before any work starts that ``path`` (a file, or a folder when ``folder``) can be
    written: a probe file is written and removed in its nearest existing folder. Raises
    InputFileError saying what to change, so a long run never fails only at its end."""
    path = Path(path)
    if folder and path.exists() and not path.is_dir():
        raise InputFileError(f"{what} {path} exists and is not a folder; give a folder path")
    if not folder and path.is_dir():
        raise InputFileError(f"{what} {path} is a folder; give a file path")
    target = (path if folder else path.parent).absolute()
    while not target.exists() and target != target.parent:  # nothing is created: probe the nearest folder
        target = target.parent
    try:
        if not target.is_dir():
            raise NotADirectoryError(20, "not a folder")
        fd, probe = tempfile.mkstemp(prefix=".edgeseg-probe-", dir=target)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise InputFileError(f"cannot write {what} {path}: {e.strerror or e} in {target}; choose a writable "
                             "location") from None
    return path


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n")
    return Path(path)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_image(path: str | os.PathLike, image: np.ndarray, params: Sequence[int] = ()) -> Path:
    """Encode with OpenCV (format from the suffix) and write atomically."""
    import cv2

    path = Path(path)
    ok, buf = cv2.imencode(path.suffix or ".png", image, list(params))
    if not ok:
        raise InputFileError(f"OpenCV cannot encode an image as {path.suffix!r} for {path}; use .png or .jpg")
    return atomic_write_bytes(path, buf.tobytes())


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read a colour image as BGR uint8 HxWx3; InputFileError if missing, not a regular file,
    declaring more than ``defaults.MAX_IMAGE_PIXELS`` pixels, or undecodable."""
    import stat

    import cv2

    from . import defaults
    from .image_header import declared_size, structure_problem

    path = Path(path)
    try:
        st = path.stat()
    except OSError:
        raise InputFileError(f"image not found: {path}; check the path") from None
    if not stat.S_ISREG(st.st_mode):
        raise InputFileError(f"{path} is not a regular file (a folder, FIFO or device); give an image file")
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except OSError as e:
        raise InputFileError(f"cannot read {path}: {e.strerror or e}") from None
    size = declared_size(data[:65536].tobytes())
    limit = defaults.max_image_pixels()
    if size is not None and size[0] * size[1] > limit:
        raise InputFileError(f"image {path} declares {size[0]}x{size[1]} pixels, more than edgeseg decodes "
                             f"({limit} pixels; set {defaults.MAX_IMAGE_PIXELS_ENV} to raise the limit)")
    problem = structure_problem(data.data)
    if problem:
        raise InputFileError(f"cannot decode image {path}: {problem}; re-create it or remove it")
    try:
        image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    except cv2.error:
        image = None
    if image is None:
        raise InputFileError(f"cannot decode image {path}: the file is empty, truncated, too large or not an "
                             "image format OpenCV reads; re-create it or remove it")
    return image
