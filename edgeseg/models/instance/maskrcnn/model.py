"""Mask R-CNN (He et al. 2017) from scratch in plain PyTorch: ResNet-style backbone + FPN, RPN,
RoIAlign box head and 28x28 mask head. Registered as ``maskrcnn`` (task "instance").

Architecture (``maskrcnn`` defaults: 2.3 M parameters, ~0.75 GMAC before the RoI heads at 256x256):

* **Backbone** - ResNet-18 layout with fewer channels: a 3x3 stride-2 stem, then four stages
  of :class:`~edgeseg.models.blocks.BasicBlock` at strides 4, 8, 16, 32.
* **FPN** - 1x1 laterals, nearest top-down upsampling, 3x3 output convs: P2-P5 (strides 4-32),
  ``fpn`` channels each.
* **RPN** - shared 3x3 conv, objectness logit and ``(dx, dy, dw, dh)`` per anchor; anchors of
  ``anchor_size * stride`` times ``anchor_scales`` per level, aspect ratios ``anchor_ratios``,
  centred on the cells. Proposals: top ``pre_nms`` per level, decoded, clipped, NMS per level
  (IoU 0.7), the best ``post_nms`` over all levels.
* **Box head** - multi-level RoIAlign 7x7 (sampling ratio 2, aligned), two FC layers, class logits
  (``C`` classes + background at index ``C``) and class-specific deltas (weights 10, 10, 5, 5).
* **Mask head** - RoIAlign 14x14, ``mask_convs`` 3x3 convs, a 2x2 stride-2 deconv and a 1x1 conv:
  ``C`` mask logits of 28x28 per RoI.

Inference (eval mode) ``model(x)`` for ``x`` (1, 3, H, W) normalised RGB returns the common
Mask R-CNN deployment convention (dynamic ``K`` detections, no batch axis)::

    boxes  (K, 4) float32  xyxy in input pixels (clipped to the input)
    labels (K,)   int64    class index, 0 .. C-1 (no background)
    scores (K,)   float32  class probability (softmax)
    masks  (K, 28, 28) float32  mask probabilities of the predicted class, over the box

sorted by descending score: softmax over classes, every (box, class) pair above
``score_threshold`` decoded with its class's deltas, NMS per class at ``nms_iou``, at most
``max_detections``. Exactly equal scores (the padding of a letterboxed frame gives many) are
ranked lower index first by a tiny constant offset (:func:`~.ops.tie_break`), so that PyTorch,
ONNX Runtime and OpenVINO pick the same boxes whatever their top-k and NMS do with ties; the
returned scores are the unchanged probabilities (so their order can differ from descending by
less than 2e-4 among near-ties). It exports to ONNX opset >= 16
with standard operators only (``NonMaxSuppression``, ``RoiAlign``, ``TopK``, ``Gather``,
``ScatterND``); the input size is fixed at export. ``detect(x)`` runs the same for a batch and
returns one dict per image. Training is driven by
:class:`edgeseg.train.maskrcnn_losses.MaskRCNNLoss`, which calls the stage methods
(:meth:`features`, :meth:`rpn`, :meth:`proposals`, :meth:`box_head`, :meth:`mask_head`).
"""
from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ...blocks import BasicBlock, ConvBNReLU, StagedEncoder, check_channels
from ...registry import register_model
from .ops import (_quiet_tracer, assign_levels, batched_nms, cell_anchors, clip_boxes, decode_boxes, grid_anchors,
                  multilevel_roi_align, stack_levels, tie_break, topk_min)

OUTPUT_NAMES: Tuple[str, str, str, str] = ("boxes", "labels", "scores", "masks")
STRIDES: Tuple[int, int, int, int] = (4, 8, 16, 32)
#: Box-head regression weights (dx, dy, dw, dh), as detectron2 / torchvision.
BOX_WEIGHTS: Tuple[float, float, float, float] = (10.0, 10.0, 5.0, 5.0)
RPN_WEIGHTS: Tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)
#: Tie-breaking steps (see :func:`~.ops.tie_break`) for objectness logits and class probabilities.
RPN_TIE_STEP = 2.0 ** -18
SCORE_TIE_STEP = 2.0 ** -23


