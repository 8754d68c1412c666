"""Export parity: PyTorch vs ONNX Runtime on real (synthetic-scene) frames.

Frames are letterboxed and post-processed with the runtime's own :func:`preprocess` /
:func:`postprocess`, so the check covers what a deployed model actually does. Agreement is
measured twice: argmax at logits resolution (the model alone) and labels at frame resolution
(model + the runtime's fused upsample+argmax).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .. import defaults
from .._io import write_json
from ..meta import ModelMeta

#: Number of synthetic frames checked when the caller does not say.
DEFAULT_PARITY_IMAGES = defaults.PARITY_IMAGES
#: Frame sizes (h, w) cycled through, so letterboxing pads both ways and also scales up.
FRAME_SIZES: tuple[tuple[int, int], ...] = ((240, 320), (320, 240), (256, 256), (150, 200))


@dataclass
class ParityReport:
    """Outcome of a parity check (all agreements are fractions in [0, 1])."""

    n_images: int
    max_abs_diff: float
    mean_abs_diff: float
    max_rel_diff: float  # max |diff| / max |torch logit|
    agreement_logits: float
    agreement_frame: float
    min_agreement: float
    passed: bool
    provider: str = "CPUExecutionProvider"
    images: list[dict[str, Any]] = field(default_factory=list)
    task: str = "semantic"

    @property
    def agreement(self) -> float:
        """The gated number: the worse of the two agreements."""
        return min(self.agreement_logits, self.agreement_frame)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "agreement": self.agreement}

    def summary(self) -> str:
        verdict = "PASS" if self.passed else "FAIL"
        if self.task == "instance":
            return (
                f"parity {verdict}: {self.n_images} frames, detections agree "
                f"{100 * self.agreement_logits:.3f}%, mask pixels agree {100 * self.agreement_frame:.3f}% "
                f"(frame res), need >= {100 * self.min_agreement:.2f}%; raw outputs max |diff| "
                f"{self.max_abs_diff:.2e} (rel {self.max_rel_diff:.2e}), mean {self.mean_abs_diff:.2e}"
            )
        return (
            f"parity {verdict}: {self.n_images} frames, label agreement "
            f"{100 * self.agreement_logits:.3f}% (logits res) / {100 * self.agreement_frame:.3f}% "
            f"(frame res), need >= {100 * self.min_agreement:.2f}%; logits max |diff| "
            f"{self.max_abs_diff:.2e} (rel {self.max_rel_diff:.2e}), mean {self.mean_abs_diff:.2e}"
        )


def _network_sizes(meta: ModelMeta) -> list[tuple[int, int]]:
    h, w = meta.input_size
    # A dynamic export is also checked at a second, non-square size (multiples of 32 added).
    return [(h, w), (h + 32, w + 64)] if meta.dynamic else [(h, w)]


def check_parity(
    model: Any,
    onnx_path: str | Path,
    meta: ModelMeta,
    n_images: int = DEFAULT_PARITY_IMAGES,
    min_agreement: float = defaults.PARITY_MIN_AGREEMENT,
    seed: int = 0,
    frame_sizes: Sequence[tuple[int, int]] = FRAME_SIZES,
) -> ParityReport:
    """Compare ``model`` (a torch module in eval mode, on CPU) with the ONNX file on
    ``n_images`` synthetic scenes from :func:`edgeseg.data.synthetic.generate`.

    Semantic models: label agreement at logits and at frame resolution. Instance models:
    see :func:`check_instance_parity`.
    """
    if meta.task == "instance":
        return check_instance_parity(model, onnx_path, meta, n_images, min_agreement, seed, frame_sizes)
    import torch

    from ..data.synthetic import generate
    from ..runtime.backends.onnxruntime_backend import OnnxRuntimeBackend
    from ..runtime.predictor import postprocess, preprocess

    if n_images < 1:
        raise ValueError(f"n_images must be >= 1, got {n_images}")
    ort = OnnxRuntimeBackend(onnx_path, device="cpu")
    in_name, out_name = meta.input_name, meta.output_names[0]
    sizes = _network_sizes(meta)
    model = model.float().eval()
    images: list[dict[str, Any]] = []
    agree_l = total_l = agree_f = total_f = 0
    max_abs = max_ref = abs_sum = 0.0
    n_vals = 0
    for i in range(n_images):
        frame_hw = tuple(frame_sizes[i % len(frame_sizes)])
        net_hw = sizes[i % len(sizes)]
        frame = generate(i, seed=seed, size=frame_hw).image
        x, info = preprocess(frame, meta, np.float32, input_size=net_hw)
        with torch.inference_mode():
            ref = model(torch.from_numpy(x))
        ref = (ref[0] if isinstance(ref, (tuple, list)) else ref).float().numpy()
        got = ort.infer({in_name: x})[out_name].astype(np.float32)
        if got.shape != ref.shape:
            raise AssertionError(f"ONNX output shape {got.shape} != PyTorch {ref.shape} at input {net_hw}")
        diff = np.abs(got - ref)
        lab_ref, lab_got = ref[0].argmax(0), got[0].argmax(0)
        fr_ref, fr_got = postprocess(ref[0], info), postprocess(got[0], info)
        a_l, a_f = int((lab_ref == lab_got).sum()), int((fr_ref == fr_got).sum())
        agree_l, total_l = agree_l + a_l, total_l + lab_ref.size
        agree_f, total_f = agree_f + a_f, total_f + fr_ref.size
        max_abs = max(max_abs, float(diff.max()))
        max_ref = max(max_ref, float(np.abs(ref).max()))
        abs_sum += float(diff.sum())
        n_vals += diff.size
        images.append({
            "index": i,
            "frame_hw": list(frame_hw),
            "input_hw": list(net_hw),
            "max_abs_diff": float(diff.max()),
            "agreement_logits": a_l / lab_ref.size,
            "agreement_frame": a_f / fr_ref.size,
        })
    report = ParityReport(
        n_images=n_images,
        max_abs_diff=max_abs,
        mean_abs_diff=abs_sum / max(n_vals, 1),
        max_rel_diff=max_abs / max(max_ref, 1e-12),
        agreement_logits=agree_l / total_l,
        agreement_frame=agree_f / total_f,
        min_agreement=float(min_agreement),
        passed=False,
        provider=ort.provider,
        images=images,
    )
    report.passed = report.agreement >= min_agreement
    return report


#: Parity selects detections with a score threshold at most this low, so that an undertrained
#: model still yields detections to compare.
PARITY_SCORE_THRESHOLD = 0.05
#: Class scores closer than this count as a tie (either class may win on either side).
_TIE = 1e-4


def _pair_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of a[i] with b[i] for (K, 4) xyxy boxes."""
    lt, rb = np.maximum(a[:, :2], b[:, :2]), np.minimum(a[:, 2:], b[:, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=1)
    area = lambda x: np.prod(np.clip(x[:, 2:] - x[:, :2], 0, None), axis=1)  # noqa: E731
    return inter / np.maximum(area(a) + area(b) - inter, 1e-9)


def _compare_detections(ref: dict[str, np.ndarray], got: dict[str, np.ndarray], info: Any,
                        thr: Any) -> tuple[int, int, int, int]:
    """Compare both sides at the anchors the PyTorch side selects (NMS is not re-run on the ONNX
    side, so near-equal scores cannot reorder it). Returns (detections agreeing: same class
    unless a tie, box IoU >= 0.99, |score diff| < 1e-3; detections; mask pixels agreeing; mask
    pixels), masks assembled with the same frame boxes from each side's coefficients and protos."""
    from .. import ops
    from ..runtime.instance import frame_boxes

    idx, cls, sc = ops.select_detections(ref["boxes"], ref["scores"], iou_threshold=thr.iou,
                                         score_threshold=thr.score, max_candidates=thr.max_candidates,
                                         max_detections=thr.max_detections)
    if len(idx) == 0:
        return 0, 0, 0, 0
    g_scores = got["scores"][idx]
    g_cls = g_scores.argmax(1)
    top2 = np.sort(ref["scores"][idx], axis=1)[:, -2:] if ref["scores"].shape[1] > 1 else None
    tie = (top2[:, 1] - top2[:, 0] < _TIE) if top2 is not None else np.zeros(len(idx), bool)
    same_cls = (g_cls == cls) | tie
    score_ok = np.abs(g_scores.max(1) - sc) < 1e-3
    box_ok = _pair_iou(ref["boxes"][idx], got["boxes"][idx]) >= 0.99
    det_ok = int((same_cls & score_ok & box_ok).sum())
    fboxes = frame_boxes(ref["boxes"][idx].astype(np.float32), info)
    masks = [ops.assemble_masks(np.ascontiguousarray(side["coeffs"][idx], np.float32),
                                np.ascontiguousarray(side["protos"], np.float32), fboxes, info.src_hw,
                                letterbox=info, threshold=thr.mask) for side in (ref, got)]
    a, b = masks[0].data, masks[1].data
    return det_ok, len(idx), int((a == b).sum()), int(a.size)


def check_instance_parity(
    model: Any,
    onnx_path: str | Path,
    meta: ModelMeta,
    n_images: int = DEFAULT_PARITY_IMAGES,
    min_agreement: float = defaults.PARITY_MIN_AGREEMENT,
    seed: int = 0,
    frame_sizes: Sequence[tuple[int, int]] = FRAME_SIZES,
) -> ParityReport:
    """Instance-model parity: raw head outputs (max abs difference), then the detections the
    runtime's decode + NMS selects from the PyTorch outputs, compared with the ONNX outputs at the
    same anchors (class, score, box) and their box-local masks at frame resolution (assembled by
    the runtime's C++ code from each side's coefficients and prototypes). Gated on the worse of
    detection agreement and mask-pixel agreement."""
    import torch

    from ..data.synthetic import generate
    from ..runtime.backends.onnxruntime_backend import OnnxRuntimeBackend
    from ..runtime.instance import OUTPUTS, InstanceThresholds
    from ..runtime.predictor import preprocess

    if n_images < 1:
        raise ValueError(f"n_images must be >= 1, got {n_images}")
    ort = OnnxRuntimeBackend(onnx_path, device="cpu")
    names = dict(zip(OUTPUTS, meta.output_names))
    thr = InstanceThresholds.for_model(meta)
    thr.score = min(thr.score, PARITY_SCORE_THRESHOLD)
    sizes = _network_sizes(meta)
    model = model.float().eval()
    images: list[dict[str, Any]] = []
    det_ok = det_n = pix_ok = pix_n = 0
    max_abs = max_ref = abs_sum = 0.0
    n_vals = 0
    for i in range(n_images):
        frame_hw = tuple(frame_sizes[i % len(frame_sizes)])
        net_hw = sizes[i % len(sizes)]
        frame = generate(i, seed=seed, size=frame_hw).image
        x, info = preprocess(frame, meta, np.float32, input_size=net_hw)
        with torch.inference_mode():
            ref_t = model(torch.from_numpy(x))
        ref = {k: np.ascontiguousarray(t.float().numpy()[0]) for k, t in zip(OUTPUTS, ref_t)}
        raw = ort.infer({meta.input_name: x})
        got = {k: np.ascontiguousarray(raw[names[k]][0], np.float32) for k in OUTPUTS}
        img_max = 0.0
        for k in OUTPUTS:
            if got[k].shape != ref[k].shape:
                raise AssertionError(f"ONNX output {k!r} shape {got[k].shape} != PyTorch {ref[k].shape} "
                                     f"at input {net_hw}")
            d = np.abs(got[k] - ref[k])
            img_max = max(img_max, float(d.max(initial=0.0)))
            max_ref = max(max_ref, float(np.abs(ref[k]).max(initial=0.0)))
            abs_sum += float(d.sum())
            n_vals += d.size
        max_abs = max(max_abs, img_max)
        d_ok, d_n, p_ok, p_n = _compare_detections(ref, got, info, thr)
        det_ok, det_n, pix_ok, pix_n = det_ok + d_ok, det_n + d_n, pix_ok + p_ok, pix_n + p_n
        images.append({"index": i, "frame_hw": list(frame_hw), "input_hw": list(net_hw), "max_abs_diff": img_max,
                       "detections": d_n, "detections_agreeing": d_ok,
                       "mask_agreement": p_ok / p_n if p_n else 1.0})
    report = ParityReport(
        n_images=n_images,
        max_abs_diff=max_abs,
        mean_abs_diff=abs_sum / max(n_vals, 1),
        max_rel_diff=max_abs / max(max_ref, 1e-12),
        agreement_logits=det_ok / det_n if det_n else 1.0,
        agreement_frame=pix_ok / pix_n if pix_n else 1.0,
        min_agreement=float(min_agreement),
        passed=False,
        provider=ort.provider,
        images=images,
        task="instance",
    )
    report.passed = report.agreement >= min_agreement
    return report


def write_report(path: str | Path, report: ParityReport, **context: Any) -> Path:
    """Write ``report`` (plus ``context`` fields such as the model path) as JSON, atomically."""
    return write_json(path, {**context, **report.to_dict()})
