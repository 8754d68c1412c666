"""One JSON line per frame (timings, class histogram or detections), written atomically."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import IO, TYPE_CHECKING

from .base import Sink, _public_mode

if TYPE_CHECKING:  # pragma: no cover
    from ..results import StreamResult


class JsonlSink(Sink):
    """One JSON object per frame and line (see :meth:`StreamResult.record` for the keys).

    Lines are written whole and flushed one by one into ``.NAME.partial`` beside the target, which
    is moved onto the target on close: the file appears complete, and an interrupted run leaves a
    line-complete partial file.
    """

    needs_image = False

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = self.path.with_name(f".{self.path.name}.partial")
        self._fh: IO[str] | None = open(self._tmp, "w", encoding="utf-8")
        self.lines = 0

    def put(self, result: "StreamResult") -> None:
        assert self._fh is not None, "JsonlSink is closed"
        self._fh.write(json.dumps(result.record(), separators=(",", ":")) + "\n")
        self._fh.flush()
        self.lines += 1

    def describe(self) -> str:
        return f"jsonl {self.path}"

    def close(self) -> Path | None:
        if self._fh is None:
            return self.path if self.path.exists() else None
        self._fh.close()
        self._fh = None
        _public_mode(self._tmp)
        os.replace(self._tmp, self.path)
        return self.path

    def abort(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        self._tmp.unlink(missing_ok=True)
