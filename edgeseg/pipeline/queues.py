"""A bounded hand-off queue between pipeline stages, with timeouts on every wait.

Unlike :class:`queue.Queue` it lets a stage wait for *space* before it takes its next input
(so a stage never holds a frame it cannot pass on: that is what keeps a live pipeline's frames
fresh), and it records the largest size ever reached (``high_water``) so that tests can check
memory stays bounded.
"""
from __future__ import annotations

import threading
from collections import deque
from typing import Any

#: Marks the end of a stream; it travels through every queue after the last frame.
END = object()


class BoundedQueue:
    """FIFO of at most ``maxsize`` items; every blocking call takes a timeout (seconds)."""

    def __init__(self, maxsize: int = 1) -> None:
        if maxsize < 1:
            raise ValueError(f"maxsize must be >= 1, got {maxsize}")
        self.maxsize = maxsize
        self._items: deque[Any] = deque()
        self._cond = threading.Condition()
        self.high_water = 0

    def wait_space(self, timeout: float) -> bool:
        """Wait until a put would not block; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: len(self._items) < self.maxsize, timeout)

    def put(self, item: Any, timeout: float) -> bool:
        """Append ``item`` once there is room; False (item not added) on timeout."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self._items) < self.maxsize, timeout):
                return False
            self._items.append(item)
            self.high_water = max(self.high_water, len(self._items))
            self._cond.notify_all()
            return True

    def put_end(self) -> None:
        """Append the END marker even when full (it carries no frame, so the bound holds for frames)."""
        with self._cond:
            self._items.append(END)
            self._cond.notify_all()

    def peek(self, timeout: float) -> Any:
        """The oldest item without removing it; None on timeout."""
        with self._cond:
            if not self._cond.wait_for(lambda: bool(self._items), timeout):
                return None
            return self._items[0]

    def get(self, timeout: float) -> Any:
        """Pop the oldest item; None on timeout."""
        with self._cond:
            if not self._cond.wait_for(lambda: bool(self._items), timeout):
                return None
            item = self._items.popleft()
            self._cond.notify_all()
            return item

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)
