"""The accuracy gate that ends every deployment export (OpenVINO, ONNX INT8, TensorRT, LiteRT, ncnn).

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

:class:`GateSettings` are the gate's settings, given to every deployment exporter as keywords
and run by :func:`run_gate`; :mod:`edgeseg.export.deploy` holds the rest those exporters share.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import defaults
from ..errors import EdgesegError, ExportError
from ..eval.matching import match_detections
from ..meta import ModelMeta
from .parity import ParityReport, check_parity

if TYPE_CHECKING:
    from .deploy import Source


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


# ------------------------------------------------------------------------------------- the gate
@dataclass(frozen=True)
class GateSettings:
    """How a deployment export is gated. Every exporter (OpenVINO, ONNX INT8, TensorRT, LiteRT,
    ncnn) takes these fields as keyword arguments, e.g. ``export_openvino(src, out, val_images=8)``.

    Attributes:
        val: labelled validation data of the accuracy gate (a dataset spec; default: synthetic val).
        val_images: validation images scored (default :data:`edgeseg.defaults.GATE_VAL_IMAGES`).
        max_drop: largest allowed mIoU / mask AP drop vs the reference (0.01 = one point).
        parity_images: synthetic frames of the strict parity check (None: the default count;
            0 skips it), which is gated for FP32 only and also gates the ONNX export of a
            checkpoint source.
        min_agreement: minimum label agreement of that parity check.
        seed: seed of the synthetic parity frames.
    """

    val: str | None = None
    val_images: int | None = None
    max_drop: float = defaults.GATE_MAX_DROP
    parity_images: int | None = None
    min_agreement: float = defaults.PARITY_MIN_AGREEMENT
    seed: int = 0


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


def run_gate(source: Source, candidate: Any, precision: str, settings: GateSettings = GateSettings()) -> GateResult:
    """Parity on synthetic frames against ``source.reference``, gated with ``settings.min_agreement`` for "fp32"
    and reported otherwise (``parity_images=0`` skips it), and the accuracy gate."""
    n_par = defaults.PARITY_IMAGES if settings.parity_images is None else int(settings.parity_images)
    parity = None
    if n_par > 0:
        parity = check_parity(source.reference, candidate, source.meta, n_images=n_par,
                              min_agreement=settings.min_agreement, seed=settings.seed)
    acc = accuracy_gate(source.reference, candidate, source.meta, data=settings.val, n_images=settings.val_images,
                        max_drop=settings.max_drop)
    return GateResult(parity, acc, parity_gated=precision == "fp32")


#: Names that lived here before :mod:`edgeseg.export.deploy` held them (same objects).
_MOVED_TO_DEPLOY = ("DeployReport", "Source", "is_checkpoint")


def __getattr__(name: str) -> Any:
    if name in _MOVED_TO_DEPLOY:
        from . import deploy

        return getattr(deploy, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
