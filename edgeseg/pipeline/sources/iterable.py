"""Frames from any iterable of BGR uint8 arrays (a generator, a list), in order."""
from __future__ import annotations

import time
from typing import Iterable, Iterator

import numpy as np

from ...errors import InputFileError
from .base import Frame, Source


class IterableSource(Source):
    """Frames from any iterable of BGR uint8 arrays (a generator, a list), in order."""

    def __init__(self, frames: Iterable[np.ndarray], fps: float | None = None, name: str = "frame") -> None:
        self._frames = frames
        self.fps = fps
        self._name = name

    def __iter__(self) -> Iterator[Frame]:
        it = iter(self._frames)
        i = 0
        while True:
            t0 = time.perf_counter()
            try:
                image = next(it)
            except StopIteration:
                return
            t1 = time.perf_counter()
            if not isinstance(image, np.ndarray):
                raise InputFileError(f"frame {i} is a {type(image).__name__}, not a BGR uint8 numpy array")
            yield Frame(image, i, f"{self._name}_{i:06d}", t1, (t1 - t0) * 1e3)
            i += 1

    def describe(self) -> str:
        return f"iterable of frames ({type(self._frames).__name__})"
