"""Checks on a model file before any engine parses it.

A model is data from somewhere else. Before ONNX Runtime sees an ``.onnx`` file, edgeseg reads its
protobuf structure itself (no tensors are decoded) and refuses:

- special files (FIFOs, devices, sockets) that would block or stream forever, and unreadable paths;
- external data that leaves the model's folder: absolute paths, ``..`` components, symlinks or
  hard links pointing elsewhere (the path-traversal family of CVE-2022-25882 / CVE-2024-27318);
- external data whose offset + length runs past its file, whose length disagrees with the
  tensor's shape and type, or whose entry repeats a key;
- tensors whose declared size overflows or exceeds a budget (default 4 GiB in all);
- operators from custom domains (a custom op is native code), unless the user allows them.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path

from .. import defaults
from ..errors import InputFileError, ModelError
from .onnx_graph import _fields

#: Operator domains ONNX Runtime implements itself.
STANDARD_DOMAINS = frozenset({"", "ai.onnx", "ai.onnx.ml", "ai.onnx.preview", "ai.onnx.preview.training",
                              "ai.onnx.training", "com.microsoft", "com.microsoft.nchwc", "com.microsoft.experimental"})
#: Most tensor bytes (inline + external) a model may declare, unless told otherwise.
DEFAULT_BUDGET = defaults.MODEL_BYTES_BUDGET
#: Bytes per element of ONNX TensorProto.DataType values.
_ITEMSIZE = {1: 4, 2: 1, 3: 1, 4: 2, 5: 2, 6: 4, 7: 8, 9: 1, 10: 2, 11: 8, 12: 4, 13: 8, 14: 8, 15: 16, 16: 2,
             17: 1, 18: 1, 19: 1, 20: 1}
_MAX_DEPTH = 16  # nested subgraphs (If / Loop bodies)


def check_path(path: str | Path, what: str = "model") -> Path:
    """``path`` exists, is a regular file or a folder, and is readable; else a clear error."""
    p = Path(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        raise InputFileError(f"{what} not found: {p}; check the path") from None
    except OSError as e:
        raise InputFileError(f"cannot read {what} {p}: {e.strerror}; check the path and its permissions") from None
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
        kind = "a FIFO" if stat.S_ISFIFO(st.st_mode) else "a device" if stat.S_ISCHR(st.st_mode) or \
            stat.S_ISBLK(st.st_mode) else "a socket" if stat.S_ISSOCK(st.st_mode) else "not a regular file"
        raise InputFileError(f"{what} {p} is {kind}; give a model file")
    if not os.access(p, os.R_OK):
        raise InputFileError(f"{what} {p} is not readable by this user (permission denied); fix its permissions "
                             "or run as a user who can read it")
    return p


def check_onnx(path: str | Path, allow_custom_ops: bool = False, budget: int = DEFAULT_BUDGET) -> None:
    """Refuse an ONNX file whose structure is unsafe (see the module docstring)."""
    p = check_path(path)
    if p.is_dir():
        raise InputFileError(f"{p} is a folder; give the .onnx file")
    size = p.stat().st_size
    if size == 0:
        raise ModelError(f"{str(p)!r} is empty (0 bytes), not a valid ONNX model; re-export it")
    data = p.read_bytes()
    try:
        model = list(_fields(memoryview(data)))
    except ValueError:
        raise ModelError(f"{str(p)!r} is not a valid ONNX model (its protobuf structure is broken: truncated or "
                         "not an ONNX file); re-export it") from None
    graphs = [v for f, w, v in model if f == 7 and w == 2]
    if not graphs:
        raise ModelError(f"{str(p)!r} is not a valid ONNX model (no graph was found); re-export it")
    domains: set = set()  # the domains nodes actually use (opset imports alone may list more)
    state = _State(p, budget)
    try:
        for g in graphs:
            _walk_graph(g, state, domains, 0)
    except ValueError:
        raise ModelError(f"{str(p)!r} is not a valid ONNX model (its graph is malformed); re-export it") from None
    custom = sorted(d for d in domains if d not in STANDARD_DOMAINS)
    if custom and not allow_custom_ops:
        raise ModelError(f"{p} uses operators from custom domain(s) {custom}: a custom operator is native code, "
                         "so edgeseg does not load it by default; if you trust this file and have its operator "
                         f"library, set {defaults.ALLOW_CUSTOM_OPS_ENV}=1")


class _State:
    def __init__(self, path: Path, budget: int) -> None:
        self.path = path
        self.folder = path.parent.resolve()
        self.budget = budget
        self.total = 0


def _walk_graph(graph: memoryview, state: _State, domains: set, depth: int) -> None:
    if depth > _MAX_DEPTH:
        raise ModelError(f"{state.path}: subgraphs nested deeper than {_MAX_DEPTH}; refusing the model")
    for f, w, v in _fields(graph):
        if w != 2:
            continue
        if f == 5:  # initializer
            _check_tensor(v, state)
        elif f == 1:  # node: its domain and attribute subgraphs / tensors
            for nf, nw, nv in _fields(v):
                if nf == 7 and nw == 2:
                    domains.add(bytes(nv).decode("utf-8", "replace"))
                elif nf == 5 and nw == 2:
                    for af, aw, av in _fields(nv):
                        if aw != 2:
                            continue
                        if af in (6, 11):  # g, graphs
                            _walk_graph(av, state, domains, depth + 1)
                        elif af in (5, 10):  # t, tensors
                            _check_tensor(av, state)


def _ints(v: memoryview) -> list[int]:
    from .onnx_graph import _varint

    out, i = [], 0
    while i < len(v):
        x, i = _varint(v, i)
        out.append(x)
    return out


def _check_tensor(t: memoryview, state: _State) -> None:
    dims: list[int] = []
    dtype, name, external, location = 0, "", [], 0
    raw = 0
    for f, w, v in _fields(t):
        if f == 1:
            if w not in (0, 2):
                raise ValueError("dims of the wrong wire type")
            dims += _ints(v) if w == 2 else [v]
        elif f == 2 and w == 0:
            dtype = v
        elif f == 8 and w == 2:
            name = bytes(v).decode("utf-8", "replace")
        elif f == 9 and w == 2:
            raw = len(v)
        elif f == 13 and w == 2:
            kv = {kf: bytes(kval).decode("utf-8", "replace") for kf, kw, kval in _fields(v) if kw == 2}
            external.append((kv.get(1, ""), kv.get(2, "")))
        elif f == 14 and w == 0:
            location = v
    count = 1
    for d in dims:
        if d < 0 or d >= 1 << 62:
            raise ModelError(f"{state.path}: tensor {name!r} has an invalid dimension {d}; refusing the model")
        count *= d
        if count > state.budget:
            raise ModelError(f"{state.path}: tensor {name!r} declares {dims} elements, more than the budget of "
                             f"{state.budget} bytes; refusing the model")
    nbytes = count * _ITEMSIZE.get(dtype, 1)
    state.total += max(nbytes, raw)
    if state.total > state.budget:
        raise ModelError(f"{state.path}: the model's tensors exceed the budget of {state.budget >> 20} MiB; refusing it")
    if location == 1 or external:
        _check_external(name, dict(_unique(external, name, state)), nbytes if dtype in _ITEMSIZE else None, state)


def _unique(entries: list[tuple[str, str]], name: str, state: _State) -> list[tuple[str, str]]:
    keys = [k for k, _ in entries]
    dup = sorted({k for k in keys if keys.count(k) > 1})
    if dup:
        raise ModelError(f"{state.path}: tensor {name!r} repeats external-data key(s) {dup}; refusing the model")
    return entries


def _check_external(name: str, kv: dict[str, str], nbytes: int | None, state: _State) -> None:
    loc = kv.get("location", "")
    where = f"{state.path}: tensor {name!r} keeps its data in {loc!r}"
    if not loc:
        raise ModelError(f"{state.path}: tensor {name!r} is marked external but names no file; refusing the model")
    rel = Path(loc)
    if not rel.parts or "\0" in loc:
        raise ModelError(f"{where}, which is not a file name; refusing the model")
    if rel.is_absolute() or loc.startswith(("/", "\\")) or ":" in rel.parts[0] or ".." in rel.parts or \
            "\\.." in loc or "../" in loc.replace("\\", "/"):
        raise ModelError(f"{where}, a path outside the model's folder; external data must sit beside the model")
    target = state.folder / rel
    real = Path(os.path.realpath(target))
    if real != state.folder and state.folder not in real.parents:
        raise ModelError(f"{where}, which resolves outside the model's folder (a symlink?); refusing the model")
    try:
        st = os.stat(real)
    except OSError:
        raise ModelError(f"{where}, which does not exist beside the model; copy it along with the model") from None
    if not stat.S_ISREG(st.st_mode):
        raise ModelError(f"{where}, which is not a regular file; refusing the model")
    if st.st_nlink > 1:
        raise ModelError(f"{where}, which is a hard link (it may be another file's data); copy the data instead")
    try:
        offset = int(kv.get("offset", "0") or 0)
        length = int(kv["length"]) if kv.get("length") not in (None, "") else st.st_size - offset
    except ValueError:
        raise ModelError(f"{where} at a non-numeric offset/length; refusing the model") from None
    if offset < 0 or length < 0 or offset + length > st.st_size:
        raise ModelError(f"{where} at bytes {offset}..{offset + length}, past the file's end ({st.st_size} bytes): "
                         "the file is truncated or tampered with")
    if nbytes is not None and length != nbytes:
        raise ModelError(f"{where}: {length} bytes, but its shape and type need {nbytes}; refusing the model")
