"""What the deployment exporters (OpenVINO, ONNX INT8, TensorRT, LiteRT, ncnn) share.

Each export opens its source (:func:`open_source`: a checkpoint, exported to ONNX first, or an
edgeseg ONNX file) with the reference backend it is gated against, builds its artefact into
:func:`staged` files beside the output, and ends with :func:`finish`: the gate of
:mod:`edgeseg.export.accuracy` (settings: :class:`~edgeseg.export.accuracy.GateSettings`), the
report, and the move of each file to its final name, or to its ``*.rejected.*`` name when the
gate fails.
"""
from __future__ import annotations

import os
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

from .. import __version__
from .._io import FILE_MODE, write_json
from ..errors import ExportError
from ..geometry import parse_size
from ..meta import ModelMeta
from .accuracy import GateResult, GateSettings, run_gate


# ------------------------------------------------------------------------------------- sources
@dataclass
class Source:
    """What a deployment export starts from: an FP32 ONNX with edgeseg metadata, and the model
    the export is gated against (the PyTorch checkpoint when there is one)."""

    path: Path  # what the user passed
    kind: str  # "checkpoint" or "onnx"
    onnx: Path  # the FP32 ONNX the deployment artefact is built from
    meta: ModelMeta
    reference: Any  # a runtime Backend

    @property
    def reference_name(self) -> str:
        return "PyTorch checkpoint" if self.kind == "checkpoint" else "FP32 ONNX (ONNX Runtime)"


def is_checkpoint(path: Path) -> bool:
    return path.is_dir() and (path / "config.json").is_file()


def open_source(
    source: str | Path,
    workdir: str | Path,
    input_size: int | tuple[int, int] | None = None,
    dynamic: bool | None = None,
    opset: int | None = None,
    gate: GateSettings = GateSettings(),
    static: str | None = None,
) -> Source:
    """Open ``source``: a checkpoint directory is first exported to ONNX in ``workdir`` (with
    the strict ONNX parity gate of ``gate``) and gated against PyTorch; an ``.onnx`` written by
    ``edgeseg export`` is used as is and gated against itself on ONNX Runtime (then
    ``input_size``, ``dynamic`` and ``opset`` cannot change and must be left unset or match).
    ``static``: the name of a format that builds static shapes only; a dynamic request or
    source is then refused."""
    from ..runtime.backends import open_backend

    if static and dynamic:
        raise ExportError(f"--format {static} builds static shapes: drop --dynamic (choose the size with --imgsz)")
    src = Path(source)
    if not src.exists():
        raise ExportError(f"export source not found: {str(src)!r}; give a checkpoint directory or an .onnx file")
    if is_checkpoint(src) or (src.is_file() and src.suffix == ".safetensors"):
        from .onnx import export_onnx

        ckpt = src if src.is_dir() else src.parent
        kw: dict[str, Any] = {} if opset is None else {"opset": opset}
        rep = export_onnx(ckpt, Path(workdir) / "model.onnx", dynamic=bool(dynamic), input_size=input_size,
                          parity_images=gate.parity_images, min_agreement=gate.min_agreement,
                          seed=gate.seed, verbose=False, **kw)
        return Source(src, "checkpoint", rep.onnx_path, rep.meta, open_backend(ckpt, "torch", device="cpu"))
    if src.suffix.lower() != ".onnx":
        raise ExportError(f"cannot export from {str(src)!r}: give a checkpoint directory (with config.json) "
                          "or an .onnx file written by `edgeseg export`")
    ref = open_backend(src, "onnxruntime", device="cpu")
    meta = ref.meta
    if meta is None:
        raise ExportError(f"{str(src)!r} carries no edgeseg metadata; export it from its checkpoint with "
                          "`edgeseg export CKPT --format onnx` first (or export from the checkpoint directly)")
    fixed = []
    if input_size is not None and parse_size(input_size, "input_size", ExportError) != meta.input_size:
        fixed.append(f"input size {meta.input_size}")
    if dynamic is not None and bool(dynamic) != meta.dynamic:
        fixed.append(f"{'dynamic' if meta.dynamic else 'static'} shapes")
    if opset is not None and opset != meta.extra.get("export", {}).get("opset", opset):
        fixed.append(f"opset {meta.extra['export']['opset']}")
    if fixed:
        raise ExportError(f"{src.name} is already exported with {', '.join(fixed)}; an ONNX source keeps them. "
                          "Export from the checkpoint to change them")
    if static and meta.dynamic:
        raise ExportError(f"{src.name} has dynamic shapes; --format {static} needs static ones: export the ONNX "
                          "without --dynamic (or export from the checkpoint)")
    return Source(src, "onnx", src, meta, ref)


