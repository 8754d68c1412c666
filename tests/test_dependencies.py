"""The installed security-relevant dependencies are at least the minimums pyproject.toml names,
and those minimums are not below the releases that carry the fixes edgeseg relies on."""
from __future__ import annotations

import re
import sys
from importlib import metadata
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib", reason="tomllib is Python >= 3.11")
from packaging.requirements import Requirement  # noqa: E402
from packaging.version import Version  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
#: package -> the oldest release with the fix (and why)
SECURITY_FLOORS = {
    "opencv-python": "4.12.0.88",  # CVE-2025-53644, JPEG decoder heap corruption
    "onnxruntime": "1.24.3",  # Gather/RoiAlign/Resize heap OOB fixes, external-data path checks (Python >= 3.11)
    "onnx": "1.21",  # external data: path traversal, symlink and hardlink fixes
}
#: wheels that install the same module under another distribution name
SAME_AS = {"opencv-python": ("opencv-python", "opencv-python-headless")}


def _minimums() -> dict[str, Version]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in ("train", "dev"):
        reqs += project["optional-dependencies"].get(extra, [])
    out = {}
    for text in reqs:
        r = Requirement(text)
        if r.marker is not None and not r.marker.evaluate({"extra": ""}):
            continue  # for another Python or platform
        for spec in r.specifier:
            if spec.operator == ">=":
                out[r.name.lower()] = max(out.get(r.name.lower(), Version("0")), Version(spec.version))
    return out


def _installed(name: str) -> Version | None:
    for dist in SAME_AS.get(name, (name,)):
        try:
            return Version(re.sub(r"[^0-9.].*$", "", metadata.version(dist)))
        except metadata.PackageNotFoundError:
            continue
    return None


@pytest.mark.parametrize("name", sorted(SECURITY_FLOORS))
def test_pyproject_minimum_carries_the_fix(name):
    if name == "onnxruntime" and sys.version_info < (3, 11):
        pytest.skip("onnxruntime releases with the fixes need Python >= 3.11")
    minimum = _minimums().get(name)
    assert minimum is not None, f"pyproject.toml names no minimum for {name}"
    assert minimum >= Version(SECURITY_FLOORS[name]), (name, minimum)


@pytest.mark.parametrize("name", sorted(SECURITY_FLOORS))
def test_installed_version_is_not_older_than_the_minimum(name):
    have = _installed(name)
    if have is None:
        pytest.skip(f"{name} is not installed")
    assert have >= _minimums()[name], f"{name} {have} is installed; pyproject.toml needs >= {_minimums()[name]}"
