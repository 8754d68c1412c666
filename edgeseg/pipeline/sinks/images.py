"""Each overlay frame as a JPEG in a folder."""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from ..._io import write_image
from ...errors import InputFileError
from .base import Sink

if TYPE_CHECKING:  # pragma: no cover
    from ..results import StreamResult


class ImageDirSink(Sink):
    """Write each rendered frame as ``DIR/<frame name><suffix>`` (atomic per file)."""

    def __init__(self, directory: str | os.PathLike, suffix: str = ".jpg") -> None:
        self.dir = Path(directory)
        if self.dir.exists() and not self.dir.is_dir():
            raise InputFileError(f"{self.dir} exists and is not a folder; give a folder for --save-dir")
        self.dir.mkdir(parents=True, exist_ok=True)
        self.suffix = suffix
        self.frames = 0

    def put(self, result: "StreamResult") -> None:
        image = result.vis if result.vis is not None else result.frame
        write_image(self.dir / f"{result.name}{self.suffix}", image)
        self.frames += 1

    def describe(self) -> str:
        return f"images {self.dir}/"

    def close(self) -> Path:
        return self.dir
