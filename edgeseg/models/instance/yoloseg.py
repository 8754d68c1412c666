"""YOLOSeg: a single-stage real-time instance segmenter (YOLACT / YOLO-seg family), from scratch.

Plain Conv/BN/ReLU, nearest-neighbour upsampling and max-pooling only, so it exports to ONNX
opset 17 and runs on any backend:

* **Backbone** - CSP-lite (the YOLOv8 "C2f" layout with ReLU): a stride-2 stem, then one
  stride-2 conv + CSP block per stage down to 1/32, and an SPPF (three chained 5x5 max-pools) on
  the 1/32 features.
* **Neck** - FPN top-down + PAN bottom-up over strides 8/16/32 (concatenation + CSP blocks).
* **Head** - anchor-free and decoupled, one per level: class logits (``C`` object classes, no
  background), box distances ``(l, t, r, b)`` from the anchor point in stride units
  (``softplus``: positive, smooth, linear for large values - no DFL, so export stays trivial),
  and ``K`` raw mask coefficients.
* **Prototypes** - from the stride-8 neck feature, upsampled x2: ``K`` raw prototype maps at 1/4
  of the input. An instance mask is ``sigmoid(coeffs . protos)`` cropped to its box.

Forward contract (the exporter and the runtime rely on it). In eval mode ``model(x)`` with ``x``
(N,3,H,W) normalised RGB returns ``(boxes, scores, coeffs, protos)``:

    boxes  (N, A, 4) float32 xyxy in input pixels (pixel-edge coordinates)
    scores (N, A, C) sigmoid class probabilities
    coeffs (N, A, K) raw mask coefficients
    protos (N, K, H/4, W/4) raw prototypes

``A = sum_s (H/s)*(W/s)`` over strides 8, 16, 32, anchors ordered by stride then row-major; the
anchor point of cell (i, j) at stride ``s`` is ``((j + 0.5) s, (i + 0.5) s)``. Decoding happens in
the graph with static-shape ops only (no NMS, no data-dependent shapes). H and W must be multiples
of ``input_multiple`` (32). In train mode the forward returns a dict for the loss (see
:meth:`YOLOSeg.forward`).

Sizes: ``yoloseg_n`` (nano, real-time on a 2-core CPU at 256x256) and ``yoloseg_s``.
"""
from __future__ import annotations

import math
from typing import Dict, List, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn

from ..blocks import ConvBNReLU, StagedEncoder, check_channels
from ..registry import register_model

STRIDES: Tuple[int, int, int] = (8, 16, 32)
OUTPUT_NAMES: Tuple[str, str, str, str] = ("boxes", "scores", "coeffs", "protos")


class Bottleneck(nn.Module):
    """Two 3x3 ConvBNReLU with an identity shortcut."""

    def __init__(self, c: int, shortcut: bool = True) -> None:
        super().__init__()
        self.conv1 = ConvBNReLU(c, c, 3)
        self.conv2 = ConvBNReLU(c, c, 3)
        self.shortcut = shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(self.conv1(x))
        return x + y if self.shortcut else y


