"""One JSON line per frame (timings, class histogram or detections), written atomically."""
from __future__ import annotations

import json
import os
from typing import IO, TYPE_CHECKING

from .base import StagedSink, _public_mode

if TYPE_CHECKING:  # pragma: no cover
    from ..results import StreamResult


class JsonlSink(StagedSink):
    """One JSON object per frame and line (see :meth:`StreamResult.record` for the keys).

    Lines are written whole and flushed one by one into ``.NAME.partial`` beside the target, which
    is moved onto the target on close: the file appears complete, and an interrupted run leaves a
    line-complete partial file.
    """

    needs_image = False
    kind = "jsonl"

    def __init__(self, path: str | os.PathLike) -> None:
        self._stage(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._writer: IO[str] | None = open(self._tmp, "w", encoding="utf-8")
        self.lines = 0

    def put(self, result: "StreamResult") -> None:
        assert self._writer is not None, "JsonlSink is closed"
        self._writer.write(json.dumps(result.record(), separators=(",", ":")) + "\n")
        self._writer.flush()
        self.lines += 1

    def _finish(self, writer: IO[str]) -> None:
        writer.close()
        _public_mode(self._tmp)
        os.replace(self._tmp, self.path)

    def _drop(self, writer: IO[str] | None) -> None:
        if writer is not None:
            writer.close()
        self._tmp.unlink(missing_ok=True)
