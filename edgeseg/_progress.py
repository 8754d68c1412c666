"""A dependency-free progress line for long loops (stderr, rewritten in place on a terminal)."""
from __future__ import annotations

import sys
import time
from typing import Iterable, Iterator, TypeVar

T = TypeVar("T")


class Progress:
    """``for x in Progress(items, total=n, desc="train"): ...; bar.set(loss=0.3)``.

    On a terminal the line is redrawn in place at most 10 times a second; elsewhere (CI, logs)
    a line is printed every ``log_every`` seconds so logs stay short.
    """

    def __init__(self, iterable: Iterable[T], total: int | None = None, desc: str = "",
                 stream=None, log_every: float = 10.0, enabled: bool = True) -> None:
        self.iterable = iterable
        self.total = total if total is not None else (len(iterable) if hasattr(iterable, "__len__") else None)  # type: ignore[arg-type]
        self.desc = desc
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.interval = 0.1 if self.tty else log_every
        self.enabled = enabled
        self.fields: dict[str, object] = {}
        self.n = 0
        self._start = self._last = 0.0

    def set(self, **fields: object) -> None:
        """Attach values (loss, mIoU, ...) shown after the counter."""
        self.fields.update(fields)

    def __iter__(self) -> Iterator[T]:
        self._start = self._last = time.perf_counter()
        for item in self.iterable:
            yield item
            self.n += 1
            now = time.perf_counter()
            if self.enabled and now - self._last >= self.interval:
                self._last = now
                self._draw(now, final=False)
        if self.enabled:
            self._draw(time.perf_counter(), final=True)

    def _draw(self, now: float, final: bool) -> None:
        elapsed = now - self._start
        rate = self.n / elapsed if elapsed > 0 else 0.0
        count = f"{self.n}/{self.total}" if self.total else f"{self.n}"
        eta = ""
        if self.total and rate > 0 and not final:
            eta = f" eta {(self.total - self.n) / rate:5.0f}s"
        extra = " ".join(f"{k}={_fmt(v)}" for k, v in self.fields.items())
        line = f"{self.desc} {count} [{elapsed:5.0f}s, {rate:6.2f} it/s{eta}] {extra}".rstrip()
        if self.tty:
            self.stream.write("\r\033[K" + line + ("\n" if final else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()


def _fmt(v: object) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)
