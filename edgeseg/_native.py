"""Calling the C++ core (``edgeseg._C``): shared by :mod:`edgeseg.ops` and :mod:`edgeseg.masks`."""
from __future__ import annotations

from typing import Any, Callable

from .errors import ArrayError


def call(fn: Callable[..., Any], *args: Any) -> Any:
    """Call a C++ binding, turning its ValueError into ArrayError with the same message."""
    try:
        return fn(*args)
    except ArrayError:
        raise
    except ValueError as e:
        raise ArrayError(str(e)) from None
