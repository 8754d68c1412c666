"""A tiny dependency-free progress line (tqdm is optional, never required)."""
from __future__ import annotations

import sys
import time
from typing import IO, Iterable, Iterator, Optional, TypeVar

T = TypeVar("T")


def format_seconds(s: float) -> str:
    """``75.3`` -> ``"1:15"``; ``3725`` -> ``"1:02:05"``."""
    s = max(0, int(round(s)))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


class Progress:
    """Prints ``desc [ n/total] key value ... it/s ETA`` to stderr.

    On a terminal the line is redrawn in place (at most every ``min_interval`` s); otherwise
    (logs, CI) a full line is printed every ``log_interval`` s and once at the end.
    """

    def __init__(self, total: int, desc: str = "", stream: Optional[IO[str]] = None,
                 enabled: bool = True, min_interval: float = 0.2, log_interval: float = 10.0) -> None:
        self.total = max(int(total), 0)
        self.desc = desc
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.interval = min_interval if self.tty else log_interval
        self.n = 0
        self.start = time.perf_counter()
        self._last = self.start
        self.postfix: dict = {}

    @property
    def rate(self) -> float:
        """Iterations per second so far."""
        dt = time.perf_counter() - self.start
        return self.n / dt if dt > 0 else 0.0

    def line(self) -> str:
        """The current progress line (without a newline)."""
        w = len(str(self.total))
        parts = [f"{self.desc} [{self.n:>{w}}/{self.total}]"]
        for k, v in self.postfix.items():
            parts.append(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}")
        rate = self.rate
        parts.append(f"{rate:.2f} it/s")
        if rate > 0 and self.n < self.total:
            parts.append(f"ETA {format_seconds((self.total - self.n) / rate)}")
        else:
            parts.append(f"in {format_seconds(time.perf_counter() - self.start)}")
        return " ".join(parts)

    def update(self, n: int = 1, **postfix: object) -> None:
        """Advance by ``n`` and set the shown values (e.g. ``loss=0.3, lr=1e-3``)."""
        self.n += n
        self.postfix.update(postfix)
        now = time.perf_counter()
        if self.enabled and now - self._last >= self.interval and self.n < self.total:
            self._last = now
            self._emit(final=False)

    def close(self) -> None:
        """Print the final line."""
        if self.enabled:
            self._emit(final=True)

    def _emit(self, final: bool) -> None:
        if self.tty:
            self.stream.write("\r\x1b[K" + self.line() + ("\n" if final else ""))
        else:
            self.stream.write(self.line() + "\n")
        self.stream.flush()


def track(iterable: Iterable[T], total: Optional[int] = None, desc: str = "", enabled: bool = True) -> Iterator[T]:
    """Iterate ``iterable`` while showing a :class:`Progress` line (total from ``len()`` if known)."""
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)  # type: ignore[arg-type]
    bar = Progress(total or 0, desc, enabled=enabled)
    for item in iterable:
        yield item
        bar.update(1)
    bar.close()
