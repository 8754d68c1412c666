"""The backend registry: backends by name, and the suffix map that ``backend="auto"`` uses."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ...errors import BackendError, InputFileError, ModelError
from ...registry import Registry
from .base import Backend

#: name -> Backend subclass
BACKENDS: Registry[type[Backend]] = Registry("backend", BackendError, hint="(or 'auto')")
#: suffix (".onnx", ".safetensors") or DIRECTORY -> backend name
SUFFIXES: dict[str, str] = {}
#: Key in SUFFIXES standing for "the path is a directory" (a checkpoint directory).
DIRECTORY = "<dir>"


def register_backend(cls: type[Backend]) -> type[Backend]:
    """Class decorator: add a Backend subclass to the registry under ``cls.name``."""
    BACKENDS.add(cls.name, cls)
    for s in cls.suffixes:
        SUFFIXES.setdefault(s.lower(), cls.name)
    return cls


def list_backends(available_only: bool = False) -> list[str]:
    """Registered backend names (only those whose engine is importable, if asked)."""
    return sorted(n for n, c in BACKENDS.items() if not available_only or c.is_available())


def available_backends() -> dict[str, bool]:
    """Every registered backend name -> whether its engine is importable here."""
    return {n: BACKENDS[n].is_available() for n in sorted(BACKENDS)}


def get_backend(name: str) -> type[Backend]:
    """The Backend class registered under ``name``; BackendError listing valid names otherwise."""
    return BACKENDS.lookup(name)


def _suffix_key(path: Path) -> str:
    """The SUFFIXES key of ``path``. A directory whose model files (files with a registered
    suffix) all belong to one backend that opens directories (``opens_directories = True``)
    counts as that suffix: an OpenVINO export directory (model.xml + model.bin) resolves to
    OpenVINO, while a checkpoint directory (model.safetensors + config.json) stays a DIRECTORY."""
    if not path.is_dir():
        return path.suffix.lower()
    owners = {s: SUFFIXES[s] for s in {f.suffix.lower() for f in path.iterdir() if f.is_file()}
              if s in SUFFIXES}
    if len(set(owners.values())) == 1:
        suffix, owner = next(iter(owners.items()))
        if getattr(BACKENDS[owner], "opens_directories", False):
            return suffix
    return DIRECTORY


def resolve_backend(path: str | Path, backend: str = "auto") -> type[Backend]:
    """The Backend class for ``path``: ``backend`` by name, or by the path's suffix for "auto".

    Raises InputFileError when ``path`` does not exist, ModelError when "auto" cannot tell the
    format, BackendError for an unknown or unavailable backend.
    """
    p = Path(path)
    if not p.exists():
        raise InputFileError(f"model file not found: {str(p)!r}; check the path")
    if backend == "auto":
        key = _suffix_key(p)
        if key not in SUFFIXES:
            known = ", ".join(f"{k} -> {v}" for k, v in sorted(SUFFIXES.items()))
            raise ModelError(
                f"cannot tell which backend runs {str(p)!r} (suffix {key!r}); known formats: "
                f"{known}; rename the file or pass backend=<name> from {list_backends()}"
            )
        backend = SUFFIXES[key]
    cls = get_backend(backend)
    if not cls.is_available():
        raise BackendError(f"backend {cls.name!r} is not available here: {cls.install_hint}")
    return cls


def open_backend(path: str | Path, backend: str = "auto", **options: Any) -> Backend:
    """Load ``path`` with the chosen backend (see :func:`resolve_backend`).

    Options the backend does not declare raise BackendError (never silently ignored).
    """
    from ..model_files import check_path

    if Path(path).exists() or Path(path).is_symlink():
        check_path(path)  # special files (FIFOs, devices) and unreadable paths: a clear error, never a hang
    cls = resolve_backend(path, backend)
    unknown = sorted(set(options) - set(cls.options))
    if unknown:
        raise BackendError(
            f"backend {cls.name!r} does not take option(s) {unknown}; "
            f"it accepts {list(cls.options) or 'no options'}"
        )
    return cls(path, **options)
