"""Image files in order: one path, a folder (sorted) or a glob pattern."""
from __future__ import annotations

import glob as _glob
import sys
import time
from pathlib import Path
from typing import Any, Iterator

from ..._io import IMAGE_SUFFIXES, read_image
from ...errors import InputFileError
from .base import Frame, Source
from .registry import register_source


class ImageSource(Source):
    """Image files in order: one path, a folder (sorted) or a glob pattern.

    One unreadable file among several does not stop the others: it is skipped, logged and listed
    in :attr:`failed` (``(path, reason)``), so a caller can report every bad file at the end and
    exit non-zero. A single image that cannot be read raises, as does a run where none could.
    """

    def __init__(self, paths: list[Path], log: Any = None) -> None:
        if not paths:
            raise InputFileError("no images to read; give an image file, a folder of images or a glob")
        self.paths = paths
        self.failed: list[tuple[Path, str]] = []
        self.log = log or (lambda msg: print(f"edgeseg: {msg}", file=sys.stderr, flush=True))

    def __iter__(self) -> Iterator[Frame]:
        self.failed = []
        for i, p in enumerate(self.paths):
            t0 = time.perf_counter()
            try:
                image = read_image(p)
            except InputFileError as e:
                if len(self.paths) == 1:
                    raise
                self.failed.append((p, str(e)))
                self.log(f"skipped {p}: {e}")
                continue
            t1 = time.perf_counter()
            yield Frame(image, i, p.stem, t1, (t1 - t0) * 1e3)
        if len(self.failed) == len(self.paths):
            raise InputFileError(f"none of the {len(self.paths)} images could be read; the first: {self.failed[0][1]}")

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

