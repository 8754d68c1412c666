"""The ``edgeseg`` command line: one module per subcommand (train, export, run, predict, eval, demo,
bench, info), each with ``add_parser(sub, fmt)`` and its ``cmd_*`` function.

Every subcommand imports what it needs lazily, so ``edgeseg predict model.onnx ...`` never
imports torch. Errors a user can cause print one clear line (no traceback) and exit with 2.
"""
from __future__ import annotations

import argparse
import sys
from typing import Callable, Sequence

from .. import __version__
from ..errors import EdgesegError
from . import batch, bench, demo, eval, export, info, predict, run, train

#: The subcommands, in the order ``edgeseg --help`` lists them.
COMMANDS = (train, export, run, predict, eval, demo, bench, info, batch)

EPILOG = """\
examples:
  edgeseg demo                                       # shipped model on a synthetic video
  edgeseg train --data synthetic --model liteseg_s --epochs 10 --out runs/s
  edgeseg export runs/s/best --format onnx --out model.onnx
  edgeseg run --camera 0 --show                      # live camera, newest frame always
  edgeseg run --model model.onnx --source video.mp4 --save out.mp4 --stats stats.json
  edgeseg predict model.onnx images/ --out preds/
  edgeseg eval model.onnx --data voc:VOCdevkit/VOC2012 --split val
  edgeseg bench model.onnx runs/s/best --backend all   # latency percentiles per backend
  edgeseg batch model.onnx "drives/*.mp4" --out results/   # many recordings, on Ray when installed
"""



class _DefaultsFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Appends "(default: X)" to an option's help unless the help already says its default, or
    the default is None (nothing to say)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text.lower() or action.default in (None, False) or action.default is argparse.SUPPRESS:
            return text
        return super()._get_help_string(action) or text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edgeseg", description="Real-time image segmentation for the edge: train, export, run.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"edgeseg {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    fmt = _DefaultsFormatter

    for command in COMMANDS:
        command.add_parser(sub, fmt)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``edgeseg`` command."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "model", None) == "default":
        args.model = None
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except EdgesegError as e:
        print(f"edgeseg {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"edgeseg {args.command}: interrupted", file=sys.stderr)
        return 130
    except ImportError as e:
        if "cv2" not in str(e) and "libGL" not in str(e) and "libgthread" not in str(e):
            raise
        print(f"edgeseg {args.command}: error: OpenCV cannot be imported here ({e}). The default OpenCV build "
              "needs the system's GL/X11 libraries: install them (Debian/Ubuntu: apt-get install libgl1 "
              "libglib2.0-0), or on a headless machine switch to the headless build: pip uninstall -y "
              "opencv-python opencv-python-headless && pip install opencv-python-headless", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
