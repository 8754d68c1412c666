"""Checkpoint or ONNX -> ncnn (``model.ncnn.param`` + ``model.ncnn.bin``), FP32 or INT8.

Route: the FP32 ONNX that passed the parity gate (a checkpoint is exported to it first) is
rebuilt as a static-shape PyTorch module (:mod:`edgeseg.export.onnx_torch`), traced to
TorchScript and converted by pnnx (PyPI ``pnnx``), ncnn's own converter, whose TorchScript
frontend is its most complete one (its ONNX frontend drops the ``axes`` input of opset-13+
reductions, which silently breaks the semantic models' attention fusion). ncnn files carry no
metadata, so ``model.ncnn.json`` beside them holds the ModelMeta and the blob names and shapes.

INT8 (``int8=True``): ncnn's post-training quantisation lives in its ``ncnn2table`` /
``ncnn2int8`` tools, which neither the ``ncnn`` nor the ``pnnx`` wheel ships (nor Debian), so
:mod:`edgeseg.export.ncnn_int8` writes the same int8 layer format from Python: per-channel int8
convolution weights and one input scale per convolution calibrated on letterboxed frames with
ncnn itself (max-abs calibration; ncnn2table defaults to KL). ncnn's int8 kernels run it.

Every export ends with the accuracy gate (strict parity for FP32, mIoU / mask AP drop always);
a model that fails it is kept as ``model.rejected.ncnn.*`` beside its report.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
import warnings
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from .. import defaults
from ..errors import ExportError
from .accuracy import GateSettings
from .deploy import DeployReport, export_meta, finish, open_source, staged

INSTALL = "pip install ncnn pnnx (or pip install 'edgeseg[export-ncnn]')"
#: Files of one export inside the output directory.
STEM = "model"


def default_dir(source: str | Path, precision: str = "fp32") -> Path:
    """``<source>_ncnn/`` (``_ncnn_int8/``) beside the source."""
    src = Path(source)
    stem = src.with_suffix("") if src.suffix.lower() == ".onnx" else src
    return Path(f"{stem}_ncnn{'' if precision == 'fp32' else '_' + precision}")


def pnnx_executable() -> Path:
    """The pnnx converter binary shipped in the ``pnnx`` wheel."""
    try:
        import pnnx
    except ImportError:
        raise ExportError(f"--format ncnn needs pnnx and ncnn: {INSTALL}") from None
    exe = Path(pnnx.__file__).parent / "pnnx"
    if not exe.is_file():
        raise ExportError(f"the pnnx package has no converter binary at {exe}; reinstall it: pip install -U pnnx")
    return exe


def _convert(onnx_path: Path, meta: Any, work: Path, what: str) -> tuple[Path, Path, dict[str, Any]]:
    """(param, bin, io record) in ``work`` for the ONNX graph."""
    import torch

    from .onnx_torch import load_module

    h, w = meta.input_size
    module = load_module(onnx_path, (h, w), "ncnn", what)
    x = torch.zeros(1, 3, h, w)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer notes on the folded shape arithmetic
        shapes = [list(o.shape) for o in module(x)]
        traced = torch.jit.trace(module, (x,), check_trace=False)
    pt = work / "model.pt"
    traced.save(str(pt))
    param, bin_ = work / f"{STEM}.ncnn.param", work / f"{STEM}.ncnn.bin"
    side = {k: str(work / f"pnnx_side.{k}") for k in ("pnnxparam", "pnnxbin", "pnnxpy", "pnnxonnx", "ncnnpy")}
    cmd = [str(pnnx_executable()), str(pt), f"inputshape=[1,3,{h},{w}]", "fp16=0",
           f"ncnnparam={param}", f"ncnnbin={bin_}", *(f"{k}={v}" for k, v in side.items())]
    try:
        run = subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=600)
    except subprocess.TimeoutExpired:
        raise ExportError(f"pnnx did not finish converting {what} within 10 minutes") from None
    if run.returncode != 0 or not param.is_file() or not bin_.is_file():
        tail = " | ".join((run.stderr or run.stdout).strip().splitlines()[-3:])
        raise ExportError(f"pnnx could not convert {what} (exit {run.returncode}): {tail}")
    outs = _blobs(param, "Output") or _output_blobs(param, len(shapes))
    if len(outs) != len(shapes):
        raise ExportError(f"pnnx produced {len(outs)} outputs for {what}, the graph has {len(shapes)}")
    io = {"input_blob": _input_blob(param), "input_shape": [1, 3, h, w], "outputs": list(meta.output_names),
          "output_blobs": outs, "output_shapes": shapes}
    return param, bin_, io


def _layers(param: Path) -> list[list[str]]:
    lines = param.read_text().splitlines()
    return [ln.split() for ln in lines[2:] if ln.strip()]


def _blobs(param: Path, layer_type: str) -> list[str]:
    return [t[1] for t in _layers(param) if t[0] == layer_type]


def _input_blob(param: Path) -> str:
    found = [t[4 + int(t[2])] for t in _layers(param) if t[0] == "Input"]
    if len(found) != 1:
        raise ExportError(f"the ncnn model has {len(found)} inputs; edgeseg models have one")
    return found[0]


def _output_blobs(param: Path, n: int) -> list[str]:
    """pnnx names the graph outputs out0, out1, ... in order."""
    produced = {b for t in _layers(param) for b in t[4 + int(t[2]):4 + int(t[2]) + int(t[3])]}
    return [f"out{i}" for i in range(n) if f"out{i}" in produced]


def export_ncnn(
    source: str | Path,
    out: str | Path | None = None,
    int8: bool = False,
    calib: str = "synthetic",
    calib_images: int | None = None,
    keep_float: str | list[str] = "first",
    input_size: int | tuple[int, int] | None = None,
    dynamic: bool | None = None,
    opset: int | None = None,
    *,
    threads: int | None = None,
    verbose: bool = True,
    **gate: Any,
) -> DeployReport:
    """Export a checkpoint (or an edgeseg ``.onnx``) to ncnn and gate it.

    Args:
        source: a checkpoint directory, or an ``.onnx`` written by ``edgeseg export``.
        out: output directory (default ``<source>_ncnn/``): ``model.ncnn.param``, ``.bin``,
            ``.json`` (ModelMeta + I/O record) and ``model.parity.json``.
        int8: quantise the convolutions to INT8 (see the module docstring).
        calib, calib_images: INT8 calibration frames (``"synthetic"`` or a folder; default 32).
        keep_float: INT8 layers left in FP32: "first" (default: the convolutions reading the
            image), "none", or ncnn layer names (comma-separated or a list).
        input_size, dynamic, opset: as for ONNX (checkpoint sources; ncnn export is static).
        threads: ncnn threads while gating.
        verbose: print the summary.
        **gate: the fields of :class:`~edgeseg.export.accuracy.GateSettings`.
    """
    settings = GateSettings(**gate)
    try:
        import ncnn  # noqa: F401
    except ImportError:
        raise ExportError(f"--format ncnn needs ncnn and pnnx: {INSTALL}") from None
    pnnx_executable()
    from ..runtime.backends.ncnn_backend import NcnnBackend

    t0 = time.perf_counter()
    dst = Path(out) if out is not None else default_dir(source, "int8" if int8 else "fp32")
    if dst.suffix.lower() in (".param", ".bin"):
        raise ExportError(f"--out for ncnn is a directory (it gets {STEM}.ncnn.param/.bin/.json), got {str(dst)!r}")
    with tempfile.TemporaryDirectory(prefix="edgeseg-ncnn-") as tmp:
        work = Path(tmp)
        src = open_source(source, work, input_size=input_size, dynamic=dynamic, opset=opset, gate=settings,
                          static="ncnn")
        conv = work / "convert"
        conv.mkdir()
        param, bin_, io = _convert(src.onnx, src.meta, conv, src.path.name)
        precision = "int8" if int8 else "fp32"
        details: dict[str, Any] = {}
        if int8:
            from ..runtime.base import preprocess
            from .ncnn_int8 import quantize
            from .quantize import calibration_frames

            n = defaults.CALIB_IMAGES if calib_images is None else int(calib_images)
            q = work / "int8"
            q.mkdir()
            tensors = (preprocess(f, src.meta)[0] for f in calibration_frames(calib, n))
            keep = keep_float.split(",") if isinstance(keep_float, str) else list(keep_float)
            details = quantize(param, bin_, q / param.name, q / bin_.name, io["input_blob"], tensors,
                               keep_float=[k.strip() for k in keep if k.strip()])
            details.update(calibration=str(calib), calib_images=n)
            param, bin_ = q / param.name, q / bin_.name
        import pnnx

        version = getattr(pnnx, "__version__", "unknown")
        meta = export_meta(src.meta, format="ncnn", precision=precision, pnnx=version, source=src.path.name)
        side = param.with_suffix(".json")
        side.write_text(json.dumps({"meta": meta.to_dict(), "io": io, "int8": bool(int8)}, indent=1))
        files = (param, bin_, side)
        stage_dir = work / "stage"
        stage_dir.mkdir()
        for f in files:  # the backend reads <stem>.ncnn.{param,bin,json}
            shutil.copyfile(f, stage_dir / f.name)
        dst.mkdir(parents=True, exist_ok=True)
        with ExitStack() as stack:  # the three files, in the output directory under temporary names
            staged_files = [stack.enter_context(staged(dst / f.name)) for f in files]
            for f, s in zip(files, staged_files):
                shutil.copyfile(f, s)
            finals = [dst / f.name for f in files]
            rejected = [dst / f.name.replace(f"{STEM}.", f"{STEM}.rejected.", 1) for f in files]
            return finish(src, NcnnBackend(stage_dir / param.name, threads=threads), settings,
                          list(zip(staged_files, finals, rejected)), t0=t0, verbose=verbose,
                          hint="export FP32 (drop --int8)" if int8 else
                               "report the architecture (an FP32 ncnn model should match the checkpoint)",
                          format="ncnn", precision=precision, path=dst / param.name, meta=meta,
                          size_bytes=param.stat().st_size + bin_.stat().st_size,
                          report_path=dst / f"{STEM}.parity.json",
                          details={"pnnx": version, "ncnn_params": str(finals[0]), "side_file": str(finals[2]),
                                   **details})


__all__ = ["export_ncnn", "default_dir", "pnnx_executable"]
