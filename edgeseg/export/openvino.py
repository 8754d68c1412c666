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

import os
import tempfile
import time
from pathlib import Path

from .. import __version__, defaults
from ..errors import ExportError
from .accuracy import DeployReport, finish, open_source, run_gate

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
    val: str | None = None,
    val_images: int | None = None,
    max_drop: float = defaults.GATE_MAX_DROP,
    parity_images: int | None = None,
    min_agreement: float = defaults.PARITY_MIN_AGREEMENT,
    seed: int = 0,
    verbose: bool = True,
) -> DeployReport:
    """Export a checkpoint (or an edgeseg ``.onnx``) to OpenVINO IR and gate it.

    Args:
        source: a checkpoint directory, or an ``.onnx`` written by ``edgeseg export``.
        out: output directory (writes ``model.xml``/``model.bin``/``model.parity.json``), or
            the ``.xml`` path to write.
        fp16: store FP16 weights (compute stays FP32 on CPU by default).
        input_size, dynamic, opset: as in :func:`~edgeseg.export.onnx.export_onnx`
            (checkpoint sources only).
        val, val_images: validation data spec and image count of the accuracy gate (default:
            synthetic val, 32 images).
        max_drop: largest allowed mIoU / mask AP drop vs the reference (0.01 = one point).
        parity_images, min_agreement: strict parity check (gated for FP32 only; 0 skips).
        seed: seed of the synthetic parity frames.
        verbose: print the summary.

    Returns a :class:`~edgeseg.export.accuracy.DeployReport`. When the gate fails, the IR is
    kept as ``model.rejected.xml``/``.bin`` beside the report and ExportError is raised.
    """
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
        src = open_source(source, work, input_size=input_size, dynamic=dynamic, opset=opset,
                          parity_images=parity_images, min_agreement=min_agreement, seed=seed)
        meta = src.meta.replace(edgeseg_version=__version__, extra={
            **src.meta.extra,
            "export": {**src.meta.extra.get("export", {}), "format": "openvino", "precision": precision,
                       "openvino": ov.__version__, "source": src.path.name}})
        try:
            model = ov.Core().read_model(str(src.onnx))
        except Exception as e:  # OpenVINO's frontends raise their own exception types
            raise ExportError(f"OpenVINO could not convert {src.onnx.name}: {e}") from None
        model.set_rt_info(meta.to_json(), list(RT_INFO_PATH))
        fd, tmp_name = tempfile.mkstemp(prefix=f".{xml.stem}.", suffix=".xml", dir=xml.parent)
        os.close(fd)
        tmp_xml = Path(tmp_name)
        tmp_bin = tmp_xml.with_suffix(".bin")
        try:
            ov.save_model(model, str(tmp_xml), compress_to_fp16=bool(fp16))
            candidate = OpenVINOBackend(tmp_xml, device="cpu")
            gate = run_gate(src, candidate, precision, val=val, val_images=val_images, max_drop=max_drop,
                            parity_images=parity_images, min_agreement=min_agreement, seed=seed)
            rej_xml, rej_bin = rejected_ir(xml)
            report = DeployReport(
                format="openvino", precision=precision, path=xml, source=src.path,
                reference=src.reference_name, meta=meta,
                size_bytes=tmp_xml.stat().st_size + tmp_bin.stat().st_size,
                seconds=time.perf_counter() - t0, gate=gate, report_path=report_path(xml),
                details={"openvino": ov.__version__, "weights": precision, "bin": str(bin_),
                         "inference_precision_cpu": candidate.provider.rsplit("-", 1)[-1]})
            return finish([(tmp_xml, xml, rej_xml), (tmp_bin, bin_, rej_bin)], report, verbose,
                          hint="export FP32 (drop --fp16)" if fp16 else
                               "report the architecture (an FP32 IR should match the checkpoint)")
        finally:
            for p in (tmp_xml, tmp_bin):
                if p.exists():
                    p.unlink()


__all__ = ["export_openvino", "ir_paths", "rejected_ir", "report_path", "IR_NAME"]
