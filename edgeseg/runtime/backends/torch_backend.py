"""PyTorch backend: runs a training checkpoint directly (no export). Imports torch lazily.

This is the only runtime module that touches torch, and only inside methods, so that
registering it (on ``import edgeseg.runtime``) costs nothing on the ONNX path.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np

from ...errors import BackendError, ModelError
from ...meta import ModelMeta
from .registry import DIRECTORY, register_backend
from .base import Backend, TensorSpec, positive_threads


@register_backend
class TorchBackend(Backend):
    """Runs an edgeseg checkpoint (a directory with model.safetensors + config.json).

    ``path`` may be the checkpoint directory or its ``model.safetensors``. Options:
        device: "cpu", "cuda", "cuda:N" (default: CUDA when available, else CPU).
        fp16: run in half precision (inputs and outputs are float16); meant for CUDA.
        threads: torch intra-op threads (note: ``torch.set_num_threads`` is process-wide).
    """

    name = "torch"
    suffixes = (DIRECTORY, ".safetensors")
    options = ("device", "fp16", "threads")
    install_hint = "pip install 'edgeseg[train]' (PyTorch)"
    engine_module = "torch"

    def __init__(
        self,
        path: str | Path,
        device: str | None = None,
        fp16: bool = False,
        threads: int | None = None,
    ) -> None:
        super().__init__(path, device=device, fp16=fp16, threads=threads)
        import torch

        from ...models.checkpoint import load_checkpoint

        ckpt = self.path.parent if self.path.is_file() else self.path
        if threads is not None:
            torch.set_num_threads(positive_threads(threads))
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise BackendError(f"device={device!r} but torch sees no CUDA GPU; use device='cpu'")
        try:
            self._device = torch.device(device)
        except RuntimeError:
            raise BackendError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {device!r}") from None
        model, meta, _cfg = load_checkpoint(ckpt)
        self._fp16 = bool(fp16)
        self._dtype = torch.float16 if fp16 else torch.float32
        self.model = model.to(self._device, self._dtype).eval()
        self._meta: ModelMeta = meta
        np_dtype = np.dtype(np.float16 if fp16 else np.float32)
        stride = getattr(model, "output_stride", meta.output_stride)
        self._inputs = [TensorSpec(meta.input_name, ("batch", 3, "height", "width"), np_dtype)]
        if meta.task == "semantic":
            self._outputs = [
                TensorSpec(n, ("batch", meta.num_classes, f"height/{stride}", f"width/{stride}"), np_dtype)
                for n in meta.output_names
            ]
        else:  # instance heads: shapes depend on the output (boxes, scores, coeffs, protos)
            self._outputs = [TensorSpec(n, ("batch", "d1", "d2"), np_dtype) for n in meta.output_names]

    @property
    def device(self) -> str:
        return str(self._device)

    @property
    def provider(self) -> str:
        return f"torch-{self._device.type}{'-fp16' if self._fp16 else ''}"

    def infer(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        (image,) = self._take_inputs(inputs, f"torch checkpoint {self.path.name}")
        x = torch.from_numpy(np.ascontiguousarray(image)).to(self._device, self._dtype)
        with torch.inference_mode():
            y = self.model(x)
        names = [s.name for s in self._outputs]
        if isinstance(y, torch.Tensor):
            y = [y]
        elif isinstance(y, dict):
            y = [y[n] for n in names]
        if len(y) < len(names):
            raise ModelError(f"model returned {len(y)} outputs, metadata names {names}")
        return {n: t.detach().cpu().numpy() for n, t in zip(names, y)}
