"""Store edgeseg's metadata inside a model exported by another tool.

``edgeseg export FOREIGN.onnx [facts] --out model.onnx`` recognises the file through the output
conventions (:mod:`edgeseg.runtime.conventions`) with the facts the user gives once, writes a copy
whose ``metadata_props`` hold the resulting ModelMeta (the tool's own keys are kept), and gates
it: the copy, loaded with no facts, must give exactly what the original with the facts gives on
synthetic frames (labels, or detections and masks). A copy that disagrees is kept as
``*.rejected.onnx`` beside its report; nothing appears at ``--out``.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from .. import defaults
from .._io import write_json
from ..errors import ExportError, InputFileError

#: Synthetic frame sizes the copy is compared on (height, width).
FRAME_SIZES = ((360, 640), (480, 480))


def has_edgeseg_metadata(path: str | Path) -> bool:
    """Whether the ONNX file at ``path`` already carries edgeseg's ModelMeta."""
    from ..runtime.backends import open_backend

    return open_backend(path, "onnxruntime").meta is not None


def embed_metadata(source: str | Path, out: str | Path, facts: dict[str, Any] | None = None,
                   n_images: int = defaults.PARITY_IMAGES, verbose: bool = False) -> dict[str, Any]:
    """Write ``out``: ``source`` with the ModelMeta recognised from it (plus ``facts``) stored
    inside, after checking that the copy decodes exactly like the original. Returns the report
    (also written to ``out`` with suffix ``.parity.json``)."""
    import onnx

    from ..runtime import load

    source, out = Path(source), Path(out)
    if not source.is_file():
        raise InputFileError(f"model not found: {source}")
    if out.suffix.lower() != ".onnx":
        raise ExportError(f"--out must be an .onnx file, got {out}")
    facts = {k: v for k, v in (facts or {}).items() if v is not None}
    original = load(source, "onnxruntime", **facts)  # recognition errors name what is missing
    meta = original.meta
    meta = meta.replace(extra={**meta.extra, "source": f"edgeseg metadata stored by `edgeseg export` from {source.name} "
                                                      f"(recognised as {meta.extra.get('convention', 'edgeseg')})"})
    model = onnx.load(str(source))
    props = {p.key: p.value for p in model.metadata_props}
    props[defaults.META_KEY] = meta.to_json()
    del model.metadata_props[:]
    for k, v in props.items():
        model.metadata_props.add(key=k, value=v)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".onnx", dir=out.parent, prefix=f".{out.stem}.")
    os.close(fd)
    try:
        onnx.save(model, tmp)
        report = _compare(original, load(tmp, "onnxruntime"), n_images)
        report.update({"source": str(source), "out": str(out), "convention": meta.extra.get("convention", "edgeseg"),
                       "facts": {k: (list(v) if isinstance(v, tuple) else v) for k, v in facts.items()},
                       "meta": meta.to_dict()})
        report_path = out.with_suffix(".parity.json")
        if not report["passed"]:
            rejected = out.with_suffix(".rejected.onnx")
            os.replace(tmp, rejected)
            write_json(report_path, report)
            raise ExportError(f"the copy of {source} with edgeseg metadata decodes differently from the original "
                              f"({report['summary']}); kept as {rejected}, report {report_path}")
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
        write_json(report_path, report)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    if verbose:
        print(f"wrote {out}: {meta.extra.get('convention', 'edgeseg')} model, {meta.task}, {meta.num_classes} classes, "
              f"input {meta.input_size[0]}x{meta.input_size[1]}; metadata stored inside\n  {report['summary']}\n"
              f"  parity report: {out.with_suffix('.parity.json')}")
    return report


def _compare(a: Any, b: Any, n_images: int) -> dict[str, Any]:
    """Both predictors on the same synthetic frames: labels, or detections and masks, equal."""
    from ..data.synthetic import generate

    same = total = 0
    for i in range(max(1, n_images)):
        h, w = FRAME_SIZES[i % len(FRAME_SIZES)]
        frame = generate(i, seed=1000, size=(h, w)).image
        ra, rb = a(frame), b(frame)
        if a.meta.task == "semantic":
            same += int(np.count_nonzero(ra.labels == rb.labels))
            total += ra.labels.size
        else:
            total += max(len(ra.scores), len(rb.scores))
            if len(ra.scores) == len(rb.scores):
                ok = (np.array_equal(ra.class_ids, rb.class_ids) and np.allclose(ra.boxes, rb.boxes)
                      and np.array_equal(ra.masks.to_dense(), rb.masks.to_dense()))
                same += len(ra.scores) if ok else 0
    agreement = same / total if total else 1.0
    passed = agreement >= 1.0
    what = "labels" if a.meta.task == "semantic" else "detections and masks"
    return {"n_images": max(1, n_images), "agreement": agreement, "passed": passed,
            "summary": f"parity {'PASS' if passed else 'FAIL'}: {what} identical on {100 * agreement:.3f}% "
                       f"({max(1, n_images)} synthetic frames)"}
