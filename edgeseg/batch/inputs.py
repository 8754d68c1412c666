"""Turn the inputs of ``edgeseg batch`` into recordings: one :class:`Recording` per video file,
image folder, image glob or other recording (a ROS 2 bag folder, ...), each with a unique output
name and a fingerprint of its content on disk (size and modification times).

Inputs may be video files, ROS 2 recordings (rosbag2 folders, .mcap/.db3 files), folders (a
folder of images is one recording; a folder of videos and bags is each of them), glob patterns (a glob of images is one recording; otherwise each match), and
text files (``.txt``/``.list``) naming one input per line (blank lines and ``#`` comments are
ignored; relative paths are relative to the list file).
"""
from __future__ import annotations

import glob as _glob
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from .._io import IMAGE_SUFFIXES, VIDEO_SUFFIXES
from ..errors import InputFileError
from ..pipeline.sources.rosbag import is_recording as is_bag

#: Suffixes of text files that list inputs, one a line.
LIST_SUFFIXES = (".txt", ".list", ".lst")
_GLOB_CHARS = re.compile(r"[*?\[]")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_MAX_LIST_DEPTH = 8


@dataclass(frozen=True)
class Recording:
    """One task of a batch: ``spec`` goes to ``open_source`` in a worker; outputs go to
    ``OUT/<name>/``. ``fingerprint`` changes when the input's files change (size, mtime);
    ``missing`` is set when the input does not exist (the recording then fails with that reason)."""

    name: str
    spec: str
    fingerprint: str
    missing: bool = False
    size: int = 0  #: bytes on disk (the larger, the earlier it is scheduled)


def _is_image(p: Path) -> bool:
    return p.suffix.lower() in IMAGE_SUFFIXES


def _is_video(p: Path) -> bool:
    return p.suffix.lower() in VIDEO_SUFFIXES


def _fingerprint(paths: Iterable[Path]) -> str:
    h = hashlib.sha256()
    for p in paths:
        st = p.stat()
        h.update(f"{p.name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def _tree_files(folder: Path) -> list[Path]:
    """Every file under ``folder`` (sorted), for the fingerprint of a folder recording."""
    return sorted(Path(root) / f for root, _, files in os.walk(folder) for f in files)


def _expand_one(text: str, base: Path, depth: int) -> list[tuple[str, list[Path], bool]]:
    """(spec, files to fingerprint, missing) triples for one input."""
    if "://" in text:  # a URL: the sources decide (live streams are refused when processed)
        return [(text, [], False)]
    p = Path(text).expanduser()
    if not p.is_absolute():
        p = base / p
    if _GLOB_CHARS.search(text):
        matches = sorted(Path(m) for m in _glob.glob(str(p)))
        if not matches:
            raise InputFileError(f"glob {text!r} matches nothing; check the pattern (quote it in the shell)")
        images = [m for m in matches if m.is_file() and _is_image(m)]
        if images and len(images) == len(matches):
            return [(str(p), images, False)]
        if images:
            raise InputFileError(f"glob {text!r} matches images and other files; an image glob is one "
                                 "recording: give the images and the other inputs as separate patterns")
        return [t for m in matches for t in _expand_one(str(m), base, depth)]
    if not p.exists():
        return [(str(p), [], True)]
    if p.is_file() and p.suffix.lower() in LIST_SUFFIXES:
        if depth >= _MAX_LIST_DEPTH:
            raise InputFileError(f"list file {p} nests lists more than {_MAX_LIST_DEPTH} deep (a loop?)")
        try:
            lines = p.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise InputFileError(f"cannot read the list file {p}: {e}") from None
        out = []
        for line in lines:
            line = line.strip()
            if line and not line.startswith("#"):
                out.extend(_expand_one(line, p.parent, depth + 1))
        return out
    if p.is_dir():
        if is_bag(p):
            return [(str(p), _tree_files(p), False)]
        entries = sorted(p.iterdir())
        if any(e.is_file() and _is_image(e) for e in entries):
            return [(str(p), [e for e in entries if e.is_file() and _is_image(e)], False)]
        inner = [e for e in entries if (e.is_file() and _is_video(e)) or is_bag(e)]
        if inner:
            return [(str(e), _tree_files(e) if e.is_dir() else [e], False) for e in inner]
        return [(str(p), _tree_files(p), False)]  # another kind of recording: a source decides
    return [(str(p), [p], False)]


def _base_name(spec: str) -> str:
    p = Path(spec)
    if _GLOB_CHARS.search(spec):
        parts = [q for q in p.parts if not _GLOB_CHARS.search(q)]
        p = Path(*parts) if parts else Path("images")
        name = p.name
    else:
        name = p.stem if p.is_file() or p.suffix.lower() in VIDEO_SUFFIXES else p.name
    name = _UNSAFE.sub("_", name).strip("_") or "recording"
    # neither hidden (the staging folder is .partial) nor the batch summary's file name
    return "_" + name if name.startswith(".") or name == "summary.json" else name


def expand_inputs(inputs: Iterable[str | os.PathLike]) -> list[Recording]:
    """The recordings named by ``inputs``, in order, each once, with unique output names (a name
    shared by several inputs gets ``-`` and 8 hex digits of its path appended).

    Raises:
        InputFileError: a glob matches nothing, a list file is unreadable, or nothing is given.
    """
    triples: list[tuple[str, list[Path], bool]] = []
    seen: set[str] = set()
    for item in inputs:
        for spec, files, missing in _expand_one(os.fspath(item), Path.cwd(), 0):
            key = spec if "://" in spec else os.path.abspath(spec)
            if key not in seen:
                seen.add(key)
                triples.append((key, files, missing))
    if not triples:
        raise InputFileError("no recordings to process; give video files, image folders, globs or list files")
    names = [_base_name(spec) for spec, _, _ in triples]
    counts: dict[str, int] = {}
    for n in names:
        counts[n] = counts.get(n, 0) + 1
    out = []
    for (spec, files, missing), name in zip(triples, names):
        if counts[name] > 1:
            name = f"{name}-{hashlib.sha1(spec.encode()).hexdigest()[:8]}"
        size = 0 if missing else sum(p.stat().st_size for p in files)
        out.append(Recording(name, spec, "" if missing else _fingerprint(files), missing, size))
    return out
