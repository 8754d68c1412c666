"""Exponential moving average of a model's weights (validated and saved instead of the raw model)."""
from __future__ import annotations

import copy
import math

import torch


class ModelEMA:
    """Exponential moving average of a model's floating-point state (weights and BN statistics)."""

    def __init__(self, model: torch.nn.Module, decay: float = 0.9998, tau: float = 500.0) -> None:
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.decay, self.tau, self.updates = float(decay), float(tau), 0

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        self.updates += 1
        d = self.decay * (1.0 - math.exp(-self.updates / self.tau))
        src = model.state_dict()
        for k, v in self.module.state_dict().items():
            if v.dtype.is_floating_point:
                v.mul_(d).add_(src[k].detach(), alpha=1.0 - d)
            else:
                v.copy_(src[k])
