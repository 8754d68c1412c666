"""The source interface: iterate a :class:`Source` to get :class:`Frame` objects."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np


@dataclass
class Frame:
    """One frame: BGR uint8 image, its index in the source, a name and the capture timestamp
    (``time.perf_counter()`` seconds when the frame was read); recordings add the sensor's own
    ``stamp_ns`` and ``frame_id``."""

    image: np.ndarray
    index: int
    name: str
    t_capture: float
    read_ms: float = 0.0  #: time spent reading/decoding this frame
    stamp_ns: int | None = None  #: the frame's own timestamp (e.g. a ROS header stamp), integer ns
    frame_id: str = ""  #: the sensor's coordinate frame (e.g. a ROS header frame_id)


class Source:
    """A finite or live sequence of frames. Iterate it; close it when done (or use ``with``).

    ``live`` is False for sources whose every frame matters (files, folders): they are read in
    order and never dropped. Live sources (:class:`.live.LiveSource`) set it True.
    """

    fps: float | None = None
    live: bool = False

    def __iter__(self) -> Iterator[Frame]:  # pragma: no cover - interface
        raise NotImplementedError

    def close(self) -> None:
        """Release the underlying device or file."""

    def describe(self) -> str:
        """A short human-readable name for logs and summaries."""
        return type(self).__name__

    def __enter__(self) -> "Source":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


