"""Checkpoint or ONNX -> OpenVINO IR (model.xml + model.bin), FP32 or FP16, with ModelMeta inside.

The IR is converted from the FP32 ONNX by OpenVINO's ONNX frontend (``Core.read_model``, the
conversion ``openvino.convert_model`` runs, without its telemetry), which a checkpoint is first
exported to under the strict ONNX parity gate, so the IR starts from a graph already checked
against PyTorch. The ModelMeta JSON is stored in the IR's ``rt_info`` (``<rt_info><edgeseg>
<meta value="..."/>``) and read back by :class:`~edgeseg.runtime.backends.openvino_backend.
OpenVINOBackend`. ``fp16`` stores FP16 weights (``save_model(compress_to_fp16=True)``: half the
file; OpenVINO's CPU plugin still computes in FP32 unless asked otherwise).

Every export ends with the gate of :mod:`edgeseg.export.accuracy`: strict parity against the
reference (FP32 only) and the mIoU / mask AP drop on validation images (all precisions).
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from ..errors import ExportError
from .accuracy import GateSettings
from .deploy import DeployReport, export_meta, finish, open_source, staged

#: Name of the IR written into an output directory.
IR_NAME = "model.xml"


def ir_paths(out: str | Path) -> tuple[Path, Path]:
    """(xml, bin) for ``out``: a directory (``DIR/model.xml``) or a path ending in ``.xml``."""
    p = Path(out)
    xml = p if p.suffix.lower() == ".xml" else p / IR_NAME
    return xml, xml.with_suffix(".bin")


def rejected_ir(xml: Path) -> tuple[Path, Path]:
    """Where an IR that failed the gate is kept: ``model.rejected.xml`` / ``.bin`` (the names
    keep the xml/bin pairing that OpenVINO's reader relies on)."""
    rej = xml.with_suffix(".rejected.xml")
    return rej, rej.with_suffix(".bin")


def report_path(xml: Path) -> Path:
    """Where the gate's report is written: ``model.parity.json`` beside the IR."""
    return xml.with_suffix(".parity.json")


def export_openvino(
    source: str | Path,
    out: str | Path,
    fp16: bool = False,
    input_size: int | tuple[int, int] | None = None,
    dynamic: bool | None = None,
    opset: int | None = None,
    *,
    verbose: bool = True,
    **gate: Any,
) -> DeployReport:
    """Export a checkpoint (or an edgeseg ``.onnx``) to OpenVINO IR and gate it.

    Args:
        source: a checkpoint directory, or an ``.onnx`` written by ``edgeseg export``.
        out: output directory (writes ``model.xml``/``model.bin``/``model.parity.json``), or
            the ``.xml`` path to write.
        fp16: store FP16 weights (compute stays FP32 on CPU by default).
        input_size, dynamic, opset: as in :func:`~edgeseg.export.onnx.export_onnx`
            (checkpoint sources only).
        verbose: print the summary.
        **gate: the gate's settings, the fields of :class:`~edgeseg.export.accuracy.GateSettings`
            (val, val_images, max_drop, parity_images, min_agreement, seed).

    Returns a :class:`~edgeseg.export.deploy.DeployReport`. When the gate fails, the IR is
    kept as ``model.rejected.xml``/``.bin`` beside the report and ExportError is raised.
    """
    settings = GateSettings(**gate)
    try:
        import openvino as ov
    except ImportError:
        raise ExportError("--format openvino needs OpenVINO: pip install openvino "
                          "(or pip install 'edgeseg[openvino]')") from None
    from ..runtime.backends.openvino_backend import RT_INFO_PATH, OpenVINOBackend

    t0 = time.perf_counter()
    xml, bin_ = ir_paths(out)
    xml.parent.mkdir(parents=True, exist_ok=True)
    precision = "fp16" if fp16 else "fp32"
    with tempfile.TemporaryDirectory(prefix="edgeseg-ov-") as work:
        src = open_source(source, work, input_size=input_size, dynamic=dynamic, opset=opset, gate=settings)
        meta = export_meta(src.meta, format="openvino", precision=precision, openvino=ov.__version__,
                           source=src.path.name)
        try:
            model = ov.Core().read_model(str(src.onnx))
        except Exception as e:  # OpenVINO's frontends raise their own exception types
            raise ExportError(f"OpenVINO could not convert {src.onnx.name}: {e}") from None
        model.set_rt_info(meta.to_json(), list(RT_INFO_PATH))
        with staged(xml, ".xml", siblings=(".bin",)) as tmp_xml:
            tmp_bin = tmp_xml.with_suffix(".bin")
            ov.save_model(model, str(tmp_xml), compress_to_fp16=bool(fp16))
            candidate = OpenVINOBackend(tmp_xml, device="cpu")
            rej_xml, rej_bin = rejected_ir(xml)
            return finish(src, candidate, settings, [(tmp_xml, xml, rej_xml), (tmp_bin, bin_, rej_bin)], t0=t0,
                          verbose=verbose, hint="export FP32 (drop --fp16)" if fp16 else
                          "report the architecture (an FP32 IR should match the checkpoint)",
                          format="openvino", precision=precision, path=xml, meta=meta,
                          size_bytes=tmp_xml.stat().st_size + tmp_bin.stat().st_size, report_path=report_path(xml),
                          details={"openvino": ov.__version__, "weights": precision, "bin": str(bin_),
                                   "inference_precision_cpu": candidate.provider.rsplit("-", 1)[-1]})


__all__ = ["export_openvino", "ir_paths", "rejected_ir", "report_path", "IR_NAME"]
