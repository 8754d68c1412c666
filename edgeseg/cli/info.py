"""`edgeseg info`: version, backends, threads, and what a model is."""
from __future__ import annotations

import argparse
import json
from typing import Any

from .. import __version__


def add_parser(sub: Any, fmt: Any) -> None:
    """Register the subcommand on ``sub``."""
    p = sub.add_parser("info", help="version, backends, threads, and a model's metadata", formatter_class=fmt)
    p.add_argument("model", nargs="?", default=None, help="model to describe (default: the shipped one)")
    p.add_argument("--no-model", action="store_true", help="do not load any model")
    p.set_defaults(func=cmd_info)


def cmd_info(args: argparse.Namespace) -> int:
    from .. import ops
    from ..runtime.backends import available_backends

    info = {"edgeseg": __version__, "cpp_threads": ops.get_num_threads(), "backends": available_backends()}
    if args.model is not None or not args.no_model:
        from ..runtime import load

        p = load(args.model)
        info["model"] = {"path": str(getattr(p, "path", "")), "backend": getattr(p, "backend_name", ""),
                         "meta": p.meta.to_dict()}
    print(json.dumps(info, indent=2))
    return 0