class ResNetBackbone(StagedEncoder):
    """3x3 stride-2 stem, then per stage ``depths[i]`` BasicBlocks (the first with stride 2):
    features at strides 4, 8, 16, 32 with ``widths[1:]`` channels."""

    def __init__(self, widths: Sequence[int], depths: Sequence[int]) -> None:
        super().__init__()
        if len(widths) != 5 or len(depths) != 4 or min(depths) < 1:
            raise ValueError(f"ResNetBackbone: need 5 widths and 4 depths >= 1, got {list(widths)} / {list(depths)}")
        check_channels(widths, 8, "ResNetBackbone widths")
        self.stem = ConvBNReLU(3, widths[0], 3, 2)
        self.stages = nn.ModuleList(
            nn.Sequential(*[BasicBlock(widths[i] if j == 0 else widths[i + 1], widths[i + 1], 2 if j == 0 else 1)
                            for j in range(d)])
            for i, d in enumerate(depths))
        self.channels = list(widths[1:])


class FPN(nn.Module):
    """Feature pyramid: 1x1 laterals, nearest x2 top-down sums, 3x3 output convs (with BN)."""

    def __init__(self, cin: Sequence[int], width: int) -> None:
        super().__init__()
        self.lateral = nn.ModuleList(ConvBNReLU(c, width, 1, act=False) for c in cin)
        self.output = nn.ModuleList(ConvBNReLU(width, width, 3) for _ in cin)

    def forward(self, feats: Sequence[torch.Tensor]) -> List[torch.Tensor]:
        lat = [conv(f) for conv, f in zip(self.lateral, feats)]
        outs = [lat[-1]]
        for f in reversed(lat[:-1]):
            outs.insert(0, f + F.interpolate(outs[0], size=f.shape[-2:], mode="nearest"))
        return [o(f) for o, f in zip(self.output, outs)]


class RPNHead(nn.Module):
    """Shared over levels: 3x3 conv + ReLU, then 1x1 objectness (A) and deltas (4A)."""

    def __init__(self, c: int, num_anchors: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)
        self.obj = nn.Conv2d(c, num_anchors, 1)
        self.delta = nn.Conv2d(c, 4 * num_anchors, 1)
        for m in (self.conv, self.obj, self.delta):
            nn.init.normal_(m.weight, std=0.01)
            nn.init.zeros_(m.bias)

    def forward(self, feats: Sequence[torch.Tensor]) -> Tuple[List[torch.Tensor], List[torch.Tensor]]:
        """Per level: objectness (N, H*W*A) and deltas (N, H*W*A, 4), anchors ordered (y, x, a)."""
        objs, deltas = [], []
        for f in feats:
            t = F.relu(self.conv(f))
            o, d = self.obj(t), self.delta(t)
            n, a = o.shape[0], o.shape[1]
            objs.append(o.permute(0, 2, 3, 1).reshape(n, -1))
            deltas.append(d.view(n, a, 4, d.shape[2], d.shape[3]).permute(0, 3, 4, 1, 2).reshape(n, -1, 4))
        return objs, deltas


