"""ModelMeta: the one description of a deployable model.

Written once at export (into ONNX metadata_props under ``edgeseg.meta``, or a checkpoint's
config.json) and read by every backend, so nothing downstream guesses class counts, strides or
normalisation.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from . import defaults
from .errors import ModelError
from .geometry import parse_size

FORMAT_VERSION = 1
#: Bounds on what metadata may declare (a hostile file could ask for anything).
MAX_CLASSES = 65535
MAX_INPUT_SIDE = 16384
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
        # Every field is type- and range-checked here: metadata comes from files users did not
        # write, and a wrong value must be refused, never decoded into plausible wrong output.
        if self.task not in TASKS:
            raise ModelError(f"model metadata: task must be one of {TASKS}, got {self.task!r}")
        if isinstance(self.classes, (str, bytes)) or not isinstance(self.classes, (list, tuple)):
            raise ModelError(f"model metadata: 'classes' must be a list of class names, got {self.classes!r:.80}")
        if not self.classes:
            raise ModelError("model metadata: 'classes' is empty; give the class names")
        if len(self.classes) > MAX_CLASSES:
            raise ModelError(f"model metadata: {len(self.classes)} classes; at most {MAX_CLASSES} are supported")
        if not all(isinstance(c, (str, int)) and not isinstance(c, bool) and len(str(c)) <= 256 for c in self.classes):
            raise ModelError("model metadata: every class name must be a string of at most 256 characters")
        self.classes = [str(c) for c in self.classes]
        self.input_size = parse_size(self.input_size, "model metadata: input_size", ModelError)
        if max(self.input_size) > MAX_INPUT_SIDE:
            raise ModelError(f"model metadata: input_size {self.input_size} exceeds {MAX_INPUT_SIDE} pixels a side")
        self.mean = _triple(self.mean, "mean")
        self.std = _triple(self.std, "std")
        if any(s <= 0 for s in self.std):
            raise ModelError(f"model metadata: std must be positive, got {self.std}")
        self.output_stride = _int(self.output_stride, "output_stride", 0, 4096)
        self.pad_value = _int(self.pad_value, "pad_value", 0, 255)
        if self.layout not in ("NCHW", "NHWC"):
            raise ModelError(f"model metadata: layout must be NCHW or NHWC, got {self.layout!r:.40}")
        if not isinstance(self.input_name, str) or not isinstance(self.output_names, (list, tuple)) \
                or not self.output_names or not all(isinstance(n, str) for n in self.output_names):
            raise ModelError("model metadata: input_name must be a string and output_names a non-empty list of strings")
        self.output_names = list(self.output_names)
        if not isinstance(self.dynamic, bool) or not isinstance(self.extra, dict):
            raise ModelError("model metadata: 'dynamic' must be true/false and 'extra' an object")
        if not self.palette:
            self.palette = default_palette(len(self.classes))
        if not isinstance(self.palette, (list, tuple)):
            raise ModelError(f"model metadata: palette must be a list of RGB triples, got {self.palette!r:.80}")
        self.palette = [_colour(c) for c in self.palette]
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
        version = d.get("format_version", FORMAT_VERSION)
        if not isinstance(version, int) or isinstance(version, bool):
            raise ModelError(f"model metadata: format_version must be an integer, got {version!r:.40}")
        if version > FORMAT_VERSION:
            raise ModelError(
                f"model metadata format {d['format_version']} is newer than this edgeseg "
                f"understands ({FORMAT_VERSION}); upgrade edgeseg"
            )
        try:
            return cls(**{k: v for k, v in d.items() if k in known})
        except (TypeError, ValueError, OverflowError) as e:
            raise ModelError(f"model metadata has a value of the wrong type ({e}); re-export the model") from None

    @classmethod
    def from_json(cls, text: str) -> "ModelMeta":
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise ModelError(f"model metadata is not valid JSON ({e}); re-export the model") from None
        except (RecursionError, MemoryError):  # a hostile file nests arrays thousands deep
            raise ModelError("model metadata is nested too deeply or too large to read; re-export the model") from None
        return cls.from_dict(d)

    def replace(self, **changes: Any) -> "ModelMeta":
        d = self.to_dict()
        d.update(changes)
        return ModelMeta.from_dict(d)


def _triple(v: Any, name: str) -> tuple[float, float, float]:
    try:
        if isinstance(v, (str, bytes)) or any(isinstance(x, (str, bytes, bool)) for x in v):
            raise TypeError
        a, b, c = (float(x) for x in v)
    except (TypeError, ValueError, OverflowError):
        raise ModelError(f"model metadata: {name} must be 3 numbers (R, G, B), got {v!r:.80}") from None
    if not all(math.isfinite(x) for x in (a, b, c)):
        raise ModelError(f"model metadata: {name} must be finite numbers, got {(a, b, c)}")
    return a, b, c


def _int(v: Any, name: str, lo: int, hi: int) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or int(v) != v \
            or not lo <= int(v) <= hi:
        raise ModelError(f"model metadata: {name} must be an integer in [{lo}, {hi}], got {v!r:.40}")
    return int(v)


def _colour(c: Any) -> tuple[int, int, int]:
    try:
        if isinstance(c, (str, bytes)):
            raise TypeError
        r, g, b = (_int(x, "palette colour", 0, 255) for x in c)
    except (TypeError, ValueError):
        raise ModelError(f"model metadata: palette colours must be 3 integers 0..255 (R, G, B), got {c!r:.40}") from None
    return r, g, b
