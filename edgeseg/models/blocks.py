"""Shared building blocks: plain Conv/BN/ReLU pieces that export to any ONNX runtime."""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class ConvBNReLU(nn.Sequential):
    """Conv2d (no bias) -> BatchNorm2d -> ReLU (``act=False`` drops the ReLU)."""

    def __init__(self, cin: int, cout: int, k: int = 3, stride: int = 1, groups: int = 1,
                 act: bool = True) -> None:
        layers: list[nn.Module] = [
            nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
        ]
        if act:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class BasicBlock(nn.Module):
    """ResNet basic block (two 3x3 convs + identity/projection shortcut)."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = ConvBNReLU(cin, cout, 3, stride)
        self.conv2 = ConvBNReLU(cout, cout, 3, 1, act=False)
        self.short = (nn.Identity() if stride == 1 and cin == cout
                      else ConvBNReLU(cin, cout, 1, stride, act=False))
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.conv2(self.conv1(x)) + self.short(x))


def resize_to(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Bilinearly resize ``x`` to the spatial size of ``ref`` (half-pixel, align_corners=False)."""
    return F.interpolate(x, size=ref.shape[-2:], mode="bilinear", align_corners=False)


def global_avg_pool(x: torch.Tensor) -> torch.Tensor:
    """Global average pooling, N,C,H,W -> N,C,1,1, for any input size.

    Written as ReduceSum / (H*W): ``x.mean`` exports as an opset-18 ReduceMean that the dynamo
    exporter cannot convert down to opset 17.
    """
    return x.sum(dim=(2, 3), keepdim=True) / (x.shape[2] * x.shape[3])


def channel_mean(x: torch.Tensor) -> torch.Tensor:
    """Mean over channels, N,C,H,W -> N,1,H,W (ReduceSum * 1/C; see :func:`global_avg_pool`)."""
    return x.sum(dim=1, keepdim=True) * (1.0 / x.shape[1])


def make_divisible(v: float, d: int = 8) -> int:
    """Round ``v`` to the nearest multiple of ``d`` (at least ``d``)."""
    return max(d, int(v + d / 2) // d * d)


def check_channels(chs: Sequence[int], div: int, what: str) -> None:
    """Raise ValueError unless every channel count is a positive multiple of ``div``."""
    bad = [c for c in chs if c <= 0 or c % div]
    if bad:
        raise ValueError(f"{what}: channel counts must be positive multiples of {div}, got {list(chs)}")


class StagedEncoder(nn.Module):
    """Encoder base: ``stem`` then ``stages`` (an nn.ModuleList); forward returns every stage's output.

    Subclasses set ``self.stem``, ``self.stages`` and ``self.channels`` (output width per stage).
    """

    stem: nn.Module
    stages: nn.ModuleList

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        return feats