# ------------------------------------------------------------------------------------- the artefact
@dataclass
class DeployReport:
    """What a deployment export (OpenVINO, ONNX INT8, TensorRT, LiteRT, ncnn) produced."""

    format: str  # "openvino", "onnx", "tensorrt", "litert", "ncnn"
    precision: str  # "fp32", "fp16", "int8"
    path: Path  # the artefact (model.xml, model.int8.onnx, model.engine)
    source: Path
    reference: str
    meta: ModelMeta
    size_bytes: int
    seconds: float
    gate: GateResult
    report_path: Path
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.gate.passed

    def to_dict(self) -> dict[str, Any]:
        return {"format": self.format, "precision": self.precision, "path": str(self.path),
                "source": str(self.source), "reference": self.reference, "size_bytes": self.size_bytes,
                "seconds": round(self.seconds, 3), "details": self.details, **self.gate.to_dict(),
                "meta": self.meta.to_dict()}

    def summary(self) -> str:
        m = self.meta
        lines = [f"exported {self.source} -> {self.path} ({self.format} {self.precision}, "
                 f"{self.size_bytes / 1e6:.2f} MB, {self.seconds:.1f} s)",
                 f"  model {m.arch} ({m.task}): {m.num_classes} classes, input {m.input_size[0]}x{m.input_size[1]}"]
        if self.gate.parity is not None:
            text = self.gate.parity.summary()
            if not self.gate.parity_gated:  # below fp32 exact label parity is not expected
                text = text.split(": ", 1)[1].split(", need >=")[0]
                text = f"parity (not gated for {self.precision}): {text}"
            lines.append(f"  {text}")
        lines.append(f"  {self.gate.accuracy.summary()}")
        lines.append(f"  report: {self.report_path}")
        return "\n".join(lines)


def export_meta(meta: ModelMeta, **export: Any) -> ModelMeta:
    """``meta`` as a deployment artefact stores it: this edgeseg version, and ``export`` (format,
    precision, converter versions, ...) merged into ``extra["export"]``."""
    return meta.replace(edgeseg_version=__version__, extra={
        **meta.extra, "export": {**meta.extra.get("export", {}), **export}})


@contextmanager
def staged(final: Path, suffix: str = "", siblings: Sequence[str] = ()) -> Iterator[Path]:
    """An empty temporary file beside ``final`` for an artefact that is gated before it replaces
    anything; on exit it, and its ``siblings`` (its name with those suffixes, e.g. an IR's
    ``.bin``), are removed unless :func:`finish` moved them."""
    fd, name = tempfile.mkstemp(prefix=f".{final.stem}.", suffix=suffix, dir=final.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
    finally:
        for p in (tmp, *(tmp.with_suffix(s) for s in siblings)):
            if p.exists():
                p.unlink()


def finish(source: Source, candidate: Any, gate: GateSettings, files: Sequence[tuple[Path, Path, Path]], *,
           t0: float, verbose: bool = True, hint: str = "", **report: Any) -> DeployReport:
    """Gate ``candidate`` (the staged artefact, opened by its backend) against ``source``, write
    the :class:`DeployReport` (``report``: its fields other than source, reference, gate and
    seconds, which count from ``t0``), then move each ``(temporary, final, rejected)`` file to
    ``final`` when the gate passed, or to ``rejected`` (raising ExportError that says where
    everything is, plus ``hint``: what else to try) when not."""
    result = run_gate(source, candidate, report["precision"], gate)
    rep = DeployReport(source=source.path, reference=source.reference_name, gate=result,
                       seconds=time.perf_counter() - t0, **report)
    write_json(rep.report_path, rep.to_dict())
    passed = rep.passed
    for tmp, final, rejected in files:
        os.chmod(tmp, FILE_MODE)  # as any file the user writes (mkstemp made it private)
        os.replace(tmp, final if passed else rejected)
    if verbose:
        print(rep.summary())
    if not passed:
        kept = ", ".join(str(r) for _, _, r in files)
        raise ExportError(
            f"the {rep.format} {rep.precision} export fails the gate: {'; '.join(rep.gate.reasons())}. "
            f"It was NOT written to {rep.path}; it is kept as {kept} for inspection, details in "
            f"{rep.report_path}. Accept a larger drop with --accept-drop X (API: max_drop=X)"
            + (f", or {hint}" if hint else ""))
    return rep
