"""FCN: the classic CNN + 1x1-conv classifier, done right.

Fully convolutional (no flatten, no Linear), so it takes any input size. A small ResNet-style
encoder (strides 4, 8, 16, 32) feeds an FCN-8s decoder: 1x1 "score" convs on the 1/32, 1/16 and
1/8 features, fused coarse-to-fine by bilinear upsampling + addition. Logits come out at 1/8 of
the input (``output_stride = 8``); callers upsample them (the runtime does it fused with argmax).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ..blocks import StagedEncoder, BasicBlock, ConvBNReLU, resize_to
from ..registry import register_model


class ResNetEncoder(StagedEncoder):
    """Stem (two stride-2 convs -> 1/4) + four stages of basic blocks at 1/4, 1/8, 1/16, 1/32.

    ``forward`` returns the stage outputs ``[c2, c3, c4, c5]``; ``channels`` lists their widths.
    """

    def __init__(self, widths: Sequence[int] = (32, 64, 128, 256), depths: Sequence[int] = (1, 1, 2, 1),
                 stem: int = 24) -> None:
        super().__init__()
        self.stem = nn.Sequential(ConvBNReLU(3, stem, 3, 2), ConvBNReLU(stem, widths[0], 3, 2))
        stages = []
        cin = widths[0]
        for i, (w, d) in enumerate(zip(widths, depths)):
            blocks = [BasicBlock(cin, w, 1 if i == 0 else 2)]
            blocks += [BasicBlock(w, w) for _ in range(d - 1)]
            stages.append(nn.Sequential(*blocks))
            cin = w
        self.stages = nn.ModuleList(stages)
        self.channels = list(widths)


class FCN8sDecoder(nn.Module):
    """FCN-8s skip fusion: score(1/32) -> up + score(1/16) -> up + score(1/8) -> logits at 1/8."""

    def __init__(self, channels: Sequence[int], num_classes: int, dropout: float = 0.1) -> None:
        super().__init__()
        c3, c4, c5 = channels[-3:]
        # a 3x3 context conv on the deepest features (FCN's fc6/fc7, fully convolutional)
        self.context = nn.Sequential(ConvBNReLU(c5, c5, 3), nn.Dropout2d(dropout))
        self.score5 = nn.Conv2d(c5, num_classes, 1)
        self.score4 = nn.Conv2d(c4, num_classes, 1)
        self.score3 = nn.Conv2d(c3, num_classes, 1)

    def forward(self, feats: Sequence[torch.Tensor]) -> torch.Tensor:
        f3, f4, f5 = feats[-3:]
        s = self.score5(self.context(f5))
        s = resize_to(s, f4) + self.score4(f4)
        return resize_to(s, f3) + self.score3(f3)


class FCN(nn.Module):
    """Encoder + FCN-8s decoder; ``forward(x: N,3,H,W) -> logits N,C,ceil(H/8),ceil(W/8)``."""

    output_stride = 8

    def __init__(self, num_classes: int, widths: Sequence[int] = (32, 64, 128, 256),
                 depths: Sequence[int] = (1, 1, 2, 1), stem: int = 24, dropout: float = 0.1) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.encoder = ResNetEncoder(widths, depths, stem)
        self.decoder = FCN8sDecoder(self.encoder.channels, num_classes, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


@register_model("fcn")
def fcn(num_classes: int, **kw) -> FCN:
    """FCN-8s on a small ResNet-style encoder (~2.8 M parameters)."""
    return FCN(num_classes, **kw)
