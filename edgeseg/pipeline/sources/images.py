"""Image files in order: one path, a folder (sorted) or a glob pattern."""
from __future__ import annotations

import glob as _glob
import time
from pathlib import Path
from typing import Any, Iterator

from ..._io import IMAGE_SUFFIXES, read_image
from ...errors import InputFileError
from .base import Frame, Source
from .registry import register_source


class ImageSource(Source):
    """Image files in order: one path, a folder (sorted) or a glob pattern."""

    def __init__(self, paths: list[Path]) -> None:
        if not paths:
            raise InputFileError("no images to read; give an image file, a folder of images or a glob")
        self.paths = paths

    def __iter__(self) -> Iterator[Frame]:
        for i, p in enumerate(self.paths):
            t0 = time.perf_counter()
            image = read_image(p)
            t1 = time.perf_counter()
            yield Frame(image, i, p.stem, t1, (t1 - t0) * 1e3)

    def describe(self) -> str:
        return f"{len(self.paths)} image(s) from {self.paths[0].parent}"

    def __len__(self) -> int:
        return len(self.paths)


def image_paths(spec: str | Path) -> list[Path]:
    """Expand an image path, folder or glob into a sorted list of image files."""
    p = Path(spec)
    if p.is_dir():
        paths = sorted(q for q in p.iterdir() if q.suffix.lower() in IMAGE_SUFFIXES)
        if not paths:
            raise InputFileError(f"folder {p} holds no images ({', '.join(IMAGE_SUFFIXES)})")
        return paths
    if p.is_file():
        return [p]
    if any(ch in str(spec) for ch in "*?["):
        paths = sorted(Path(q) for q in _glob.glob(str(spec)) if Path(q).suffix.lower() in IMAGE_SUFFIXES)
        if not paths:
            raise InputFileError(f"glob {spec!r} matches no images")
        return paths
    raise InputFileError(f"{spec} does not exist; give an image, a folder of images, a glob or a video")


@register_source("images", priority=100, help="an image, a folder of images or a glob (quote it)")
def _open_images(spec: Any) -> Source | None:
    return ImageSource(image_paths(spec))

