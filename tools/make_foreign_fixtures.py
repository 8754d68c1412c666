"""Write the foreign-model fixtures in tests/fixtures/foreign/ with the origin tools' own export code.

Run with the peer-tool environment (Ultralytics, segmentation_models_pytorch, torchvision), never
with edgeseg's own interpreter::

    YOLO_OFFLINE=1 /work/peer/bin/python tools/make_foreign_fixtures.py [--only NAME ...] [--work DIR]

Ultralytics models are built from their YAML at a tiny width/depth and trained for a few epochs on
a synthetic three-class shapes dataset (written in YOLO-seg format into the work folder), so their
detections are real and well separated. Semantic models keep deterministic random weights. Each
fixture's expected outputs are computed by the origin tool itself and stored next to it as a
compressed .npz; manifest.json describes every file. Seeds are fixed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "tests" / "fixtures" / "foreign"
CLASS_NAMES = ("circle", "square", "triangle")
FRAME_SIZES = ((240, 320), (300, 200))  # (height, width): one landscape, one portrait frame


# --------------------------------------------------------------------------- synthetic shapes


def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A smooth colour gradient with mild noise (BGR uint8)."""
    c0 = rng.uniform(40, 215, size=3)
    c1 = rng.uniform(40, 215, size=3)
    t = np.linspace(0.0, 1.0, w)[None, :, None] if rng.random() < 0.5 else np.linspace(0.0, 1.0, h)[:, None, None]
    img = c0 * (1 - t) + c1 * t
    img = np.broadcast_to(img, (h, w, 3)) + rng.normal(0, 6, size=(h, w, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def _shape_polygon(rng: np.random.Generator, cls: int, cx: float, cy: float, r: float) -> np.ndarray:
    """Polygon (K, 2) of one shape: a circle (32-gon), an axis-aligned square or a triangle."""
    if cls == 0:
        a = np.linspace(0, 2 * np.pi, 32, endpoint=False)
        return np.stack([cx + r * np.cos(a), cy + r * np.sin(a)], 1)
    if cls == 1:
        return np.array([[cx - r, cy - r], [cx + r, cy - r], [cx + r, cy + r], [cx - r, cy + r]])
    a = rng.uniform(0, 2 * np.pi) + np.array([0, 2 * np.pi / 3, 4 * np.pi / 3])
    return np.stack([cx + r * np.cos(a), cy + r * np.sin(a)], 1)


def shapes_image(seed: int, h: int, w: int, max_shapes: int = 4):
    """One synthetic BGR image and its instances [(class id, polygon in pixels)], non-overlapping."""
    rng = np.random.default_rng(seed)
    img = _background(rng, h, w)
    placed: list[tuple[float, float, float]] = []
    instances = []
    for _ in range(int(rng.integers(1, max_shapes + 1))):
        for _attempt in range(30):
            r = rng.uniform(0.09, 0.2) * min(h, w)
            cx, cy = rng.uniform(r + 2, w - r - 2), rng.uniform(r + 2, h - r - 2)
            if all((cx - x) ** 2 + (cy - y) ** 2 > (r + rr + 4) ** 2 for x, y, rr in placed):
                break
        else:
            continue
        cls = int(rng.integers(0, len(CLASS_NAMES)))
        poly = _shape_polygon(rng, cls, cx, cy, r)
        colour = tuple(int(v) for v in rng.integers(0, 256, size=3))
        while np.abs(np.array(colour) - img[int(cy), int(cx)].astype(int)).sum() < 150:
            colour = tuple(int(v) for v in rng.integers(0, 256, size=3))
        cv2.fillPoly(img, [np.round(poly).astype(np.int32)], colour, lineType=cv2.LINE_AA)
        placed.append((cx, cy, r))
        instances.append((cls, poly))
    return img, instances


def frames() -> list[np.ndarray]:
    """The small test frames stored with the fixtures (deterministic)."""
    return [shapes_image(1000 + i, h, w)[0] for i, (h, w) in enumerate(FRAME_SIZES)]


def write_shapes_dataset(root: Path, n_train: int = 96, n_val: int = 16) -> Path:
    """A YOLO-seg dataset of shapes (images/ + labels/ with normalised polygons) and its data.yaml
    (kept when already written: it is deterministic, and a training run may be reading it)."""
    if (root / "data.yaml").exists():
        return root / "data.yaml"
    for split, n, base in (("train", n_train, 0), ("val", n_val, 50_000)):
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            rng = np.random.default_rng(base + i)
            h, w = int(rng.integers(140, 321)), int(rng.integers(140, 321))
            img, inst = shapes_image(base + i, h, w)
            cv2.imwrite(str(root / "images" / split / f"{i:04d}.png"), img)
            lines = []
            for cls, poly in inst:
                p = np.clip(poly / [w, h], 0, 1).reshape(-1)
                lines.append(f"{cls} " + " ".join(f"{v:.5f}" for v in p))
            (root / "labels" / split / f"{i:04d}.txt").write_text("\n".join(lines) + "\n")
    data = root / "data.yaml"
    names = "\n".join(f"  {i}: {n}" for i, n in enumerate(CLASS_NAMES))
    data.write_text(f"path: {root}\ntrain: images/train\nval: images/val\nnames:\n{names}\n")
    return data


# --------------------------------------------------------------------------- Ultralytics

# name: (YAML under ultralytics/cfg/models, [depth, width, max_channels], export keyword arguments)
YOLO_FIXTURES = {
    "yolov8t-seg": ("v8/yolov8-seg.yaml", [0.33, 0.125, 64], {}),
    "yolo11t-seg": ("11/yolo11-seg.yaml", [0.33, 0.0625, 64], {}),
    "yolo11t-seg-nms": ("11/yolo11-seg.yaml", [0.33, 0.0625, 64], {"nms": True}),
    "yolo26t-seg": ("26/yolo26-seg.yaml", [0.33, 0.125, 128], {}),
    # Ultralytics 8.4 exports YOLO26's NMS-free one-to-one head only with nms=False
    "yolo26t-seg-end2end": ("26/yolo26-seg.yaml", [0.33, 0.125, 128], {"nms": False}),
}
YOLO_IMGSZ = 160
BIAS_BOOST = 1.0  # class-logit calibration of the briefly trained models (see boost_class_bias)


def _tiny_yaml(work: Path, rel: str, scale: list[float]) -> Path:
    """A copy of one of Ultralytics' model YAMLs with nc=3 and a single tiny scale 't'."""
    import ultralytics
    import yaml

    cfg = yaml.safe_load((Path(ultralytics.__file__).parent / "cfg" / "models" / rel).read_text())
    cfg["nc"] = len(CLASS_NAMES)
    cfg["scales"] = {"t": scale}
    stem = Path(rel).stem.replace("-seg", "t-seg")  # yolo11-seg -> yolo11t-seg (sets the scale 't')
    out = work / f"{stem}.yaml"
    out.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return out


def train_yolo(work: Path, data: Path, rel: str, scale: list[float], epochs: int, tune_epochs: int) -> Path:
    """Train a tiny YOLO-seg model from its YAML with Ultralytics' own trainer; returns weights.
    Two runs: from scratch with Ultralytics' default augmentation (mosaic...), then a fine-tune
    without mosaic at batch 8 so the tiny model gives confident, well-placed detections."""
    from ultralytics import YOLO

    cfg = _tiny_yaml(work, rel, scale)
    common = dict(data=str(data), imgsz=YOLO_IMGSZ, workers=0, device="cpu", plots=False, val=False, seed=0,
                  deterministic=True, amp=False, verbose=False, project=str(work / "runs"), exist_ok=True)
    first = work / "runs" / f"train-{cfg.stem}" / "weights" / "last.pt"
    if not first.exists():
        YOLO(str(cfg), task="segment").train(
            epochs=epochs, batch=16, optimizer="AdamW", lr0=0.004, warmup_epochs=1, close_mosaic=10,
            name=f"train-{cfg.stem}", **common)
    if tune_epochs <= 0:
        return first
    tuned = work / "runs" / f"tune-{cfg.stem}" / "weights" / "last.pt"
    if not tuned.exists():
        YOLO(str(first), task="segment").train(
            epochs=tune_epochs, batch=8, optimizer="AdamW", lr0=0.002, warmup_epochs=0, mosaic=0.0,
            name=f"tune-{cfg.stem}", **common)
    return tuned


def boost_class_bias(model, delta: float) -> int:
    """Add ``delta`` to the bias of every class-score output conv (cv3 / one2one_cv3 branches) so the
    briefly trained tiny model clears the default 0.25 threshold on more of its true objects."""
    import torch

    n = 0
    with torch.no_grad():
        for attr in ("cv3", "one2one_cv3"):
            for branch in getattr(model.model[-1], attr, None) or []:
                branch[-1].bias += delta
                n += 1
    return n


def export_yolo(weights: Path, name: str, export_kw: dict, work: Path, bias_boost: float = 0.0) -> Path:
    """Export with Ultralytics' own ONNX exporter at the training size; returns the .onnx path."""
    from ultralytics import YOLO

    tmp = work / "export" / name
    tmp.mkdir(parents=True, exist_ok=True)
    pt = tmp / f"{name}.pt"
    shutil.copy(weights, pt)
    model = YOLO(str(pt))
    if bias_boost and not boost_class_bias(model.model, bias_boost):
        raise RuntimeError(f"{name}: no class-score convs found to calibrate")
    path = model.export(format="onnx", imgsz=YOLO_IMGSZ, **export_kw)
    return Path(path)


def yolo_expected(onnx_path: Path, images: list[np.ndarray]) -> dict[str, np.ndarray]:
    """What Ultralytics itself predicts on the ONNX file (retina masks, default thresholds)."""
    from ultralytics import YOLO

    model = YOLO(str(onnx_path), task="segment")
    out: dict[str, np.ndarray] = {}
    for i, img in enumerate(images):
        r = model.predict(img, retina_masks=True, verbose=False)[0]
        n = len(r.boxes)
        out[f"boxes_{i}"] = r.boxes.xyxy.cpu().numpy().astype(np.float32).reshape(n, 4)
        out[f"scores_{i}"] = r.boxes.conf.cpu().numpy().astype(np.float32).reshape(n)
        out[f"classes_{i}"] = r.boxes.cls.cpu().numpy().astype(np.int32).reshape(n)
        masks = (r.masks.data.cpu().numpy() > 0.5) if r.masks is not None else np.zeros((0,) + img.shape[:2], bool)
        if masks.shape[1:] != img.shape[:2]:
            raise RuntimeError(f"retina masks at {masks.shape[1:]}, frame is {img.shape[:2]}")
        out[f"masks_{i}"] = np.packbits(masks.reshape(n, masks.shape[1] * masks.shape[2]), axis=1)
        out[f"mask_shape_{i}"] = np.array([n, *img.shape[:2]], np.int32)
    return out


# --------------------------------------------------------------------------- semantic (smp and wrappers)

SEM_SIZE = 128
LETTERBOX_PAD = 114
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _label_map(h: int, w: int, inst) -> np.ndarray:
    """Class map (0 background, 1 + class id per shape) drawn from the instance polygons."""
    lab = np.zeros((h, w), np.uint8)
    for cls, poly in inst:
        cv2.fillPoly(lab, [np.round(poly).astype(np.int32)], int(cls) + 1)
    return lab


def _semantic_batches(n: int = 96):
    """Shapes images at SEM_SIZE (RGB float 0..1, NCHW) with class maps, for the brief training."""
    import torch

    xs, ys = [], []
    for i in range(n):
        rng = np.random.default_rng(i)
        h, w = int(rng.integers(140, 321)), int(rng.integers(140, 321))
        img, inst = shapes_image(i, h, w)
        lab = _label_map(h, w, inst)
        img = cv2.resize(img, (SEM_SIZE, SEM_SIZE), interpolation=cv2.INTER_LINEAR)[:, :, ::-1]
        lab = cv2.resize(lab, (SEM_SIZE, SEM_SIZE), interpolation=cv2.INTER_NEAREST)
        xs.append(img.transpose(2, 0, 1).astype(np.float32) / 255.0)
        ys.append(lab.astype(np.int64))
    return torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(ys))


def _normalise(x):
    import torch

    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (x - mean) / std


def train_semantic(model, binary: bool, steps: int = 80, seed: int = 0):
    """A brief full-batch-sampled Adam training on the shapes so the outputs mean something."""
    import torch
    import torch.nn.functional as F

    torch.manual_seed(seed)
    xs, ys = _semantic_batches()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        idx = torch.randint(0, len(xs), (8,), generator=g)
        out = model(_normalise(xs[idx]))
        y = ys[idx]
        if out.shape[-2:] != y.shape[-2:]:
            out = F.interpolate(out, size=y.shape[-2:], mode="bilinear", align_corners=False)
        if binary:
            loss = F.binary_cross_entropy_with_logits(out[:, 0], (y > 0).float())
        else:
            loss = F.cross_entropy(out, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    return model


def _smp(kind: str, classes: int, **kw):
    import segmentation_models_pytorch as smp
    import torch

    torch.manual_seed(0)
    enc = "tu-test_efficientnet"
    if kind == "unet":
        return smp.Unet(enc, encoder_weights=None, classes=classes, decoder_channels=(32, 16, 16, 8, 8), **kw)
    return smp.Segformer(enc, encoder_weights=None, classes=classes, decoder_segmentation_channels=32, upsampling=1, **kw)


def semantic_models(work: Path) -> dict:
    """Trained torch models and how each is exported: name -> (module, input, names, facts)."""
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    cache = work / "semantic"
    cache.mkdir(parents=True, exist_ok=True)

    def trained(key, make, binary):
        m = make()
        p = cache / f"{key}.pt"
        if p.exists():
            m.load_state_dict(torch.load(p))
            return m.eval()
        train_semantic(m, binary)
        torch.save(m.state_dict(), p)
        return m

    unet_bin = trained("unet_bin", lambda: _smp("unet", 1), True)
    unet_mc = trained("unet_mc", lambda: _smp("unet", 4), False)
    segf = trained("segformer", lambda: _smp("segformer", 4), False)

    class Sigmoid(nn.Module):  # what smp's activation="sigmoid" appends, on the same trained weights
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, x):
            return torch.sigmoid(self.m(x))

    class ArgmaxKeepdim(nn.Module):  # mmdeploy end2end layout: logits resized to the input, argmax (N,1,H,W) int64
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, x):
            y = F.interpolate(self.m(x), size=x.shape[-2:], mode="bilinear", align_corners=False)
            return y.argmax(dim=1, keepdim=True)

    class ArgmaxInt32(nn.Module):  # PaddleSeg export layout: argmax (N,H,W) int32
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, x):
            return self.m(x).argmax(dim=1).to(torch.int32)

    class ChannelsLast(nn.Module):  # Keras/TFLite layout: (N,H,W,3) RGB 0..1 in, (N,H,W,C) logits out
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, x):
            return self.m(_normalise(x.permute(0, 3, 1, 2))).permute(0, 2, 3, 1)

    class Uint8Input(nn.Module):  # uint8 RGB (N,3,H,W) in, normalisation inside the graph
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, x):
            return self.m(_normalise(x.float() / 255.0))

    imagenet = {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD), "scale": "0..1", "channel_order": "RGB"}
    inside = {"scale": "0..255 uint8", "channel_order": "RGB", "note": "normalisation is inside the graph"}
    unit = {"mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0], "scale": "0..1", "channel_order": "RGB"}
    s = SEM_SIZE
    nchw = torch.zeros(1, 3, s, s)
    return {
        "smp-unet-binary-logits": (unet_bin, nchw, ("input", "output"), "binary-logits", imagenet),
        "smp-unet-binary-sigmoid": (Sigmoid(unet_bin), nchw, ("input", "output"), "binary-probabilities", imagenet),
        "smp-unet-multiclass": (unet_mc, nchw, ("input", "output"), "semantic-logits", imagenet),
        "smp-segformer-quarter": (segf, nchw, ("input", "output"), "semantic-logits", imagenet),
        "mmdeploy-style-argmax-int64": (ArgmaxKeepdim(segf), nchw, ("input", "output"), "labels", imagenet),
        "paddleseg-style-argmax-int32": (ArgmaxInt32(unet_mc), nchw, ("x", "argmax_0.tmp_0"), "labels", imagenet),
        "channels-last-logits": (ChannelsLast(unet_mc), torch.zeros(1, s, s, 3), ("input_1", "output_0"), "channels-last", unit),
        "uint8-input-logits": (Uint8Input(segf), torch.zeros(1, 3, s, s, dtype=torch.uint8), ("images", "logits"), "semantic-logits", inside),
    }


def export_torch(model, example, names: tuple[str, str], path: Path) -> None:
    """torch.onnx.export with fixed shapes, as the smp / torchvision docs show."""
    import torch

    with torch.no_grad():
        torch.onnx.export(model, (example,), str(path), input_names=[names[0]], output_names=[names[1]],
                          opset_version=17, dynamo=False)


def origin_input(img: np.ndarray, input_type: str, size_hw: tuple[int, int], convention: str, norm: dict,
                 letterbox: bool, pad: float) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """The origin recipe's network input for a BGR frame: a plain resize to ``size_hw``, or a centred
    letterbox padded with ``pad`` (keep ratio, as edgeseg and mmseg do); RGB, /255 and (x - mean) / std
    when ``norm`` has them (uint8 inputs as they are); NCHW, NHWC for channels-last. Returns the input
    and (top, left, height, width) of the image inside it."""
    h, w = img.shape[:2]
    H, W = size_hw
    if letterbox:
        r = min(H / h, W / w)
        nh, nw = int(round(h * r)), int(round(w * r))
        top, left = (H - nh) // 2, (W - nw) // 2
        rgb = np.full((H, W, 3), pad, np.uint8)
        rgb[top:top + nh, left:left + nw] = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_LINEAR)[:, :, ::-1]
    else:
        top, left, nh, nw = 0, 0, H, W
        rgb = cv2.resize(img, (W, H), interpolation=cv2.INTER_LINEAR)[:, :, ::-1]
    if input_type == "tensor(uint8)":
        return np.ascontiguousarray(rgb.transpose(2, 0, 1)[None]), (top, left, nh, nw)
    x = rgb.astype(np.float32) / 255.0
    if "std" in norm:
        x = (x - np.asarray(norm["mean"], np.float32)) / np.asarray(norm["std"], np.float32)
    x = x[None] if convention == "channels-last" else x.transpose(2, 0, 1)[None]
    return np.ascontiguousarray(x, np.float32), (top, left, nh, nw)