class BoxHead(nn.Module):
    """Flatten the 7x7 RoI features, two FC + ReLU, class logits (C + 1) and deltas (4C)."""

    def __init__(self, c: int, pool: int, fc: int, num_classes: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(c * pool * pool, fc)
        self.fc2 = nn.Linear(fc, fc)
        self.cls = nn.Linear(fc, num_classes + 1)
        self.delta = nn.Linear(fc, 4 * num_classes)
        nn.init.normal_(self.cls.weight, std=0.01)
        nn.init.normal_(self.delta.weight, std=0.001)
        nn.init.zeros_(self.cls.bias)
        nn.init.zeros_(self.delta.bias)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        x = F.relu(self.fc2(F.relu(self.fc1(x.flatten(1)))))
        return self.cls(x), self.delta(x)


class MaskHead(nn.Module):
    """``n`` 3x3 conv + ReLU on 14x14 RoI features, 2x2 stride-2 deconv + ReLU, 1x1 conv -> C
    mask logits at 28x28."""

    def __init__(self, c: int, width: int, n: int, num_classes: int) -> None:
        super().__init__()
        layers: List[nn.Module] = []
        for i in range(n):
            layers += [nn.Conv2d(c if i == 0 else width, width, 3, padding=1), nn.ReLU(inplace=True)]
        self.convs = nn.Sequential(*layers)
        self.up = nn.ConvTranspose2d(width if n else c, width, 2, 2)
        self.out = nn.Conv2d(width, num_classes, 1)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
        nn.init.normal_(self.out.weight, std=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(F.relu(self.up(self.convs(x))))


class MaskRCNN(nn.Module):
    """Two-stage instance segmenter (module docstring). ``num_classes`` object classes (no
    background). Stage sizes: ``widths`` (stem + 4 stages), ``depths`` (blocks per stage),
    ``fpn`` channels, ``box_fc`` hidden units, ``mask_convs`` x ``mask_width`` mask head.
    Anchors: ``anchor_size`` strides per level times each of ``anchor_scales``, ``anchor_ratios``
    (h / w). RPN: ``pre_nms``/``post_nms`` (train, test) proposal counts, ``rpn_nms_iou``.
    Inference: ``score_threshold``, ``nms_iou``, ``max_detections``.
    """

    task = "instance"
    head_type = "maskrcnn"
    output_names: Tuple[str, ...] = OUTPUT_NAMES
    strides: Tuple[int, ...] = STRIDES
    #: Finest feature stride (reported as ``meta.output_stride``).
    output_stride = 4
    input_multiple = 32
    #: Ground-truth masks are needed at full input resolution (RoIAligned to 28x28 targets).
    mask_target_stride = 1
    #: Anchors and image sizes are constants of the exported graph: export with a fixed input size.
    static_export_only = True
    box_pool = 7
    mask_pool = 14
    mask_size = 28
    sampling_ratio = 2

    def __init__(self, num_classes: int, widths: Sequence[int] = (24, 32, 64, 128, 192),
                 depths: Sequence[int] = (1, 1, 2, 1), fpn: int = 64, box_fc: int = 256, mask_convs: int = 4,
                 mask_width: int = 32, anchor_size: float = 6.0, anchor_scales: Sequence[float] = (1.0, 1.5),
                 anchor_ratios: Sequence[float] = (0.5, 1.0, 2.0), pre_nms: Sequence[int] = (600, 300),
                 post_nms: Sequence[int] = (300, 100), rpn_nms_iou: float = 0.7, score_threshold: float = 0.05,
                 nms_iou: float = 0.5, max_detections: int = 100) -> None:
        super().__init__()
        check_channels([fpn, mask_width], 8, "MaskRCNN fpn/mask_width")
        if mask_convs < 0 or box_fc < 1:
            raise ValueError(f"MaskRCNN: mask_convs must be >= 0 and box_fc >= 1, got {mask_convs}, {box_fc}")
        self.num_classes = int(num_classes)
        self.backbone = ResNetBackbone(widths, depths)
        self.fpn = FPN(self.backbone.channels, fpn)
        self.anchor_size = float(anchor_size)
        self.anchor_scales = tuple(float(s) for s in anchor_scales)
        self.anchor_ratios = tuple(float(r) for r in anchor_ratios)
        self.num_anchors = len(self.anchor_scales) * len(self.anchor_ratios)
        self.rpn_head = RPNHead(fpn, self.num_anchors)
        self.box_predictor = BoxHead(fpn, self.box_pool, box_fc, self.num_classes)
        self.mask_predictor = MaskHead(fpn, mask_width, mask_convs, self.num_classes)
        self.pre_nms = (int(pre_nms[0]), int(pre_nms[1]))
        self.post_nms = (int(post_nms[0]), int(post_nms[1]))
        self.rpn_nms_iou = float(rpn_nms_iou)
        self.score_threshold = float(score_threshold)
        self.nms_iou = float(nms_iou)
        self.max_detections = int(max_detections)
        for i, s in enumerate(self.strides):
            self.register_buffer(f"cell_anchors_{i}", cell_anchors(self.anchor_size * s, self.anchor_ratios,
                                                                   self.anchor_scales), persistent=False)

    # ------------------------------------------------------------------------------ stages

    def features(self, x: torch.Tensor) -> List[torch.Tensor]:
        """FPN features P2-P5 (strides 4..32)."""
        return self.fpn(self.backbone(x))

    def anchors(self, feats: Sequence[torch.Tensor]) -> List[torch.Tensor]:
        """Per level (H*W*A, 4) anchors in input pixels, in the RPN output order."""
        return [grid_anchors((f.shape[2], f.shape[3]), s, getattr(self, f"cell_anchors_{i}"))
                for i, (f, s) in enumerate(zip(feats, self.strides))]

    def rpn(self, feats: Sequence[torch.Tensor]) -> Tuple[List[torch.Tensor], List[torch.Tensor], List[torch.Tensor]]:
        """RPN outputs per level: objectness logits (N, A_l), deltas (N, A_l, 4), anchors (A_l, 4)."""
        objs, deltas = self.rpn_head(feats)
        return objs, deltas, self.anchors(feats)

    def proposals(self, objs: Sequence[torch.Tensor], deltas: Sequence[torch.Tensor], anchors: Sequence[torch.Tensor],
                  image_hw: Tuple[int, int], i: int, training: bool) -> Tuple[torch.Tensor, torch.Tensor]:
        """Image ``i``'s proposals (P, 4) and objectness logits (P,): per level the ``pre_nms`` best
        anchors, decoded and clipped; NMS per level; the ``post_nms`` best overall. Detached."""
        pre, post = (self.pre_nms[0], self.post_nms[0]) if training else (self.pre_nms[1], self.post_nms[1])
        boxes, scores = [], []
        for o, d, a in zip(objs, deltas, anchors):
            o_i = tie_break(o[i].detach(), RPN_TIE_STEP, o.shape[1])
            top = topk_min(o_i, pre)
            boxes.append(clip_boxes(decode_boxes(d[i].detach()[top], a[top], RPN_WEIGHTS), image_hw))
            scores.append(o_i[top])
        b, lvl = stack_levels(boxes)
        s = torch.cat(scores)
        keep = batched_nms(b, s, lvl, len(boxes), self.rpn_nms_iou, post)
        return b[keep], s[keep]

    def _pool(self, feats: Sequence[torch.Tensor], boxes: torch.Tensor, batch_idx: torch.Tensor, size: int
              ) -> torch.Tensor:
        levels = assign_levels(boxes, len(feats), int(math.log2(self.strides[0])))
        return multilevel_roi_align(feats, self.strides, boxes, batch_idx, levels, (size, size), self.sampling_ratio)

    def box_head(self, feats: Sequence[torch.Tensor], boxes: torch.Tensor, batch_idx: torch.Tensor
                 ) -> Tuple[torch.Tensor, torch.Tensor]:
        """RoIs (K, 4) of images ``batch_idx`` -> class logits (K, C + 1; background last) and
        class-specific deltas (K, C, 4)."""
        logits, deltas = self.box_predictor(self._pool(feats, boxes, batch_idx, self.box_pool))
        return logits, deltas.view(-1, self.num_classes, 4)

    def mask_head(self, feats: Sequence[torch.Tensor], boxes: torch.Tensor, batch_idx: torch.Tensor) -> torch.Tensor:
        """RoIs (K, 4) -> mask logits (K, C, 28, 28)."""
        return self.mask_predictor(self._pool(feats, boxes, batch_idx, self.mask_pool))

    # --------------------------------------------------------------------------- inference

    def _detect_one(self, feats: Sequence[torch.Tensor], rpn_out: Tuple[Any, Any, Any], i: int,
                    image_hw: Tuple[int, int], score_threshold: float, nms_iou: float, max_det: int
                    ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        props, _ = self.proposals(*rpn_out, image_hw, i, training=False)
        bidx = torch.full_like(props[:, 0], i, dtype=torch.int64)
        logits, deltas = self.box_head(feats, props, bidx)
        c = self.num_classes
        probs = F.softmax(logits, -1)[:, :c]  # (P, C), background dropped
        boxes = clip_boxes(decode_boxes(deltas, props[:, None, :], BOX_WEIGHTS), image_hw)  # (P, C, 4)
        flat_boxes, flat_scores = boxes.reshape(-1, 4), probs.reshape(-1)
        cls = torch.arange(c, device=probs.device).repeat(props.shape[0])  # class of each flat entry
        ranked = tie_break(flat_scores, SCORE_TIE_STEP, max(self.post_nms) * c)
        keep = batched_nms(flat_boxes, ranked, cls, c, nms_iou, max_det, score_threshold)
        det_boxes, det_scores, det_labels = flat_boxes[keep], flat_scores[keep], cls[keep]
        mask_logits = self.mask_head(feats, det_boxes, bidx[:1].expand(det_boxes.shape[0]))
        k, m = mask_logits.shape[0], mask_logits.shape[-1]
        sel = det_labels.view(-1, 1, 1, 1).expand(k, 1, m, m)
        masks = torch.sigmoid(torch.gather(mask_logits, 1, sel)[:, 0])
        return det_boxes, det_labels, det_scores, masks

    @torch.no_grad()
    def detect(self, x: torch.Tensor, score_threshold: Optional[float] = None, nms_iou: Optional[float] = None,
               max_detections: Optional[int] = None) -> List[Dict[str, torch.Tensor]]:
        """Inference on a batch (N, 3, H, W): per image ``{"boxes", "labels", "scores", "masks"}``
        (the eval-mode convention); thresholds default to the model's."""
        feats = self.features(x)
        rpn_out = self.rpn(feats)
        hw = (int(x.shape[2]), int(x.shape[3]))
        st = self.score_threshold if score_threshold is None else float(score_threshold)
        iou = self.nms_iou if nms_iou is None else float(nms_iou)
        md = self.max_detections if max_detections is None else int(max_detections)
        return [dict(zip(OUTPUT_NAMES, self._detect_one(feats, rpn_out, i, hw, st, iou, md)))
                for i in range(x.shape[0])]

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """Eval: ``(boxes, labels, scores, masks)`` of the single image in ``x`` (1, 3, H, W)
        (module docstring). Training goes through :class:`edgeseg.train.maskrcnn_losses.MaskRCNNLoss`."""
        if self.training:
            raise RuntimeError("MaskRCNN.forward is the inference graph; train it with "
                               "edgeseg.train.maskrcnn_losses.MaskRCNNLoss (the instance trainer does)")
        with _quiet_tracer():  # the export is static-shape by design: sizes become constants
            if x.shape[0] != 1:
                raise ValueError(f"MaskRCNN.forward takes one image (1, 3, H, W), got batch {x.shape[0]}; "
                                 "use detect() for batches")
            feats = self.features(x)
            return self._detect_one(feats, self.rpn(feats), 0, (int(x.shape[2]), int(x.shape[3])),
                                    self.score_threshold, self.nms_iou, self.max_detections)

    def meta_extra(self) -> Dict[str, Any]:
        """What a deployment needs to know about the graph (stored in ModelMeta.extra)."""
        return {"head": "maskrcnn", "strides": list(self.strides), "mask_size": self.mask_size,
                "graph_score_threshold": self.score_threshold, "graph_nms_iou": self.nms_iou,
                "graph_max_detections": self.max_detections}


def _build(num_classes: int, base: dict, kw: dict) -> MaskRCNN:
    cfg = dict(base)
    cfg.update(kw)
    return MaskRCNN(num_classes, **cfg)


@register_model("maskrcnn", task="instance")
def maskrcnn(num_classes: int, **kw: Any) -> MaskRCNN:
    """Light Mask R-CNN (2.3 M parameters): ResNet-18-style backbone at reduced width, FPN-64, 7x7 RoI
    box head with two 256-unit FC layers, 4-conv 32-channel mask head."""
    return _build(num_classes, {}, kw)
