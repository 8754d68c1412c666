"""The accuracy gate that ends every deployment export (OpenVINO, ONNX INT8, TensorRT).

An exported model is compared with its reference (the PyTorch checkpoint, or the FP32 ONNX it
was built from) on labelled validation images, both run through the runtime's own predictors
(letterbox, backend, C++ post-processing):

* semantic models: mIoU of each side against the ground truth, the drop, and the label
  agreement between the two sides at frame resolution;
* instance models: mask AP of each side (pycocotools COCOeval), the drop, and the
  matched-detection agreement at the model's deployment thresholds (same class, box IoU >= 0.5).

The gate fails when the drop exceeds ``max_drop`` (default one point, 0.01); the caller keeps the
artefact as ``*.rejected.*`` beside the report. FP32 exports are additionally held to the strict
label-agreement parity check of :mod:`edgeseg.export.parity`.

This module also holds what the deployment exporters share: opening the source (a checkpoint,
exported to ONNX first, or an edgeseg ONNX file) with its reference backend, running the gate,
and the :class:`DeployReport` each exporter returns.
"""
from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .. import defaults
from .._io import write_json
from ..errors import EdgesegError, ExportError
from ..eval.matching import match_detections
from ..geometry import parse_size
from ..meta import ModelMeta
from .parity import ParityReport, check_parity


# ------------------------------------------------------------------------------------- report
@dataclass
class AccuracyReport:
    """Outcome of the accuracy gate (scores and drops are fractions: 0.01 = one point)."""

    task: str
    metric: str  # "mIoU" or "mask AP"
    data: str
    split: str
    n_images: int
    reference: str  # engine that ran the reference, e.g. "torch/torch-cpu"
    candidate: str  # engine that ran the export, e.g. "openvino/openvino-CPU-f32"
    reference_score: float
    candidate_score: float
    max_drop: float
    agreement: float  # semantic: label agreement; instance: matched-detection agreement
    passed: bool = False
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def drop(self) -> float:
        """reference score - candidate score (negative: the export scored higher)."""
        return self.reference_score - self.candidate_score

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "drop": self.drop}

    def summary(self) -> str:
        verdict = "PASS" if self.passed else "FAIL"
        what = "label agreement" if self.task == "semantic" else "matched detections"
        return (f"accuracy {verdict}: {self.metric} {self.candidate_score:.4f} vs reference "
                f"{self.reference_score:.4f} (drop {100 * self.drop:+.2f} points, allowed "
                f"{100 * self.max_drop:.2f}); {what} {100 * self.agreement:.2f}% on {self.n_images} "
                f"{self.data}/{self.split} images [{self.candidate} vs {self.reference}]")


def _open(model: Any, role: str) -> Any:
    from ..runtime.backends import open_backend
    from ..runtime.backends.base import Backend

    if isinstance(model, Backend):
        return model
    try:
        return open_backend(model, device="cpu")
    except EdgesegError as e:
        raise ExportError(f"cannot open the {role} model {str(model)!r} for the accuracy gate: {e}") from None


def _engine(backend: Any) -> str:
    """e.g. "onnxruntime/CPUExecutionProvider", "torch/torch-cpu", "openvino/openvino-CPU-f32"."""
    return f"{backend.name}/{backend.provider}"


def _check_classes(meta: ModelMeta, dataset: Any, data: str) -> None:
    if len(dataset.classes) != meta.num_classes:
        raise ExportError(
            f"the accuracy gate needs labelled images of the model's {meta.num_classes} classes, but "
            f"{data!r} has {len(dataset.classes)} ({list(dataset.classes)}); pass the validation data the "
            "model was trained for (CLI: --val voc:PATH | cityscapes:PATH | coco:PATH)")


def accuracy_gate(
    reference: Any,
    candidate: Any,
    meta: ModelMeta,
    data: str | None = None,
    split: str = "val",
    n_images: int | None = None,
    max_drop: float = defaults.GATE_MAX_DROP,
) -> AccuracyReport:
    """Score ``candidate`` against ``reference`` on labelled validation images.

    Args:
        reference, candidate: runtime Backends, or model paths (opened on CPU through the
            backend registry: a checkpoint directory runs in PyTorch, ``.onnx`` in ONNX Runtime,
            ``.xml`` in OpenVINO, ...).
        meta: the exported model's ModelMeta (input size, normalisation, thresholds); both sides
            are fed the same letterboxed frames.
        data: dataset spec (:func:`edgeseg.data.open_dataset` / ``open_instance_dataset``);
            default: the synthetic validation split.
        split: dataset split.
        n_images: images to score (default :data:`edgeseg.defaults.GATE_VAL_IMAGES`; at most the split size).
        max_drop: the largest allowed mIoU / mask AP drop (fraction).

    Returns an :class:`AccuracyReport` whose ``passed`` says whether the drop is within
    ``max_drop``. Raises ExportError when the data does not fit the model.
    """
    n = defaults.GATE_VAL_IMAGES if n_images is None else int(n_images)
    if n < 1:
        raise ExportError(f"the accuracy gate needs at least 1 validation image, got {n_images}")
    if math.isnan(max_drop) or max_drop < -1.0:
        raise ExportError(f"max_drop must be a number >= -1 (a fraction, 0.01 = one point), got {max_drop}")
    data = data or defaults.GATE_VAL_DATA
    ref, cand = _open(reference, "reference"), _open(candidate, "exported")
    if meta.task == "instance":
        report = _instance_gate(ref, cand, meta, data, split, n)
    else:
        report = _semantic_gate(ref, cand, meta, data, split, n)
    report.max_drop = float(max_drop)
    report.passed = bool(report.drop <= max_drop + 1e-12)
    return report


