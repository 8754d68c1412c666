"""The sink interface. Files appear only when complete: a sink writes to a temporary file and moves
it into place on close, so an interrupted run never leaves a half-written file behind."""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..._io import FILE_MODE

if TYPE_CHECKING:  # pragma: no cover
    from ..results import StreamResult


def _public_mode(path: Path) -> None:
    """mkstemp creates files 0600; give the finished file the usual umask-based mode."""
    os.chmod(path, FILE_MODE)


class Sink:
    """Interface of pipeline outputs. Called from the pipeline's sink thread only."""

    needs_image: bool = True

    def put(self, result: "StreamResult") -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def close(self) -> Any:
        """Finish the output (files move into place here)."""

    def abort(self) -> None:
        """Drop partial output."""
        self.close()

    def describe(self) -> str:
        return type(self).__name__


class StagedSink(Sink):
    """A sink that writes into ``.NAME.partial`` beside its target ``path`` and moves it into place
    on close, so the target appears complete or not at all.

    A subclass calls :meth:`_stage` first, keeps its open writer in ``_writer``, and implements
    :meth:`_finish` (close the writer, move the partial output onto the target) and :meth:`_drop`
    (close the writer when there is one, remove the partial output); ``kind`` names it in
    :meth:`describe`.
    """

    kind = "file"
    _writer: Any = None

    def _stage(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._tmp = self.path.with_name(f".{self.path.name}.partial")

    def describe(self) -> str:
        return f"{self.kind} {self.path}"

    def close(self) -> Path | None:
        """Finish the output; returns the target (None when it was never written)."""
        if self._writer is None:  # closed before
            return self.path if self.path.exists() else None
        writer, self._writer = self._writer, None
        self._finish(writer)
        return self.path

    def abort(self) -> None:
        """Drop the partial output."""
        writer, self._writer = self._writer, None
        self._drop(writer)

    def _finish(self, writer: Any) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def _drop(self, writer: Any) -> None:  # pragma: no cover - interface
        raise NotImplementedError