def origin_labels(y: np.ndarray, convention: str, frame_hw: tuple[int, int], size_hw: tuple[int, int],
                  crop: tuple[int, int, int, int], to_input: bool) -> np.ndarray:
    """The origin recipe's labels at the frame size from the model's output ``y``: in-graph labels
    cropped to ``crop`` and resized nearest; logits resized to the input first when ``to_input``
    (mmseg's keep-ratio decode: logits to the input size, padding cut off), then torch bilinear
    (align_corners=False) to the frame + argmax, or a threshold for one channel."""
    import torch
    import torch.nn.functional as F

    top, left, nh, nw = crop
    yt = torch.from_numpy(y)
    with torch.inference_mode():
        if convention == "labels":
            lab = yt.reshape(1, 1, *y.shape[-2:])[:, :, top:top + nh, left:left + nw].float()
            return F.interpolate(lab, size=frame_hw, mode="nearest")[0, 0].to(torch.uint8).numpy()
        if convention == "channels-last":
            yt = yt.permute(0, 3, 1, 2)
        if to_input:
            yt = F.interpolate(yt, size=size_hw, mode="bilinear", align_corners=False)
            yt = yt[:, :, top:top + nh, left:left + nw]
        up = F.interpolate(yt, size=frame_hw, mode="bilinear", align_corners=False)[0]
        if convention == "binary-logits":
            lab = up[0] > 0
        elif convention == "binary-probabilities":
            lab = up[0] > 0.5
        else:
            lab = up.argmax(0)
        return lab.to(torch.uint8).numpy()


