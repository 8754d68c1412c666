"""Read the final operator of each ONNX output without the ``onnx`` package.

A few dozen lines of protobuf wire-format reading (ModelProto.graph -> GraphProto.node ->
NodeProto input/output/op_type) so that the runtime, which must not need ``onnx`` or torch, can
tell for example a graph ending in ``Sigmoid`` (probabilities) from one ending in a ``Conv``
(logits). Tensors are skipped, never decoded. Anything unreadable yields an empty answer: the
callers then ask the user instead of guessing.
"""
from __future__ import annotations

import mmap
from pathlib import Path

#: Ops that pass values through unchanged in range; the search looks past them.
TRANSPARENT = frozenset({"Identity", "Reshape", "Transpose", "Squeeze", "Unsqueeze", "Flatten", "Cast",
                         "Resize", "Upsample", "Slice", "Gather"})


def _varint(buf: memoryview, i: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        if i >= len(buf) or shift > 63:
            raise ValueError("truncated varint")
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, i
        shift += 7


def _fields(buf: memoryview):
    """Yield (field number, wire type, value) of one message; LEN values as memoryviews."""
    i, n = 0, len(buf)
    while i < n:
        key, i = _varint(buf, i)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(buf, i)
        elif wire == 1:
            value, i = None, i + 8
        elif wire == 2:
            length, i = _varint(buf, i)
            if i + length > n:
                raise ValueError("truncated field")
            value, i = buf[i:i + length], i + length
        elif wire == 5:
            value, i = None, i + 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
        yield field, wire, value


def _nodes(model: memoryview) -> list[tuple[str, list[str], list[str]]]:
    """(op_type, inputs, outputs) of every node of the main graph, in order."""
    graph = next((v for f, w, v in _fields(model) if f == 7 and w == 2), None)
    if graph is None:
        return []
    nodes = []
    for f, w, v in _fields(graph):
        if f != 1 or w != 2:
            continue
        op, ins, outs = "", [], []
        for nf, nw, nv in _fields(v):
            if nw != 2:
                continue
            if nf == 1:
                ins.append(bytes(nv).decode("utf-8", "replace"))
            elif nf == 2:
                outs.append(bytes(nv).decode("utf-8", "replace"))
            elif nf == 4:
                op = bytes(nv).decode("utf-8", "replace")
        nodes.append((op, ins, outs))
    return nodes


def final_ops(path: str | Path, outputs: list[str]) -> dict[str, str]:
    """For each name in ``outputs``, the op type that computes it, looking past value-preserving
    ops (:data:`TRANSPARENT`); missing where the file cannot be read or the name is not found."""
    try:
        with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            nodes = _nodes(memoryview(mm))
    except (OSError, ValueError, BufferError):
        return {}
    producer = {o: (op, ins) for op, ins, outs in nodes for o in outs}
    found: dict[str, str] = {}
    for name in outputs:
        seen, cur = set(), name
        while cur in producer and cur not in seen:
            seen.add(cur)
            op, ins = producer[cur]
            if op not in TRANSPARENT or not ins:
                found[name] = op
                break
            cur = ins[0]
    return found
