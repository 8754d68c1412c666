"""A named registry: the one shape shared by the registries of backends, export formats and
track similarities (an entry per name, in registration order, and a lookup error that lists the
valid names)."""
from __future__ import annotations

from typing import Dict, TypeVar

from .errors import EdgesegError

T = TypeVar("T")


class Registry(Dict[str, T]):
    """``name -> entry`` in registration order; a plain dict for reading.

    Args:
        what: what an entry is, for messages ("backend", "export format", ...).
        error: the EdgesegError subclass an unknown name raises.
        hint: appended to the unknown-name message (e.g. "(or 'auto')").
    """

    def __init__(self, what: str, error: type[EdgesegError] = EdgesegError, hint: str = "") -> None:
        super().__init__()
        self.what, self.error, self.hint = what, error, hint

    def add(self, name: str, entry: T) -> T:
        """Register ``entry`` under ``name``; a name may be registered once (ValueError)."""
        if not name:
            raise ValueError(f"a {self.what} needs a name")
        if name in self and self[name] is not entry:
            raise ValueError(f"{self.what} name {name!r} is already registered")
        self[name] = entry
        return entry

    def lookup(self, name: str) -> T:
        """The entry registered as ``name``; ``error`` listing the valid names otherwise."""
        try:
            return self[name]
        except KeyError:
            valid = ", ".join(sorted(self))
            raise self.error(f"unknown {self.what} {name!r}; valid: {valid}{' ' + self.hint if self.hint else ''}") \
                from None
