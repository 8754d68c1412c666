"""edgeseg/_C.pyi describes the compiled module: the same functions with the same parameters."""
from __future__ import annotations

import ast
import re
from pathlib import Path

from edgeseg import _C

STUB = Path(__file__).resolve().parents[1] / "edgeseg" / "_C.pyi"


def _stub_functions() -> dict[str, list[str]]:
    tree = ast.parse(STUB.read_text())
    return {f.name: [a.arg for a in f.args.args] for f in tree.body if isinstance(f, ast.FunctionDef)}


def _module_functions() -> dict[str, list[str]]:
    out = {}
    for name in dir(_C):
        if name.startswith("__"):
            continue
        doc = getattr(_C, name).__doc__.strip().splitlines()[0]  # pybind11: "name(a: T, b: T) -> R"
        args = doc[doc.index("(") + 1:doc.rindex(") ->")]
        out[name] = re.findall(r"(?:^|, )(\w+):", args)
    return out


def test_stub_matches_the_compiled_module():
    assert _stub_functions() == _module_functions()
