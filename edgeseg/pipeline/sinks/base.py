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
