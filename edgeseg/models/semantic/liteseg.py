"""LiteSeg: a real-time segmenter in the PP-LiteSeg family, written from scratch.

Plain Conv/BN/ReLU throughout, so it exports to ONNX opset 17 and runs on any backend:

* **Encoder** - STDC-style (Fan et al., CVPR 2021): a two-conv stem to 1/4, then stages at 1/8,
  1/16 and 1/32 built from STDC modules (a 1x1 conv and a cascade of 3x3 convs with shrinking
  widths, all concatenated: multi-scale receptive fields at a low FLOP count).
* **Context** - an SPPM-like pyramid pooling module on the 1/32 features. PP-LiteSeg's SPPM uses
  adaptive pooling to 1/2/4 bins, which only exports with static shapes that divide the bins; we use
  a global mean (ReduceMean) plus fixed-window average pools (5/2 and 9/4, padded), which export for
  any input size and give the same range of receptive fields.
* **Decoder** - PP-LiteSeg's flexible lightweight decoder: UAFM units (spatial attention built from
  channel-wise mean/max of both inputs) fuse 1/32 -> 1/16 -> 1/8, with channels shrinking as the
  resolution grows.
* **Head** - 3x3 ConvBNReLU + 1x1 conv -> logits at 1/8 (``output_stride = 8``). No softmax/argmax.

Sizes: ``liteseg_t`` (tiny, the shipped default), ``liteseg_s``, ``liteseg_m``.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ..blocks import StagedEncoder, ConvBNReLU, channel_mean, check_channels, global_avg_pool, resize_to
from ..registry import register_model


class STDCModule(nn.Module):
    """Short-Term Dense Concatenate module (4 steps): widths cout/2, /4, /8, /8, concatenated.

    With ``stride=2`` the first step's output is downsampled by a depthwise 3x3 conv for the cascade
    and by a 3x3 average pool for the concatenation, as in STDC.
    """

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        check_channels([cout], 8, "STDCModule")
        self.stride = stride
        c = [cout // 2, cout // 4, cout // 8, cout // 8]
        self.conv0 = ConvBNReLU(cin, c[0], 1)
        if stride == 2:
            self.down = ConvBNReLU(c[0], c[0], 3, 2, groups=c[0], act=False)
            self.skip = nn.AvgPool2d(3, 2, 1)
        self.convs = nn.ModuleList([ConvBNReLU(c[0], c[1], 3), ConvBNReLU(c[1], c[2], 3),
                                    ConvBNReLU(c[2], c[3], 3)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x0 = self.conv0(x)
        if self.stride == 2:
            outs = [self.skip(x0)]
            y = self.down(x0)
        else:
            outs = [x0]
            y = x0
        for conv in self.convs:
            y = conv(y)
            outs.append(y)
        return torch.cat(outs, dim=1)


class STDCEncoder(StagedEncoder):
    """Stem (3x3 s2 + 3x3 s2 -> 1/4) and three STDC stages -> features at 1/8, 1/16, 1/32."""

    def __init__(self, stem: Sequence[int], widths: Sequence[int], depths: Sequence[int]) -> None:
        super().__init__()
        self.stem = nn.Sequential(ConvBNReLU(3, stem[0], 3, 2), ConvBNReLU(stem[0], stem[1], 3, 2))
        stages = []
        cin = stem[1]
        for w, d in zip(widths, depths):
            mods = [STDCModule(cin, w, 2)] + [STDCModule(w, w, 1) for _ in range(d - 1)]
            stages.append(nn.Sequential(*mods))
            cin = w
        self.stages = nn.ModuleList(stages)
        self.channels = list(widths)


class PyramidPool(nn.Module):
    """SPPM-like context module: global mean + two padded average pools, summed, then 3x3 conv."""

    def __init__(self, cin: int, mid: int, cout: int) -> None:
        super().__init__()
        self.global_conv = ConvBNReLU(cin, mid, 1)
        self.pools = nn.ModuleList([nn.AvgPool2d(5, 2, 2), nn.AvgPool2d(9, 4, 4)])
        self.pool_convs = nn.ModuleList([ConvBNReLU(cin, mid, 1) for _ in self.pools])
        self.out = ConvBNReLU(mid, cout, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.global_conv(global_avg_pool(x))  # N,mid,1,1: broadcasts in the sum below
        for pool, conv in zip(self.pools, self.pool_convs):
            y = y + resize_to(conv(pool(x)), x)
        return self.out(y)


class UAFM(nn.Module):
    """Unified attention fusion (spatial attention): out = up(high)*a + low*(1-a), then 3x3 conv.

    ``a = sigmoid(conv(cat[mean_c(up), max_c(up), mean_c(low), max_c(low)]))``.
    """

    def __init__(self, c_low: int, c_high: int, cout: int) -> None:
        super().__init__()
        self.low = ConvBNReLU(c_low, c_high, 3)
        self.attn = nn.Sequential(ConvBNReLU(4, 2, 3), ConvBNReLU(2, 1, 3, act=False))
        self.out = ConvBNReLU(c_high, cout, 3)

    def forward(self, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        low = self.low(low)
        up = resize_to(high, low)
        stats = torch.cat([channel_mean(up), up.amax(1, keepdim=True),
                           channel_mean(low), low.amax(1, keepdim=True)], dim=1)
        a = torch.sigmoid(self.attn(stats))
        return self.out(up * a + low * (1 - a))


class SegHead(nn.Module):
    """3x3 ConvBNReLU -> dropout -> 1x1 conv to ``num_classes`` logits."""

    def __init__(self, cin: int, mid: int, num_classes: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.conv = ConvBNReLU(cin, mid, 3)
        self.drop = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()
        self.cls = nn.Conv2d(mid, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cls(self.drop(self.conv(x)))


class LiteSeg(nn.Module):
    """STDC encoder + pyramid pooling + UAFM decoder + head; logits at 1/8 of the input.

    ``decoder`` lists the decoder widths at 1/32, 1/16, 1/8 (coarse to fine, shrinking).
    """

    output_stride = 8

    def __init__(self, num_classes: int, stem: Sequence[int] = (16, 32),
                 widths: Sequence[int] = (64, 128, 256), depths: Sequence[int] = (1, 1, 1),
                 decoder: Sequence[int] = (64, 48, 32), head: int = 32, dropout: float = 0.0) -> None:
        super().__init__()
        check_channels(widths, 8, "LiteSeg widths")
        self.num_classes = num_classes
        self.encoder = STDCEncoder(stem, widths, depths)
        c8, c16, c32 = self.encoder.channels
        d32, d16, d8 = decoder
        self.context = PyramidPool(c32, d32, d32)
        self.fuse16 = UAFM(c16, d32, d16)
        self.fuse8 = UAFM(c8, d16, d8)
        self.head = SegHead(d8, head, num_classes, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f8, f16, f32 = self.encoder(x)
        y = self.context(f32)
        y = self.fuse16(f16, y)
        y = self.fuse8(f8, y)
        return self.head(y)


@register_model("liteseg_t")
def liteseg_t(num_classes: int, **kw) -> LiteSeg:
    """Tiny LiteSeg (~0.3 M parameters): the shipped default, fast on a CPU at 256x256."""
    cfg = dict(stem=(16, 32), widths=(48, 96, 160), depths=(1, 1, 1), decoder=(64, 48, 32), head=32)
    cfg.update(kw)
    return LiteSeg(num_classes, **cfg)


@register_model("liteseg_s")
def liteseg_s(num_classes: int, **kw) -> LiteSeg:
    """Small LiteSeg (~1.2 M parameters)."""
    cfg = dict(stem=(24, 48), widths=(96, 192, 320), depths=(2, 2, 1), decoder=(96, 64, 48), head=48)
    cfg.update(kw)
    return LiteSeg(num_classes, **cfg)


@register_model("liteseg_m")
def liteseg_m(num_classes: int, **kw) -> LiteSeg:
    """Medium LiteSeg (STDC1-like widths, ~5 M parameters)."""
    cfg = dict(stem=(32, 64), widths=(128, 256, 512), depths=(2, 2, 2), decoder=(128, 96, 64),
               head=64, dropout=0.1)
    cfg.update(kw)
    return LiteSeg(num_classes, **cfg)
