"""Export parity: a reference (the PyTorch model, or any runtime backend) vs an exported model
run by any runtime backend (ONNX Runtime, OpenVINO, TensorRT, ...) on real (synthetic-scene)
frames.

Frames are letterboxed and post-processed with the runtime's own :func:`preprocess` /
:func:`postprocess`, so the check covers what a deployed model actually does. Agreement is
measured twice: argmax at logits resolution (the model alone) and labels at frame resolution
(model + the runtime's fused upsample+argmax).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, NamedTuple, Sequence

import numpy as np

from .. import defaults
from .._io import write_json
from ..eval.matching import match_detections
from ..geometry import box_iou
from ..meta import ModelMeta

#: Number of synthetic frames checked when the caller does not say.
#: Frame sizes (h, w) cycled through, so letterboxing pads both ways and also scales up.
FRAME_SIZES: tuple[tuple[int, int], ...] = ((240, 320), (320, 240), (256, 256), (150, 200))


@dataclass
class ParityReport:
    """Outcome of a parity check (all agreements are fractions in [0, 1])."""

    n_images: int
    max_abs_diff: float
    mean_abs_diff: float
    max_rel_diff: float  # max |diff| / max |reference output|
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

    @classmethod
    def from_stats(cls, *, n_images: int, max_abs: float, abs_sum: float, n_vals: int, max_ref: float,
                   agreement_logits: float, agreement_frame: float, min_agreement: float, provider: str,
                   images: list[dict[str, Any]], task: str = "semantic") -> "ParityReport":
        """A report from accumulated output differences (sum and max of |diff| over ``n_vals``
        values, largest |reference| ``max_ref``), passed when :attr:`agreement` reaches
        ``min_agreement``."""
        report = cls(n_images=n_images, max_abs_diff=max_abs, mean_abs_diff=abs_sum / max(n_vals, 1),
                     max_rel_diff=max_abs / max(max_ref, 1e-12), agreement_logits=agreement_logits,
                     agreement_frame=agreement_frame, min_agreement=float(min_agreement), passed=False,
                     provider=provider, images=images, task=task)
        report.passed = report.agreement >= min_agreement
        return report

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


#: Runs one (1, 3, h, w) input and returns the model's outputs in ``meta.output_names`` order.
Runner = Callable[[np.ndarray], list]


def _reference_runner(model: Any, meta: ModelMeta) -> Runner:
    """The reference side: a torch module (run on CPU in float32) or a runtime Backend."""
    from ..runtime.backends.base import Backend

    if isinstance(model, Backend):
        return _backend_runner(model, meta)
    import torch

    model = model.float().eval()

    def run(x: np.ndarray) -> list:
        with torch.inference_mode():
            out = model(torch.from_numpy(x))
        outs = [out] if isinstance(out, torch.Tensor) else list(out)
        return [np.ascontiguousarray(t.float().numpy()) for t in outs]

    return run


def _backend_runner(backend: Any, meta: ModelMeta) -> Runner:
    names = list(meta.output_names)

    def run(x: np.ndarray) -> list:
        out = backend.infer({meta.input_name: x})
        missing = [n for n in names if n not in out]
        if missing:
            raise AssertionError(f"{backend.name} returned outputs {sorted(out)}; metadata names {names}")
        return [np.ascontiguousarray(out[n], np.float32 if out[n].dtype.kind == "f" else None) for n in names]

    return run


def _candidate_backend(candidate: Any) -> Any:
    """A runtime Backend for ``candidate``: a Backend as is, a path through the backend registry
    (a .onnx path runs on ONNX Runtime's CPU provider, as before backends were pluggable)."""
    from ..runtime.backends import open_backend
    from ..runtime.backends.base import Backend

    if isinstance(candidate, Backend):
        return candidate
    path = Path(candidate)
    if path.suffix.lower() == ".onnx":
        return open_backend(path, "onnxruntime", device="cpu")
    return open_backend(path)


def _network_sizes(meta: ModelMeta) -> list[tuple[int, int]]:
    h, w = meta.input_size
    # A dynamic export is also checked at a second, non-square size (multiples of 32 added).
    return [(h, w), (h + 32, w + 64)] if meta.dynamic else [(h, w)]


class _Frame(NamedTuple):
    """One parity frame, letterboxed by the runtime's own preprocess."""

    index: int
    frame_hw: tuple[int, int]
    input_hw: tuple[int, int]
    x: np.ndarray  # the network input (1, 3, h, w)
    info: Any  # its LetterboxInfo

    def record(self, **stats: Any) -> dict[str, Any]:
        """This frame's entry in :attr:`ParityReport.images`."""
        return {"index": self.index, "frame_hw": list(self.frame_hw), "input_hw": list(self.input_hw), **stats}


def _frames(meta: ModelMeta, n_images: int, seed: int, frame_sizes: Sequence[tuple[int, int]]) -> Iterator[_Frame]:
    """``n_images`` synthetic scenes, cycling through ``frame_sizes`` and the network sizes of
    :func:`_network_sizes` (ValueError at once when ``n_images`` < 1)."""
    from ..data.synthetic import generate
    from ..runtime.base import preprocess

    if n_images < 1:
        raise ValueError(f"n_images must be >= 1, got {n_images}")
    sizes = _network_sizes(meta)

    def frames() -> Iterator[_Frame]:
        for i in range(n_images):
            frame_hw = tuple(frame_sizes[i % len(frame_sizes)])
            net_hw = sizes[i % len(sizes)]
            x, info = preprocess(generate(i, seed=seed, size=frame_hw).image, meta, np.float32, input_size=net_hw)
            yield _Frame(i, frame_hw, net_hw, x, info)

    return frames()


@dataclass
class _Diffs:
    """|candidate - reference| of raw outputs, accumulated over frames."""

    max_abs: float = 0.0
    max_ref: float = 0.0  # largest |reference| value (the scale of max_rel_diff)
    abs_sum: float = 0.0
    n_vals: int = 0

    def add(self, diff: np.ndarray, ref: np.ndarray) -> float:
        """Count ``diff`` (the |difference| of one output) and its reference ``ref``; returns its max."""
        top = float(diff.max(initial=0.0))
        self.max_abs = max(self.max_abs, top)
        self.max_ref = max(self.max_ref, float(np.abs(ref).max(initial=0.0)))
        self.abs_sum += float(diff.sum())
        self.n_vals += diff.size
        return top


#: One model kind's comparison: (candidate backend, reference runner, meta, frames, diffs) ->
#: (agreement_logits, agreement_frame, per-frame records); raw-output differences go into ``diffs``.
Comparer = Callable[[Any, Runner, ModelMeta, Iterator[_Frame], _Diffs], tuple[float, float, list[dict[str, Any]]]]


def check_parity(model: Any, candidate: Any, meta: ModelMeta, **options: Any) -> ParityReport:
    """Compare the reference ``model`` with the exported ``candidate`` on synthetic scenes from
    :func:`edgeseg.data.synthetic.generate`, with the comparer of the model's kind.

    ``model`` is a torch module (run on CPU in float32) or a runtime Backend; ``candidate`` is a
    runtime Backend (ONNX Runtime, OpenVINO, TensorRT, ...) or a model path (``.onnx`` runs on
    ONNX Runtime's CPU provider; other suffixes go through the backend registry). ``options``:
    ``n_images``, ``min_agreement``, ``seed``, ``frame_sizes``. Semantic models: label agreement
    at logits and at frame resolution (:func:`check_semantic_parity`); single-stage instance
    models: :func:`check_instance_parity`; Mask R-CNN: :func:`check_maskrcnn_parity` (see
    :mod:`edgeseg.runtime.kinds`). ``provider`` in the report names the engine that ran the
    candidate.
    """
    from ..runtime.kinds import kind_of_meta

    return kind_of_meta(meta).load("parity")(model, candidate, meta, **options)


def _compare_semantic(backend: Any, run_ref: Runner, meta: ModelMeta, frames: Iterator[_Frame],
                      diffs: _Diffs) -> tuple[float, float, list[dict[str, Any]]]:
    """Semantic-model parity: label agreement at logits and at frame resolution (see
    :func:`check_parity`)."""
    from ..runtime.conventions import convention_of
    from ..runtime.semantic import postprocess

    run_got = _backend_runner(backend, meta)
    conv = convention_of(meta)

    def adapt(first: np.ndarray) -> np.ndarray:
        return conv.adapt({meta.output_names[0]: first}, meta, ("output",))["output"]

    images: list[dict[str, Any]] = []
    agree_l = total_l = agree_f = total_f = 0
    for f in frames:
        raw_ref, raw_got = run_ref(f.x)[0], run_got(f.x)[0]
        if raw_got.shape != raw_ref.shape:
            raise AssertionError(f"{backend.name} output shape {raw_got.shape} != reference {raw_ref.shape} "
                                 f"at input {f.input_hw}")
        diff = np.abs(raw_got.astype(np.float64) - raw_ref)
        ref, got = adapt(raw_ref), adapt(raw_got)  # logits (N, C, h, w) or labels, as the runtime reads them
        lab_ref, lab_got = (ref[0].argmax(0), got[0].argmax(0)) if ref.dtype.kind == "f" else (ref[0], got[0])
        fr_ref, fr_got = postprocess(ref[0], f.info), postprocess(got[0], f.info)
        a_l, a_f = int((lab_ref == lab_got).sum()), int((fr_ref == fr_got).sum())
        agree_l, total_l = agree_l + a_l, total_l + lab_ref.size
        agree_f, total_f = agree_f + a_f, total_f + fr_ref.size
        images.append(f.record(max_abs_diff=diffs.add(diff, ref), agreement_logits=a_l / lab_ref.size,
                               agreement_frame=a_f / fr_ref.size))
    return agree_l / total_l, agree_f / total_f, images


#: Parity selects detections with a score threshold at most this low, so that an undertrained
#: model still yields detections to compare.
PARITY_SCORE_THRESHOLD = 0.05
#: Class scores closer than this count as a tie (either class may win on either side).
_TIE = 1e-4


def _compare_detections(ref: dict[str, np.ndarray], got: dict[str, np.ndarray], info: Any,
                        thr: Any) -> tuple[int, int, int, int]:
    """Compare both sides at the anchors the reference side selects (NMS is not re-run on the
    candidate side, so near-equal scores cannot reorder it). Returns (detections agreeing: same class
    unless a tie, box IoU >= 0.99, |score diff| < 1e-3; detections; mask pixels agreeing; mask
    pixels), masks assembled with the same frame boxes from each side's coefficients and protos."""
    from .. import ops

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
    box_ok = box_iou(ref["boxes"][idx], got["boxes"][idx], paired=True) >= 0.99
    det_ok = int((same_cls & score_ok & box_ok).sum())
    fboxes = info.to_frame(ref["boxes"][idx].astype(np.float32))
    masks = [ops.assemble_masks(np.ascontiguousarray(side["coeffs"][idx], np.float32),
                                np.ascontiguousarray(side["protos"], np.float32), fboxes, info.src_hw,
                                letterbox=info, threshold=thr.mask) for side in (ref, got)]
    a, b = masks[0].data, masks[1].data
    return det_ok, len(idx), int((a == b).sum()), int(a.size)


def _compare_instance(backend: Any, run_ref: Runner, meta: ModelMeta, frames: Iterator[_Frame],
                      diffs: _Diffs) -> tuple[float, float, list[dict[str, Any]]]:
    """Instance-model parity: raw head outputs (max abs difference), then the detections the
    runtime's decode + NMS selects from the reference outputs, compared with the candidate's
    outputs at the same anchors (class, score, box) and their box-local masks at frame resolution
    (assembled by the runtime's C++ code from each side's coefficients and prototypes). Gated on
    the worse of detection agreement and mask-pixel agreement. ``model`` and ``candidate`` as in
    :func:`check_parity`."""
    from ..runtime.conventions import convention_of
    from ..runtime.instance import OUTPUTS, InstanceThresholds

    run_got = _backend_runner(backend, meta)
    conv = convention_of(meta)
    thr = InstanceThresholds.for_model(meta)
    thr.score = min(thr.score, PARITY_SCORE_THRESHOLD)
    images: list[dict[str, Any]] = []
    det_ok = det_n = pix_ok = pix_n = 0
    for f in frames:
        raw_ref = dict(zip(meta.output_names, run_ref(f.x)))
        raw_got = dict(zip(meta.output_names, run_got(f.x)))
        ref = {k: np.ascontiguousarray(v[0]) for k, v in conv.adapt(raw_ref, meta, OUTPUTS).items()}
        got = {k: np.ascontiguousarray(v[0]) for k, v in conv.adapt(raw_got, meta, OUTPUTS).items()}
        img_max = 0.0
        for k in OUTPUTS:
            if got[k].shape != ref[k].shape:
                raise AssertionError(f"{backend.name} output {k!r} shape {got[k].shape} != reference "
                                     f"{ref[k].shape} at input {f.input_hw}")
            img_max = max(img_max, diffs.add(np.abs(got[k] - ref[k]), ref[k]))
        d_ok, d_n, p_ok, p_n = _compare_detections(ref, got, f.info, thr)
        det_ok, det_n, pix_ok, pix_n = det_ok + d_ok, det_n + d_n, pix_ok + p_ok, pix_n + p_n
        images.append(f.record(max_abs_diff=img_max, detections=d_n, detections_agreeing=d_ok,
                               mask_agreement=p_ok / p_n if p_n else 1.0))
    return det_ok / det_n if det_n else 1.0, pix_ok / pix_n if pix_n else 1.0, images


# ----------------------------------------------------------------------- Mask R-CNN parity
#: Detections match when they have the same class and at least this box IoU.
MASKRCNN_MATCH_IOU = 0.9
#: A detection this close to the graph's score threshold may be kept on one side only.
_BORDERLINE = 1e-3


def _compare_maskrcnn(backend: Any, run_ref: Runner, meta: ModelMeta, frames: Iterator[_Frame],
                      diffs: _Diffs) -> tuple[float, float, list[dict[str, Any]]]:
    """Parity of a Mask R-CNN style graph (post-NMS boxes, labels, scores, RoI masks; see
    :mod:`edgeseg.runtime.maskrcnn`). Each image's detections are matched one to one (same class,
    box IoU >= 0.9); ``agreement_logits`` is the fraction matched (of the larger side, leaving out
    unmatched detections within 1e-3 of the graph's score threshold, which may legitimately fall on
    either side of it); ``agreement_frame`` is the IoU (total intersection / total union) of the
    matched detections' masks pasted into the frame by the runtime's C++ ``paste_masks``. The
    differences are over matched detections (boxes, scores, mask probabilities). ``model`` and
    ``candidate`` as in :func:`check_parity`."""
    from ..runtime.instance import InstanceThresholds
    from ..runtime.conventions.maskrcnn import output_roles
    from ..runtime.maskrcnn import postprocess_maskrcnn

    roles = output_roles(backend.output_specs, meta.output_names)
    if roles is None:
        raise AssertionError(f"{backend.name}: outputs {[s.name for s in backend.output_specs]} do not follow the "
                             "Mask R-CNN convention (boxes, labels, scores, masks)")
    thr = InstanceThresholds.for_model(meta)
    keep_all = InstanceThresholds(score=0.0, iou=1.0, mask=thr.mask, max_detections=10**6, max_candidates=10**6)
    graph_thr = float(meta.extra.get("graph_score_threshold", 0.0))
    images: list[dict[str, Any]] = []
    det_ok = det_n = 0
    inter_sum = union_sum = 0
    for f in frames:
        ref = dict(zip(("boxes", "labels", "scores", "masks"), run_ref(f.x)))
        raw = backend.infer({meta.input_name: f.x})
        got = {k: np.asarray(raw[n]) for k, n in roles.items()}
        # the runtime's own decoding (shapes, batch axis, dets) at frame resolution, every detection kept
        r, g = (postprocess_maskrcnn({**side, "labels": np.asarray(side["labels"]).astype(np.int64)}, f.info, keep_all)
                for side in (ref, got))
        rb, gb = (np.asarray(side["boxes"], np.float32) for side in (ref, got))
        rb, gb = rb.reshape(-1, rb.shape[-1])[:, :4], gb.reshape(-1, gb.shape[-1])[:, :4]
        pairs = match_detections(r, g, MASKRCNN_MATCH_IOU)
        n_r, n_g = len(r["scores"]), len(g["scores"])
        mr = {a for a, _ in pairs}
        mg = {b for _, b in pairs}
        border_r = sum(1 for a in range(n_r) if a not in mr and r["scores"][a] < graph_thr + _BORDERLINE)
        border_g = sum(1 for b in range(n_g) if b not in mg and g["scores"][b] < graph_thr + _BORDERLINE)
        n_cmp = max(n_r - border_r, n_g - border_g, len(pairs))
        det_ok, det_n = det_ok + len(pairs), det_n + n_cmp
        img_inter = img_union = 0
        img_max = 0.0
        if pairs:
            ia, ib = (np.array(v, np.int64) for v in zip(*pairs))
            ma, mb = r["masks"].select(ia).to_dense(), g["masks"].select(ib).to_dense()
            img_inter, img_union = int((ma & mb).sum()), int((ma | mb).sum())
            # raw differences of the matched detections (outputs are in score order, as the postprocess keeps them)
            ro, go = _raw_order(ref, ia), _raw_order(got, ib)
            for a, b in ((rb[ro], gb[go]), (_scores(ref)[ro], _scores(got)[go]),
                         (_masks(ref)[ro], _masks(got)[go])):
                img_max = max(img_max, diffs.add(np.abs(a.astype(np.float64) - b.astype(np.float64)), a))
        inter_sum, union_sum = inter_sum + img_inter, union_sum + img_union
        images.append(f.record(max_abs_diff=img_max, detections=n_r, candidate_detections=n_g,
                               detections_agreeing=len(pairs), mask_iou=img_inter / img_union if img_union else 1.0))
    return det_ok / det_n if det_n else 1.0, inter_sum / union_sum if union_sum else 1.0, images


def _scores(side: dict[str, np.ndarray]) -> np.ndarray:
    s = side.get("scores")
    if s is None:  # dets (K, 5)
        b = np.asarray(side["boxes"])
        return b.reshape(-1, b.shape[-1])[:, 4]
    return np.asarray(s).reshape(-1)


def _masks(side: dict[str, np.ndarray]) -> np.ndarray:
    m = np.asarray(side["masks"])
    return m.reshape((-1,) + m.shape[-2:])


def _raw_order(side: dict[str, np.ndarray], kept: np.ndarray) -> np.ndarray:
    """Raw output rows of the post-processed detections ``kept`` (the post-processing keeps every
    detection, ordered by descending score, lower index first on ties - a stable sort)."""
    return np.argsort(-_scores(side), kind="stable")[kept]


def _parity_check(task: str, compare: Comparer) -> Callable[..., ParityReport]:
    """A model kind's parity check, as :func:`check_parity` calls it (see
    :mod:`edgeseg.runtime.kinds`): ``check(model, candidate, meta, n_images, min_agreement, seed,
    frame_sizes)`` runs ``compare`` on the synthetic frames and reports for ``task``; ``model`` and
    ``candidate`` as in :func:`check_parity`."""

    def check(model: Any, candidate: Any, meta: ModelMeta, n_images: int = defaults.PARITY_IMAGES,
              min_agreement: float = defaults.PARITY_MIN_AGREEMENT, seed: int = 0,
              frame_sizes: Sequence[tuple[int, int]] = FRAME_SIZES) -> ParityReport:
        frames = _frames(meta, n_images, seed, frame_sizes)
        backend = _candidate_backend(candidate)
        diffs = _Diffs()
        logits, frame, images = compare(backend, _reference_runner(model, meta), meta, frames, diffs)
        return ParityReport.from_stats(
            n_images=n_images, max_abs=diffs.max_abs, abs_sum=diffs.abs_sum, n_vals=diffs.n_vals,
            max_ref=diffs.max_ref, agreement_logits=logits, agreement_frame=frame, min_agreement=min_agreement,
            provider=backend.provider, images=images, task=task)

    check.__doc__ = compare.__doc__
    return check


check_semantic_parity = _parity_check("semantic", _compare_semantic)
check_instance_parity = _parity_check("instance", _compare_instance)
check_maskrcnn_parity = _parity_check("instance", _compare_maskrcnn)


def write_report(path: str | Path, report: ParityReport, **context: Any) -> Path:
    """Write ``report`` (plus ``context`` fields such as the model path) as JSON, atomically."""
    return write_json(path, {**context, **report.to_dict()})