class CSPBlock(nn.Module):
    """CSP block in the YOLOv8 "C2f" layout: 1x1 conv, split in halves, ``n`` bottlenecks on one
    half, concatenate every intermediate output, 1x1 conv to ``cout``."""

    def __init__(self, cin: int, cout: int, n: int = 1, shortcut: bool = True) -> None:
        super().__init__()
        c = cout // 2
        self.c = c
        self.conv1 = ConvBNReLU(cin, 2 * c, 1)
        self.blocks = nn.ModuleList([Bottleneck(c, shortcut) for _ in range(n)])
        self.conv2 = ConvBNReLU((2 + n) * c, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv1(x)
        outs = [y[:, :self.c], y[:, self.c:]]
        for block in self.blocks:
            outs.append(block(outs[-1]))
        return self.conv2(torch.cat(outs, 1))


class SPPF(nn.Module):
    """Spatial pyramid pooling (fast): three chained 5x5 stride-1 max-pools, concatenated."""

    def __init__(self, cin: int, cout: int, k: int = 5) -> None:
        super().__init__()
        c = cin // 2
        self.conv1 = ConvBNReLU(cin, c, 1)
        self.pool = nn.MaxPool2d(k, 1, k // 2)
        self.conv2 = ConvBNReLU(4 * c, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        y1 = self.pool(x)
        y2 = self.pool(y1)
        return self.conv2(torch.cat([x, y1, y2, self.pool(y2)], 1))


class CSPBackbone(StagedEncoder):
    """Stem (3x3 s2 -> 1/2), then per stage a 3x3 s2 conv + CSP block -> 1/4, 1/8, 1/16, 1/32;
    SPPF on the last. ``forward`` returns the 1/8, 1/16 and 1/32 features (``channels``)."""

    def __init__(self, widths: Sequence[int], depths: Sequence[int]) -> None:
        super().__init__()
        if len(widths) != 5 or len(depths) != 4:
            raise ValueError(f"CSPBackbone: need 5 widths and 4 depths, got {list(widths)} / {list(depths)}")
        check_channels(widths, 8, "CSPBackbone widths")
        self.stem = ConvBNReLU(3, widths[0], 3, 2)
        stages = []
        for i, d in enumerate(depths):
            stages.append(nn.Sequential(ConvBNReLU(widths[i], widths[i + 1], 3, 2),
                                        CSPBlock(widths[i + 1], widths[i + 1], d)))
        self.stages = nn.ModuleList(stages)
        self.sppf = SPPF(widths[4], widths[4])
        self.channels = list(widths[2:])

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        feats = super().forward(x)
        c3, c4, c5 = feats[1], feats[2], self.sppf(feats[3])
        return [c3, c4, c5]


def _up2(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2.0, mode="nearest")


class PANNeck(nn.Module):
    """FPN top-down then PAN bottom-up over (1/8, 1/16, 1/32); outputs ``channels`` = ``widths``."""

    def __init__(self, cin: Sequence[int], widths: Sequence[int], depth: int = 1) -> None:
        super().__init__()
        c3, c4, c5 = cin
        n3, n4, n5 = widths
        self.td4 = CSPBlock(c5 + c4, n4, depth, shortcut=False)
        self.td3 = CSPBlock(n4 + c3, n3, depth, shortcut=False)
        self.down3 = ConvBNReLU(n3, n3, 3, 2)
        self.bu4 = CSPBlock(n3 + n4, n4, depth, shortcut=False)
        self.down4 = ConvBNReLU(n4, n4, 3, 2)
        self.bu5 = CSPBlock(n4 + c5, n5, depth, shortcut=False)
        self.channels = list(widths)

    def forward(self, feats: Sequence[torch.Tensor]) -> List[torch.Tensor]:
        c3, c4, c5 = feats
        t4 = self.td4(torch.cat([_up2(c5), c4], 1))
        p3 = self.td3(torch.cat([_up2(t4), c3], 1))
        p4 = self.bu4(torch.cat([self.down3(p3), t4], 1))
        p5 = self.bu5(torch.cat([self.down4(p4), c5], 1))
        return [p3, p4, p5]


class LevelHead(nn.Module):
    """Decoupled head for one level: class branch, box branch, coefficient branch."""

    def __init__(self, cin: int, c_cls: int, c_box: int, c_coef: int, num_classes: int, num_protos: int,
                 prior_prob: float = 0.01, init_dist: float = 2.0) -> None:
        super().__init__()
        self.cls = nn.Sequential(ConvBNReLU(cin, c_cls, 3), ConvBNReLU(c_cls, c_cls, 3),
                                 nn.Conv2d(c_cls, num_classes, 1))
        self.box = nn.Sequential(ConvBNReLU(cin, c_box, 3), ConvBNReLU(c_box, c_box, 3),
                                 nn.Conv2d(c_box, 4, 1))
        self.coef = nn.Sequential(ConvBNReLU(cin, c_coef, 3), nn.Conv2d(c_coef, num_protos, 1))
        nn.init.constant_(self.cls[-1].bias, -math.log((1 - prior_prob) / prior_prob))
        # softplus(b) = init_dist stride units: a box of ~2*init_dist cells at the start
        nn.init.constant_(self.box[-1].bias, math.log(math.expm1(init_dist)))

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.cls(x), self.box(x), self.coef(x)


class ProtoNet(nn.Module):
    """Prototype branch: 3x3 conv on the stride-8 feature, nearest x2, 3x3 conv, 1x1 -> K maps."""

    def __init__(self, cin: int, width: int, num_protos: int) -> None:
        super().__init__()
        self.conv1 = ConvBNReLU(cin, width, 3)
        self.conv2 = ConvBNReLU(width, width, 3)
        self.out = nn.Conv2d(width, num_protos, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.conv2(_up2(self.conv1(x))))


def _flat(t: torch.Tensor) -> torch.Tensor:
    """N,C,H,W -> N,H*W,C (row-major anchors)."""
    return t.flatten(2).transpose(1, 2)


def make_anchors(sizes: Sequence[Tuple[int, int]], strides: Sequence[int] = STRIDES,
                 device: Union[str, torch.device, None] = None,
                 like: Union[torch.Tensor, None] = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """Anchor points ``(A, 2)`` (x, y) in input pixels and their strides ``(A, 1)``.

    ``sizes`` are the (h, w) feature sizes per level; the point of cell (i, j) at stride ``s`` is
    ``((j + 0.5) s, (i + 0.5) s)``; levels in the given order, cells row-major.
    """
    pts, strs = [], []
    dtype = torch.float32
    for (h, w), s in zip(sizes, strides):
        ys = (torch.arange(h, device=device, dtype=dtype) + 0.5) * s
        xs = (torch.arange(w, device=device, dtype=dtype) + 0.5) * s
        gy, gx = torch.meshgrid(ys, xs, indexing="ij")
        pts.append(torch.stack([gx, gy], -1).reshape(-1, 2))
        strs.append(torch.full((h * w, 1), float(s), device=device, dtype=dtype))
    return torch.cat(pts), torch.cat(strs)


def decode_boxes(dist: torch.Tensor, anchors: torch.Tensor, strides: torch.Tensor) -> torch.Tensor:
    """Distances ``(..., A, 4)`` (l, t, r, b) in stride units -> xyxy boxes in input pixels."""
    lt, rb = dist[..., :2], dist[..., 2:]
    return torch.cat([anchors - lt * strides, anchors + rb * strides], -1)


class YOLOSeg(nn.Module):
    """CSP backbone + PAN neck + anchor-free decoupled head + prototype branch.

    ``widths``: backbone widths at strides 2, 4, 8, 16, 32; ``depths``: bottlenecks per backbone
    stage (strides 4..32); ``neck``: neck widths at strides 8, 16, 32; ``head``: hidden width of the
    class branch (at least ``min(num_classes, 128)``), half of it for the box branch (at least 16) and
    the coefficient branch (at least K); ``proto``: prototype branch width; ``num_protos``: K.
    ``task = "instance"`` tells instance models from semantic ones in the shared registry.
    """

    task = "instance"
    strides: Tuple[int, ...] = STRIDES
    output_names: Tuple[str, ...] = OUTPUT_NAMES
    output_stride = 4
    input_multiple = 32

    def __init__(self, num_classes: int, widths: Sequence[int] = (16, 32, 64, 128, 256),
                 depths: Sequence[int] = (1, 1, 1, 1), neck: Sequence[int] = (64, 128, 256),
                 neck_depth: int = 1, head: int = 64, proto: int = 32, num_protos: int = 32) -> None:
        super().__init__()
        if num_protos < 1:
            raise ValueError(f"num_protos must be >= 1, got {num_protos}")
        check_channels(list(neck) + [head, proto], 8, "YOLOSeg neck/head/proto")
        self.num_classes = int(num_classes)
        self.num_protos = int(num_protos)
        self.backbone = CSPBackbone(widths, depths)
        self.neck = PANNeck(self.backbone.channels, neck, neck_depth)
        c_cls = max(head, min(num_classes, 128))
        self.heads = nn.ModuleList([
            LevelHead(c, c_cls, max(head // 2, 16), max(head // 2, num_protos), num_classes, num_protos)
            for c in neck])
        self.proto = ProtoNet(neck[0], proto, num_protos)

    def forward(self, x: torch.Tensor) -> Union[Tuple[torch.Tensor, ...], Dict[str, torch.Tensor]]:
        """Eval: ``(boxes, scores, coeffs, protos)`` (module docstring). Train: a dict with
        ``cls`` (N,A,C) logits, ``dist`` (N,A,4) distances in stride units, ``boxes`` (N,A,4)
        decoded xyxy pixels, ``coeffs`` (N,A,K), ``protos`` (N,K,H/4,W/4), ``anchors`` (A,2) and
        ``anchor_strides`` (A,1)."""
        feats = self.neck(self.backbone(x))
        cls, dist, coef, sizes = [], [], [], []
        for f, head in zip(feats, self.heads):
            c, b, k = head(f)
            sizes.append((f.shape[2], f.shape[3]))
            cls.append(_flat(c))
            dist.append(_flat(b))
            coef.append(_flat(k))
        protos = self.proto(feats[0])
        cls_t, coeffs = torch.cat(cls, 1), torch.cat(coef, 1)
        dist_t = F.softplus(torch.cat(dist, 1))
        anchors, strides = make_anchors(sizes, self.strides, device=x.device)
        boxes = decode_boxes(dist_t, anchors, strides)
        if self.training:
            return {"cls": cls_t, "dist": dist_t, "boxes": boxes, "coeffs": coeffs, "protos": protos,
                    "anchors": anchors, "anchor_strides": strides}
        return boxes, torch.sigmoid(cls_t), coeffs, protos


def _build(num_classes: int, base: dict, kw: dict) -> YOLOSeg:
    cfg = dict(base)
    cfg.update(kw)
    return YOLOSeg(num_classes, **cfg)


@register_model("yoloseg_n", task="instance")
def yoloseg_n(num_classes: int, **kw) -> YOLOSeg:
    """Nano YOLOSeg (~1.4 M parameters, 0.83 GFLOPs at 256x256): real-time on a 2-core CPU."""
    return _build(num_classes, dict(widths=(16, 32, 64, 96, 160), depths=(1, 1, 1, 1), neck=(48, 96, 160),
                                    head=48, proto=32, num_protos=32), kw)


@register_model("yoloseg_s", task="instance")
def yoloseg_s(num_classes: int, **kw) -> YOLOSeg:
    """Small YOLOSeg (~3.0 M parameters, 1.45 GFLOPs at 256x256, YOLOv8n-like widths)."""
    return _build(num_classes, dict(widths=(16, 32, 64, 128, 256), depths=(1, 2, 2, 1), neck=(64, 128, 256),
                                    head=64, proto=48, num_protos=32), kw)
