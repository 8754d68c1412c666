"""The registry of source kinds: each kind is one module that registers an opener.

An opener takes the user's spec (and options) and returns a :class:`Source`, or None when the
spec is not of its kind. :func:`open_source` asks the kinds in priority order (lowest first);
the first that answers wins. A new kind of source is a new module with one
:func:`register_source` call, imported by the package ``__init__``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ...errors import SourceError
from .base import Source

Opener = Callable[..., "Source | None"]


@dataclass(frozen=True)
class SourceKind:
    """One kind of source: its name, opener, whether it is live, and the options it takes."""

    name: str
    open: Opener
    priority: int
    live: bool = False
    options: tuple[str, ...] = ()
    help: str = ""


_KINDS: dict[str, SourceKind] = {}


def register_source(name: str, *, priority: int, live: bool = False, options: tuple[str, ...] = (),
                    help: str = "") -> Callable[[Opener], Opener]:
    """Decorator: register ``opener(spec, **options) -> Source | None`` as source kind ``name``."""

    def deco(opener: Opener) -> Opener:
        _KINDS[name] = SourceKind(name, opener, priority, live, tuple(options), help)
        return opener

    return deco


def source_kinds() -> list[SourceKind]:
    """The registered kinds, in the order :func:`open_source` tries them."""
    return sorted(_KINDS.values(), key=lambda k: k.priority)


def open_source(spec: "str | int | Path | Source", *, lenient: bool = False, **options: Any) -> Source:
    """Open a source from a spec; ``options`` go to the kind that opens it.

    ``spec`` is a camera index or ``/dev/videoN``, a stream URL (``rtsp://``, ``http(s)://`` ...),
    ``synthetic[:FPS]``, a video file, an image, a folder of images or a glob; see
    :func:`source_kinds` for every registered kind. A :class:`Source` is returned as is.
    ``lenient=True`` drops options the chosen kind does not take (the CLI passes all of its
    source options); otherwise they are an error.
    """
    if isinstance(spec, Source):
        return spec
    for kind in source_kinds():
        unknown = sorted(set(options) - set(kind.options))
        # Ask the kind with the options it takes: it may decline the spec either way.
        taken = {k: v for k, v in options.items() if k in kind.options}
        src = kind.open(spec if not isinstance(spec, Path) else str(spec), **taken) if kind.options \
            else kind.open(spec if not isinstance(spec, Path) else str(spec))
        if src is None:
            continue
        if unknown and not lenient:
            src.close()
            raise SourceError(f"options {unknown} do not apply to {kind.name} sources ({src.describe()}); "
                              f"they take {list(kind.options) or 'no options'}")
        return src
    names = "; ".join(f"{k.name}: {k.help}" for k in source_kinds())
    raise SourceError(f"no kind of source matches {spec!r}; known kinds - {names}")
