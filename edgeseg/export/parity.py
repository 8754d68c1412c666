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

    @property
    def agreement(self) -> float:
        """The gated number: the worse of the two agreements."""
        return min(self.agreement_logits, self.agreement_frame)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "agreement": self.agreement}

    def summary(self) -> str:
        verdict = "PASS" if self.passed else "FAIL"
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
    ``n_images`` synthetic scenes from :func:`edgeseg.data.synthetic.generate`."""
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


def write_report(path: str | Path, report: ParityReport, **context: Any) -> Path:
    """Write ``report`` (plus ``context`` fields such as the model path) as JSON, atomically."""
    return write_json(path, {**context, **report.to_dict()})