def _semantic_gate(ref: Any, cand: Any, meta: ModelMeta, data: str, split: str, n: int) -> AccuracyReport:
    from ..data import open_dataset
    from ..runtime.semantic import SemanticPredictor
    from ..eval.confusion import ConfusionMatrix

    dataset = open_dataset(data, split)
    _check_classes(meta, dataset, data)
    n = min(n, len(dataset))
    p_ref, p_cand = SemanticPredictor(ref, meta), SemanticPredictor(cand, meta)
    cms = [ConfusionMatrix(meta.num_classes, ignore_index=defaults.IGNORE_INDEX) for _ in range(2)]
    agree = total = 0
    for i in range(n):
        image, label = dataset[i]
        a, b = p_ref(image).labels, p_cand(image).labels
        cms[0].update(a, label)
        cms[1].update(b, label)
        agree += int((a == b).sum())
        total += a.size
    s_ref, s_cand = (cm.summary(list(meta.classes)) for cm in cms)
    return AccuracyReport(
        task="semantic", metric="mIoU", data=data, split=split, n_images=n,
        reference=_engine(ref), candidate=_engine(cand),
        reference_score=float(s_ref["miou"]), candidate_score=float(s_cand["miou"]),
        max_drop=defaults.GATE_MAX_DROP, agreement=agree / max(total, 1),
        details={"per_class_iou_reference": s_ref["per_class_iou"],
                 "per_class_iou_candidate": s_cand["per_class_iou"],
                 "pixel_acc_reference": s_ref["pixel_acc"], "pixel_acc_candidate": s_cand["pixel_acc"]},
    )


def _instance_gate(ref: Any, cand: Any, meta: ModelMeta, data: str, split: str, n: int) -> AccuracyReport:
    """Both sides run through the predictor ``edgeseg.load`` would use for ``meta`` (single-stage
    or Mask R-CNN) at the COCO evaluation score threshold; the detections at or above the model's
    deployment threshold are then matched between the sides."""
    from ..data import open_instance_dataset
    from ..runtime.instance import InstanceThresholds
    from ..runtime.loader import predictor_class
    from ..eval.coco import coco_gt_from_dataset, evaluate_coco

    dataset = open_instance_dataset(data, split)
    _check_classes(meta, dataset, data)
    n = min(n, len(dataset))
    gt = coco_gt_from_dataset(dataset, n)
    cat_ids = getattr(dataset, "cat_ids", None)
    cls = predictor_class(meta)
    predictors = (cls(ref, meta, score=defaults.EVAL_SCORE_THRESHOLD),
                  cls(cand, meta, score=defaults.EVAL_SCORE_THRESHOLD))
    deploy = InstanceThresholds.for_model(meta).score
    dets: tuple[list, list] = ([], [])
    counts = [0, 0]
    matched = denom = 0
    for i in range(n):
        sample = dataset.sample(i)
        kept = []
        for side, p in enumerate(predictors):
            result = p(sample.image)
            dets[side].extend(result.to_coco(image_id=sample.image_id, category_ids=cat_ids))
            keep = np.asarray(result.scores) >= deploy
            kept.append({"boxes": np.asarray(result.boxes)[keep], "scores": np.asarray(result.scores)[keep],
                         "class_ids": np.asarray(result.class_ids)[keep]})
            counts[side] += int(keep.sum())
        matched += len(match_detections(kept[0], kept[1], defaults.GATE_MATCH_IOU))
        denom += max(len(kept[0]["scores"]), len(kept[1]["scores"]))
    m_ref, m_cand = evaluate_coco(gt, dets[0]), evaluate_coco(gt, dets[1])
    return AccuracyReport(
        task="instance", metric="mask AP", data=data, split=split, n_images=n,
        reference=_engine(ref), candidate=_engine(cand),
        reference_score=max(0.0, m_ref["segm"]["AP"]), candidate_score=max(0.0, m_cand["segm"]["AP"]),
        max_drop=defaults.GATE_MAX_DROP, agreement=matched / denom if denom else 1.0,
        details={"box_ap_reference": m_ref["bbox"]["AP"], "box_ap_candidate": m_cand["bbox"]["AP"],
                 "mask_ap50_reference": m_ref["segm"]["AP50"], "mask_ap50_candidate": m_cand["segm"]["AP50"],
                 "detections_reference": counts[0], "detections_candidate": counts[1],
                 "detections_matched": matched, "score_threshold": deploy, "match_iou": defaults.GATE_MATCH_IOU},
    )


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
    parity_images: int | None = None,
    min_agreement: float = defaults.PARITY_MIN_AGREEMENT,
    seed: int = 0,
) -> Source:
    """Open ``source``: a checkpoint directory is first exported to ONNX in ``workdir`` (with
    the strict ONNX parity gate) and gated against PyTorch; an ``.onnx`` written by ``edgeseg
    export`` is used as is and gated against itself on ONNX Runtime (then ``input_size``,
    ``dynamic`` and ``opset`` cannot change and must be left unset or match)."""
    from ..runtime.backends import open_backend

    src = Path(source)
    if not src.exists():
        raise ExportError(f"export source not found: {str(src)!r}; give a checkpoint directory or an .onnx file")
    if is_checkpoint(src) or (src.is_file() and src.suffix == ".safetensors"):
        from .onnx import export_onnx

        ckpt = src if src.is_dir() else src.parent
        kw: dict[str, Any] = {} if opset is None else {"opset": opset}
        rep = export_onnx(ckpt, Path(workdir) / "model.onnx", dynamic=bool(dynamic), input_size=input_size,
                          parity_images=parity_images, min_agreement=min_agreement, seed=seed,
                          verbose=False, **kw)
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
    return Source(src, "onnx", src, meta, ref)


