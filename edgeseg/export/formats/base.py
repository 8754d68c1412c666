"""What an export format is (:class:`ExportFormat`), the registry of formats, and the helpers their modules share."""
from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from ...errors import EdgesegError
from ...registry import Registry

#: Precisions, in the order the CLI flags name them (--fp16, --int8; no flag is fp32).
PRECISIONS = ("fp32", "fp16", "int8")
#: Format-specific CLI options (argparse dest -> flag). A format lists those it accepts.
OPTION_FLAGS: dict[str, str] = {
    "calib_method": "--calib-method", "keep_float": "--keep-float", "int8_ops": "--int8-ops",
    "workspace": "--workspace", "max_batch": "--max-batch", "int8_mode": "--int8-mode",
    "timing_cache": "--timing-cache", "threads": "--threads",
}


@dataclass(frozen=True)
class ExportFormat:
    """One ``--format`` value.

    ``run(source, out, precision, args, common)`` exports ``source`` (a checkpoint directory or
    an edgeseg ``.onnx``) to ``out`` (None: ``default_out(source, precision)``); ``common``
    holds the keyword arguments every gated exporter takes (input size, gate settings, ...) and
    ``args`` the parsed command line for the format's own options.
    """

    name: str
    help: str
    run: Callable[[Path, str | None, str, argparse.Namespace, dict[str, Any]], Any]
    default_out: Callable[[Path, str], Path]
    precisions: tuple[str, ...] = ("fp32",)
    #: precision -> message when asked for one the format does not build (else a generic one)
    refusals: Mapping[str, str] = field(default_factory=dict)
    #: format-specific options accepted (keys of OPTION_FLAGS)
    options: tuple[str, ...] = ()
    #: shown in --out's help: what the default output looks like
    out_hint: str = ""

    def check(self, precision: str, args: argparse.Namespace) -> None:
        """Refuse a precision or option this format does not take (EdgesegError)."""
        if precision not in self.precisions:
            flag = {"fp16": "--fp16", "int8": "--int8"}[precision]
            raise EdgesegError(self.refusals.get(precision) or (
                f"{flag} does not apply to --format {self.name} (it builds {', '.join(self.precisions)}); "
                f"formats with {precision}: {', '.join(f.name for f in FORMATS.values() if precision in f.precisions)}"))
        foreign: dict[str, list[str]] = {}
        for dest, flag in OPTION_FLAGS.items():
            if getattr(args, dest, None) is not None and dest not in self.options:
                owners = tuple(f.name for f in FORMATS.values() if dest in f.options)
                foreign.setdefault(", ".join(owners), []).append(flag)
        for owners, flags in foreign.items():
            raise EdgesegError(f"{', '.join(flags)}: only for --format {owners}")


#: name -> ExportFormat, in registration order (the order --help lists them)
FORMATS: Registry[ExportFormat] = Registry("export format")


def register_format(fmt: ExportFormat) -> ExportFormat:
    """Add ``fmt`` to the registry (a name may be registered once)."""
    return FORMATS.add(fmt.name, fmt)


def get_format(name: str) -> ExportFormat:
    """The registered format ``name``; EdgesegError listing the valid names otherwise."""
    return FORMATS.lookup(name)


def stem_of(source: Path) -> Path:
    """``model.onnx`` -> ``model``; a checkpoint directory stays as it is."""
    return source.with_suffix("") if source.suffix.lower() == ".onnx" else source


def calib_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """INT8 calibration keywords from the command line (calibration data and image count)."""
    out: dict[str, Any] = {"calib": getattr(args, "calib", None) or "synthetic"}
    if getattr(args, "calib_images", None) is not None:
        out["calib_images"] = args.calib_images
    return out
