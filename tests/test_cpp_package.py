"""The C++ core as a CMake package: examples/cpp builds against an installed edgeseg (the Python
package's copy, and a plain ``cmake --install`` prefix) with find_package(edgeseg) + edgeseg::core,
and its kernels give exactly what edgeseg's Python API gives on the same inputs."""
from __future__ import annotations

import importlib.metadata
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from edgeseg import ops
from edgeseg.data.synthetic import generate

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "cpp"
TOOLS = shutil.which("cmake") and (shutil.which("c++") or shutil.which("g++"))
pytestmark = pytest.mark.skipif(not TOOLS, reason="needs cmake and a C++ compiler on PATH")


def _cmake(*args: str, timeout: float = 300) -> None:
    r = subprocess.run(["cmake", *args], capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f"cmake {' '.join(args)} failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"


def build_example(prefix: Path, build: Path) -> Path:
    """Configure and build examples/cpp against the edgeseg package installed under ``prefix``."""
    _cmake("-S", str(EXAMPLE), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release", f"-DCMAKE_PREFIX_PATH={prefix}")
    _cmake("--build", str(build))
    return build / "segment_image"


def write_ppm(path: Path, bgr: np.ndarray) -> None:
    h, w = bgr.shape[:2]
    path.write_bytes(f"P6\n# test frame\n{w} {h}\n255\n".encode() + np.ascontiguousarray(bgr[..., ::-1]).tobytes())


def check_example(exe: Path, tmp: Path) -> dict:
    """Run the example on a synthetic frame of odd size; compare every output with the Python API."""
    bgr = generate(5, seed=1, size=(91, 133)).image
    write_ppm(tmp / "in.ppm", bgr)
    out = tmp / "out"
    out.mkdir()
    r = subprocess.run([str(exe), str(tmp / "in.ppm"), str(out), "2", "2"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    timings = json.loads(r.stdout)
    assert (timings["height"], timings["width"]) == (91, 133)
    H, W = bgr.shape[:2]

    tensor, info = ops.letterbox(bgr, 256)
    np.testing.assert_array_equal(np.fromfile(out / "input.f32", np.float32).reshape(3, 256, 256), tensor[0])
    logits = np.full((4, 32, 32), 0.5, np.float32)
    logits[:3] = tensor[0, :, ::8, ::8]
    labels = ops.upsample_argmax(logits, letterbox=info)
    got_labels = np.frombuffer((out / "labels.pgm").read_bytes()[-H * W:], np.uint8).reshape(H, W)
    np.testing.assert_array_equal(got_labels, labels)
    assert len(np.unique(labels)) >= 2  # the frame is not one class: the comparison means something
    palette = np.array([[0, 0, 255], [0, 255, 0], [255, 0, 0], [128, 128, 128]], np.uint8)
    vis = np.frombuffer((out / "overlay.ppm").read_bytes()[-H * W * 3:], np.uint8).reshape(H, W, 3)[..., ::-1]
    np.testing.assert_array_equal(vis, ops.overlay(bgr, labels, palette, alpha=0.5))

    boxes = np.fromfile(out / "boxes.f32", np.float32).reshape(-1, 4)
    scores = np.fromfile(out / "scores.f32", np.float32)
    classes = np.fromfile(out / "classes.i64", np.int64)
    keep = [int(v) for v in (out / "keep.txt").read_text().split()]
    expect = ops.nms(boxes, scores, classes, iou_threshold=0.5, score_threshold=0.05,
                     max_candidates=30000, max_detections=300)
    assert keep == expect.tolist() and 0 < len(keep) < len(boxes)

    roi = np.fromfile(out / "roi_masks.f32", np.float32).reshape(16, 28, 28)
    roi_boxes = np.fromfile(out / "roi_boxes.f32", np.float32).reshape(16, 4)
    ms = ops.paste_masks(roi, roi_boxes, (H, W))
    np.testing.assert_array_equal(np.fromfile(out / "regions.i32", np.int32).reshape(16, 4), ms.regions)
    np.testing.assert_array_equal(np.fromfile(out / "masks.u8", np.uint8), ms.data)
    return timings


def _installed_package_prefix() -> Path | None:
    """<site-packages>/edgeseg of the installed distribution, if it carries the CMake package."""
    try:
        dist = importlib.metadata.distribution("edgeseg")
    except importlib.metadata.PackageNotFoundError:
        return None
    for f in dist.files or ():
        if str(f).endswith("lib/cmake/edgeseg/edgesegConfig.cmake"):
            config = Path(dist.locate_file(f))
            if config.is_file():
                return config.parents[3]  # .../edgeseg/lib/cmake/edgeseg/edgesegConfig.cmake -> .../edgeseg
    return None


def test_example_builds_against_the_installed_python_package(tmp_path):
    prefix = _installed_package_prefix()
    if prefix is None:
        pytest.skip("edgeseg is not installed as a distribution with its CMake package (pip install .)")
    eps = {ep.name: ep.value for ep in importlib.metadata.entry_points(group="cmake.root")}
    assert eps.get("edgeseg") == "edgeseg"  # scikit-build-core builds find it through this entry point
    check_example(build_example(prefix, tmp_path / "build"), tmp_path)


def test_example_builds_against_a_plain_cmake_install(tmp_path):
    """The core alone (no Python, no pybind11): cmake --build + cmake --install into a temp prefix."""
    build, prefix = tmp_path / "core", tmp_path / "prefix"
    _cmake("-S", str(ROOT), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release")
    _cmake("--build", str(build), "--parallel", "2", timeout=600)
    _cmake("--install", str(build), "--prefix", str(prefix))
    assert (prefix / "include" / "edgeseg" / "core" / "core.h").is_file()
    assert not list(prefix.rglob("_C*.so"))  # the Python module is not part of a plain build
    check_example(build_example(prefix, tmp_path / "example"), tmp_path)