def _semantic_labels(sess, img: np.ndarray, convention: str, facts: dict, letterbox: bool):
    """One frame through the origin recipe; returns (labels at the frame size, the graph's labels
    for the labels convention or None)."""
    inp = sess.get_inputs()[0]
    size = (SEM_SIZE, SEM_SIZE)
    x, crop = origin_input(img, inp.type, size, convention, facts, letterbox, LETTERBOX_PAD)
    y = sess.run(None, {inp.name: x})[0]
    graph = y.reshape(y.shape[-2:]).astype(np.uint8) if convention == "labels" else None
    return origin_labels(y, convention, img.shape[:2], size, crop, to_input=letterbox), graph


def semantic_expected(path: Path, convention: str, facts: dict, images: list[np.ndarray]) -> dict[str, np.ndarray]:
    """The origin pipeline's labels per frame, two ways: labels_i after a plain resize of the frame
    to the input (smp / torchvision tutorials), labels_letterbox_i after a centred letterbox (pad
    114) with the logits resized to the input and the padding cut off (mmseg's keep-ratio decode);
    both then torch upsample (bilinear, align_corners=False) + argmax, or a threshold for one channel."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    out: dict[str, np.ndarray] = {}
    for i, img in enumerate(images):
        out[f"labels_{i}"], graph = _semantic_labels(sess, img, convention, facts, letterbox=False)
        if graph is not None:
            out[f"labels_model_{i}"] = graph
        out[f"labels_letterbox_{i}"], graph = _semantic_labels(sess, img, convention, facts, letterbox=True)
        if graph is not None:
            out[f"labels_model_letterbox_{i}"] = graph
    return out


# --------------------------------------------------------------------------- manifest and main


def _io(path: Path) -> dict:
    """Exact inputs/outputs (name, shape, dtype), final ops and metadata_props of an ONNX file."""
    import onnx

    g = onnx.load(str(path))
    dt = {v: k for k, v in onnx.TensorProto.DataType.items()}

    def desc(v):
        t = v.type.tensor_type
        return {"name": v.name, "dtype": dt[t.elem_type].lower(),
                "shape": [d.dim_value if d.HasField("dim_value") else d.dim_param for d in t.shape.dim]}

    finals = []
    for o in g.graph.output:
        producer = next((n for n in g.graph.node if o.name in n.output), None)
        finals.append(producer.op_type if producer is not None else None)
    return {
        "inputs": [desc(v) for v in g.graph.input],
        "outputs": [desc(v) for v in g.graph.output],
        "final_ops": finals,
        "opset": max(o.version for o in g.opset_import if o.domain in ("", "ai.onnx")),
        "metadata_props": {kv.key: kv.value for kv in g.metadata_props},
    }


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="*", help="fixture names to (re)make; default all")
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "edgeseg-foreign-work",
                    help="scratch folder for the dataset, training runs and exports (reused)")
    ap.add_argument("--epochs", type=int, default=40, help="Ultralytics training epochs (with mosaic)")
    ap.add_argument("--tune-epochs", type=int, default=60, help="then fine-tune epochs without mosaic")
    ap.add_argument("--bias-boost", type=float, default=BIAS_BOOST, help="added to the class-score logits' bias")
    args = ap.parse_args(argv)

    import torch
    import ultralytics
    import segmentation_models_pytorch as smp

    torch.manual_seed(0)
    torch.use_deterministic_algorithms(True, warn_only=True)
    OUT.mkdir(parents=True, exist_ok=True)
    args.work.mkdir(parents=True, exist_ok=True)
    manifest_path = OUT / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {"fixtures": {}}
    want = set(args.only or [*YOLO_FIXTURES, *semantic_names()])

    imgs = frames()
    frame_files = []
    for i, img in enumerate(imgs):
        p = OUT / f"frame{i}.png"
        cv2.imwrite(str(p), img)
        frame_files.append(p.name)
    manifest["frames"] = {"files": frame_files, "format": "BGR PNG (cv2.imread)",
                          "sizes_hw": [list(s) for s in FRAME_SIZES]}
    manifest["generator"] = "tools/make_foreign_fixtures.py"
    manifest["ultralytics_notes"] = ULTRALYTICS_NOTES
    manifest["tools"] = {"ultralytics": ultralytics.__version__, "torch": torch.__version__.split("+")[0],
                         "segmentation_models_pytorch": smp.__version__}

    if want & set(YOLO_FIXTURES):
        data = write_shapes_dataset(args.work / "shapes")
    for name, (rel, scale, kw) in YOLO_FIXTURES.items():
        if name not in want:
            continue
        weights = train_yolo(args.work, data, rel, scale, args.epochs, args.tune_epochs)
        onnx_path = export_yolo(weights, name, kw, args.work, args.bias_boost)
        dst = OUT / f"{name}.onnx"
        shutil.copy(onnx_path, dst)
        expected = yolo_expected(dst, imgs)
        np.savez_compressed(OUT / f"{name}.expected.npz", **expected)
        io = _io(dst)
        e2e = io["metadata_props"].get("end2end") == "True" or bool(kw.get("nms"))
        manifest["fixtures"][name] = {
            "file": dst.name, "sha256_16": _sha(dst), "expected": f"{name}.expected.npz",
            "origin": {"tool": "ultralytics", "version": ultralytics.__version__},
            "made_by": (f"YOLO('{rel}' with nc=3, scales t={scale}) trained {args.epochs} + {args.tune_epochs} (no mosaic) epochs at imgsz "
                        f"{YOLO_IMGSZ} on synthetic shapes, then model.export(format='onnx', imgsz={YOLO_IMGSZ}"
                        + "".join(f", {k}={v!r}" for k, v in kw.items()) + ")"
                        + (f"; class-score conv biases +{args.bias_boost} before export" if args.bias_boost else "")),
            "convention": "ultralytics-end2end" if e2e else "ultralytics-yolo-seg",
            "task": "instance", "input_size_hw": [YOLO_IMGSZ, YOLO_IMGSZ], "classes": list(CLASS_NAMES),
            "normalisation": {"scale": "0..1", "mean": [0, 0, 0], "std": [1, 1, 1], "channel_order": "RGB",
                              "letterbox_pad": 114},
            "user_must_give": [],
            "expected_how": ("Ultralytics predict on the ONNX file: retina_masks=True, conf 0.25, iou 0.7, "
                             "max_det 300; boxes xyxy in frame pixels, masks packed bits (np.packbits, "
                             "row-major H*W per mask; mask_shape_i = (n, H, W))"),
            **io,
        }
        print("wrote", dst, dst.stat().st_size, "bytes")

    sem = semantic_models(args.work) if want & set(semantic_names()) else {}
    for name, (model, example, names, convention, facts) in sem.items():
        if name not in want:
            continue
        dst = OUT / f"{name}.onnx"
        export_torch(model, example, names, dst)
        np.savez_compressed(OUT / f"{name}.expected.npz", **semantic_expected(dst, convention, facts, imgs))
        binary = convention.startswith("binary")
        needs = [] if "note" in facts else ["mean", "std"]
        if convention == "channels-last":
            needs = ["input scale 0..1 RGB (mean 0, std 1)"]
        manifest["fixtures"][name] = {
            "file": dst.name, "sha256_16": _sha(dst), "expected": f"{name}.expected.npz",
            "origin": {"tool": "segmentation_models_pytorch + torch.onnx.export",
                       "version": f"smp {smp.__version__}, torch {torch.__version__.split('+')[0]}"},
            "made_by": _SEM_HOW[name],
            "convention": convention, "task": "semantic",
            "input_size_hw": [SEM_SIZE, SEM_SIZE],
            "classes": ["background", "foreground"] if binary else ["background", *CLASS_NAMES],
            "normalisation": facts, "user_must_give": needs,
            "expected_how": _SEM_EXPECTED[convention],
            **_io(dst),
        }
        print("wrote", dst, dst.stat().st_size, "bytes")

    manifest["fixtures"] = dict(sorted(manifest["fixtures"].items()))
    manifest_path.write_text(json.dumps(manifest, indent=1) + "\n")
    total = sum(p.stat().st_size for p in OUT.iterdir())
    print(f"fixtures folder: {total / 1e6:.2f} MB")
    return 0


# What Ultralytics 8.4.190 was seen to do (its predictor on these files), for whoever decodes them.
ULTRALYTICS_NOTES = [
    "metadata_props values are strings; 'imgsz' ('[160, 160]'), 'names' (\"{0: 'circle', ...}\"), 'args' (a dict "
    "literal with None/True/False), 'stride', 'batch', 'channels' are Python literals, but 'task' ('segment'), "
    "'head' ('Segment', 'Segment26'), 'description', 'author', 'date', 'version', 'license', 'docs' are plain "
    "text; 'end2end' is the text 'True' / 'False'.",
    "nms=True exports (yolo11t-seg-nms): output0 (1, 300, 6+32) x1,y1,x2,y2,score,class,coeffs in input pixels, "
    "zero rows after the kept ones; metadata end2end is 'False' there and args has 'nms': True.",
    "YOLO26: Ultralytics 8.4.190 exports the one-to-one (NMS-free) head only with nms=False (metadata end2end "
    "'True', args 'nms': False, output0 (1, 300, 38)); the default export (nms=None) gives the one-to-many head "
    "(1, 4+nc+32, A) with cx,cy,w,h like YOLOv8/11 (reg_max 1, head 'Segment26'), decoded with NMS.",
    "Predict on a fixed-size ONNX letterboxes to the file's imgsz (not the minimal rectangle), pad 114, "
    "top/left = round(pad/2 - 0.1).",
    "Boxes back to the frame: minus the integer pad, divided by per-axis gains new_w/w and new_h/h (the rounded "
    "resized size over the frame size, not the single scale), clipped to the frame.",
    "retina_masks=True: mask LOGITS (coeffs @ protos, no sigmoid) upsampled bilinearly by the smallest f in "
    "(1, 2, 4) that puts the letterbox padding on whole pixels, padding cropped on whole pixels, bilinear "
    "(align_corners=False) to the frame size, logit > 0, then zeroed outside the box (x1 <= x < x2 on pixel "
    "indices). Detections whose cropped mask is empty are dropped from the results.",
    "Class-aware NMS: boxes offset by class x 7680, IoU > 0.7 suppressed, candidates need best class score > "
    "0.25, at most 300 kept.",
]


def semantic_names() -> list[str]:
    return list(_SEM_HOW)


_SEM_HOW = {
    "smp-unet-binary-logits": "smp.Unet('tu-test_efficientnet', classes=1, decoder_channels=(32,16,16,8,8)), "
                              "trained 80 Adam steps (foreground = any shape); raw logits",
    "smp-unet-binary-sigmoid": "the same trained Unet followed by torch.sigmoid (what smp activation='sigmoid' "
                               "appends); the graph ends in Sigmoid",
    "smp-unet-multiclass": "smp.Unet('tu-test_efficientnet', classes=4, ...), trained 80 steps; full-resolution "
                           "logits (N, C, H, W)",
    "smp-segformer-quarter": "smp.Segformer('tu-test_efficientnet', classes=4, upsampling=1), trained 80 steps; "
                             "logits at 1/4 resolution as SegFormer (HF / mmseg) exports give",
    "mmdeploy-style-argmax-int64": "the trained Segformer + F.interpolate to the input size + argmax(dim=1, "
                                   "keepdim=True): int64 (N, 1, H, W) named input/output as mmdeploy's end2end.onnx",
    "paddleseg-style-argmax-int32": "the trained multi-class Unet + argmax(dim=1).to(int32): (N, H, W) int32, named "
                                    "x / argmax_0.tmp_0 as PaddleSeg's paddle2onnx exports",
    "channels-last-logits": "the trained multi-class Unet wrapped NHWC: input (N, H, W, 3) float RGB 0..1 "
                            "(normalisation inside), output (N, H, W, C) logits, as Keras/TFLite conversions",
    "uint8-input-logits": "the trained Segformer taking uint8 RGB (N, 3, H, W); cast, /255 and ImageNet "
                          "normalisation inside the graph; logits at 1/4",
}
_SEM_EXPECTED = {
    "semantic-logits": "labels_i: frame BGR->RGB, cv2.resize INTER_LINEAR to the input, normalised; ONNX Runtime; "
                       "torch F.interpolate(bilinear, align_corners=False) to the frame size; argmax. "
                       "labels_letterbox_i: the frame resized keeping its ratio (round(h r), round(w r)), "
                       "centred ((S - n) // 2) on a 114 canvas; logits F.interpolate to the input size, padding "
                       "cut off, F.interpolate to the frame, argmax",
    "channels-last": "as semantic-logits with NHWC in/out (permuted to NCHW before the torch upsample)",
    "binary-logits": "as semantic-logits, then upsampled logit > 0 (sigmoid > 0.5)",
    "binary-probabilities": "as semantic-logits, then upsampled probability > 0.5",
    "labels": "labels_model_i: the graph's own labels at the input size; labels_i: torch F.interpolate "
              "(mode='nearest') of those to the frame size; *_letterbox_i: the same after the centred "
              "letterbox (padding cut off before the nearest resize)",
}


if __name__ == "__main__":
    sys.exit(main())
