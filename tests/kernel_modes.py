"""Running a C++ kernel in every (thread count, SIMD) mode: results must not depend on them."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable

from edgeseg import _C, ops


@contextmanager
def _setting(get: Callable[[], Any], put: Callable[[Any], None], value: Any):
    old = get()
    put(value)
    try:
        yield
    finally:
        put(old)


def threads(n: int):
    """The C++ kernels use ``n`` threads inside the block."""
    return _setting(ops.get_num_threads, ops.set_num_threads, n)


def simd(on: bool):
    """The C++ kernels use (or skip) their SIMD paths inside the block."""
    return _setting(_C.get_simd, _C.set_simd, on)


def modes() -> list[tuple[int, bool]]:
    """(threads, simd) combinations every kernel must agree across."""
    out = [(1, False), (3, False)]
    if _C.simd_supported():
        out += [(1, True), (3, True)]
    return out


def in_every_mode(fn: Callable[[], Any]) -> list[Any]:
    """fn's result under each of :func:`modes`."""
    results = []
    for n, s in modes():
        with threads(n), simd(s):
            results.append(fn())
    return results
