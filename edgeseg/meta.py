"""ModelMeta: the one description of a deployable model.

Written once at export (into ONNX metadata_props under ``edgeseg.meta``, or a checkpoint's
config.json) and read by every backend, so nothing downstream guesses class counts, strides or
normalisation.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from . import defaults
from .errors import ModelError
from .geometry import parse_size

FORMAT_VERSION = 1
TASKS = ("semantic", "instance")


#: Bright, mutually distinct RGB colours for classes 1..20 (after Trubetskoy's 20 distinct colours,
#: brightest first), so the first classes read on real footage; class 0 (background) is black.
BRIGHT_COLORS: tuple[tuple[int, int, int], ...] = (
    (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (70, 240, 240),
    (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128), (220, 190, 255), (170, 110, 40),
    (255, 250, 200), (170, 255, 195), (255, 215, 180), (145, 30, 180), (128, 128, 128), (128, 0, 0),
    (128, 128, 0), (0, 0, 128),
)


def default_palette(n: int) -> list[tuple[int, int, int]]:
    """RGB colours for ``n`` classes: black for class 0 (background), :data:`BRIGHT_COLORS` for
    classes 1-20, then the PASCAL VOC colour map."""
    bright = [(0, 0, 0), *BRIGHT_COLORS]
    return bright[:n] + voc_palette(n)[len(bright):]


def voc_palette(n: int) -> list[tuple[int, int, int]]:
    """The PASCAL VOC colour map (RGB), extended to ``n`` classes."""
    out = []
    for i in range(n):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        out.append((r, g, b))
    return out


@dataclass
class ModelMeta:
    """Everything a runtime needs to feed a model and read its outputs.

    ``input_size`` is (height, width); ``mean``/``std`` are RGB on the 0..255 scale; ``palette``
    is RGB per class. ``output_stride`` is input size / logits size (8 for the real-time models).
    """

    task: str
    classes: list[str]
    input_size: tuple[int, int]
    arch: str = "unknown"
    mean: tuple[float, float, float] = defaults.MEAN_RGB
    std: tuple[float, float, float] = defaults.STD_RGB
    output_stride: int = 8
    layout: str = "NCHW"
    input_name: str = "images"
    output_names: list[str] = field(default_factory=lambda: ["logits"])
    palette: list[tuple[int, int, int]] = field(default_factory=list)
    pad_value: int = defaults.PAD_VALUE
    dynamic: bool = False
    edgeseg_version: str = ""
    format_version: int = FORMAT_VERSION
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ModelError(f"model metadata: task must be one of {TASKS}, got {self.task!r}")
        if not self.classes:
            raise ModelError("model metadata: 'classes' is empty; give the class names")
        self.classes = [str(c) for c in self.classes]
        self.input_size = parse_size(self.input_size, "model metadata: input_size", ModelError)
        self.mean = _triple(self.mean, "mean")
        self.std = _triple(self.std, "std")
        if any(s <= 0 for s in self.std):
            raise ModelError(f"model metadata: std must be positive, got {self.std}")
        if not self.palette:
            self.palette = default_palette(len(self.classes))
        self.palette = [tuple(int(v) for v in c) for c in self.palette]  # type: ignore[misc]
        if len(self.palette) < len(self.classes):
            raise ModelError(
                f"model metadata: palette has {len(self.palette)} colours for "
                f"{len(self.classes)} classes; give one RGB colour per class"
            )
        if not self.edgeseg_version:
            from . import __version__

            self.edgeseg_version = __version__

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["input_size"] = list(self.input_size)
        d["mean"] = list(self.mean)
        d["std"] = list(self.std)
        d["palette"] = [list(c) for c in self.palette]
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelMeta":
        if not isinstance(d, dict):
            raise ModelError(f"model metadata must be a JSON object, got {type(d).__name__}")
        known = {f.name for f in fields(cls)}
        missing = [k for k in ("task", "classes", "input_size") if k not in d]
        if missing:
            raise ModelError(f"model metadata is missing {missing}; re-export the model with edgeseg")
        if int(d.get("format_version", FORMAT_VERSION)) > FORMAT_VERSION:
            raise ModelError(
                f"model metadata format {d['format_version']} is newer than this edgeseg "
                f"understands ({FORMAT_VERSION}); upgrade edgeseg"
            )
        return cls(**{k: v for k, v in d.items() if k in known})

    @classmethod
    def from_json(cls, text: str) -> "ModelMeta":
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise ModelError(f"model metadata is not valid JSON ({e}); re-export the model") from None
        return cls.from_dict(d)

    def replace(self, **changes: Any) -> "ModelMeta":
        d = self.to_dict()
        d.update(changes)
        return ModelMeta.from_dict(d)


def _triple(v: Any, name: str) -> tuple[float, float, float]:
    try:
        a, b, c = (float(x) for x in v)
    except (TypeError, ValueError):
        raise ModelError(f"model metadata: {name} must be 3 numbers (R, G, B), got {v!r}") from None
    return a, b, c