# ------------------------------------------------------------------------------------- the gate
@dataclass
class GateResult:
    """Parity (strict; gated for FP32 only) and accuracy (gated always) of one export."""

    parity: ParityReport | None
    accuracy: AccuracyReport
    parity_gated: bool

    @property
    def passed(self) -> bool:
        parity_ok = self.parity is None or not self.parity_gated or self.parity.passed
        return parity_ok and self.accuracy.passed

    def reasons(self) -> list[str]:
        out = []
        if self.parity is not None and self.parity_gated and not self.parity.passed:
            out.append(self.parity.summary())
        if not self.accuracy.passed:
            out.append(self.accuracy.summary())
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "parity_gated": self.parity_gated,
                "parity": self.parity.to_dict() if self.parity else None,
                "accuracy": self.accuracy.to_dict()}


def run_gate(
    source: Source,
    candidate: Any,
    precision: str,
    val: str | None = None,
    val_images: int | None = None,
    max_drop: float = defaults.GATE_MAX_DROP,
    parity_images: int | None = None,
    min_agreement: float = defaults.PARITY_MIN_AGREEMENT,
    seed: int = 0,
) -> GateResult:
    """Parity on synthetic frames (gated with ``min_agreement`` for "fp32", reported otherwise;
    ``parity_images=0`` skips it) and the accuracy gate against ``source.reference``."""
    n_par = defaults.PARITY_IMAGES if parity_images is None else int(parity_images)
    parity = None
    if n_par > 0:
        parity = check_parity(source.reference, candidate, source.meta, n_images=n_par,
                              min_agreement=min_agreement, seed=seed)
    acc = accuracy_gate(source.reference, candidate, source.meta, data=val, n_images=val_images,
                        max_drop=max_drop)
    return GateResult(parity, acc, parity_gated=precision == "fp32")


@dataclass
class DeployReport:
    """What a deployment export (OpenVINO, ONNX INT8, TensorRT) produced."""

    format: str  # "openvino", "onnx", "tensorrt"
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


def finish(files: Sequence[tuple[Path, Path, Path]], report: DeployReport, verbose: bool = True,
           hint: str = "") -> DeployReport:
    """Write the report, then move each ``(temporary, final, rejected)`` file to ``final`` when the
    gate passed, or to ``rejected`` (raising ExportError that says where everything is, plus
    ``hint``: what else to try) when not."""
    write_json(report.report_path, report.to_dict())
    passed = report.passed
    for tmp, final, rejected in files:
        os.replace(tmp, final if passed else rejected)
    if verbose:
        print(report.summary())
    if not passed:
        kept = ", ".join(str(r) for _, _, r in files)
        raise ExportError(
            f"the {report.format} {report.precision} export fails the gate: {'; '.join(report.gate.reasons())}. "
            f"It was NOT written to {report.path}; it is kept as {kept} for inspection, details in "
            f"{report.report_path}. Accept a larger drop with --accept-drop X (API: max_drop=X)"
            + (f", or {hint}" if hint else ""))
    return report
