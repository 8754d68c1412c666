"""Tiny models for tests, built the same way everywhere: seeded checkpoints per task and their ONNX
exports. ``tests/conftest.py`` caches the common ones per session; build others here."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from edgeseg.data import synthetic
from edgeseg.meta import ModelMeta

#: Input size of the tiny models.
SIZE = (64, 64)


def vary_weights(model: Any, seed: int = 0, zero_bias: bool = False) -> Any:
    """Kaiming-normal conv weights (optionally zero biases): the default init gives near-constant
    logits (one class everywhere), which would make label agreement trivially 100 %."""
    import torch

    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(m.weight, nonlinearity="relu", generator=g)
            if zero_bias and m.bias is not None:
                torch.nn.init.zeros_(m.bias)
    return model.eval()


def smallest_semantic_model() -> str:
    """The registered semantic model with the fewest parameters ("_" names are test-only)."""
    from edgeseg.models import create_model, list_models

    names = [n for n in list_models(task="semantic") if not n.startswith("_")]
    return min(names, key=lambda n: sum(p.numel() for p in create_model(n, 2).parameters()))


def semantic_checkpoint(d: Path, name: str = "liteseg_t", input_size: tuple[int, int] = SIZE, seed: int = 0,
                        vary: bool = True, zero_bias: bool = False) -> Path:
    """A checkpoint of ``name`` over the synthetic classes; weights varied (``vary``) or as
    initialised under ``torch.manual_seed(seed)``."""
    import torch

    from edgeseg.models import create_model, save_checkpoint

    torch.manual_seed(seed)
    model = create_model(name, len(synthetic.CLASSES))
    model = vary_weights(model, seed, zero_bias) if vary else model.eval()
    meta = ModelMeta(task="semantic", classes=list(synthetic.CLASSES), input_size=input_size, arch=name,
                     palette=synthetic.PALETTE, output_stride=model.output_stride)
    return save_checkpoint(d, model, meta)


def instance_checkpoint(d: Path, name: str = "yoloseg_n", input_size: tuple[int, int] = SIZE,
                        seed: int = 0) -> Path:
    """A single-stage instance checkpoint over the synthetic object classes whose class biases
    put scores around sigmoid(-1.5), so that many detections pass its 0.1 score threshold."""
    import torch

    from edgeseg.models import create_model, save_checkpoint

    torch.manual_seed(seed)
    model = create_model(name, len(synthetic.CLASSES) - 1).eval()
    with torch.no_grad():
        for head in model.heads:
            head.cls[-1].bias.fill_(-1.5)
    meta = ModelMeta(task="instance", classes=list(synthetic.CLASSES[1:]), input_size=input_size, arch=name,
                     output_stride=model.output_stride, output_names=list(model.output_names),
                     extra={"score_threshold": 0.1, "iou_threshold": 0.5})
    return save_checkpoint(d, model, meta)


def onnx_export(ckpt: Path, out: Path, **kw: Any) -> Path:
    """``ckpt`` exported to ``out`` (no parity check unless asked for)."""
    from edgeseg.export import export_onnx

    kw.setdefault("parity_images", 0)
    return export_onnx(ckpt, out, verbose=False, **kw).onnx_path
