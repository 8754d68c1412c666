"""A bounded smoke run of every fuzzing harness (tests/fuzz/): each replays its seed corpus
(including the inputs that once found bugs, named regress_*) and then fuzzes for a few seconds.
Any escaped exception, crash, hang or sanitizer report fails the run. Long runs: tools/fuzz.sh.

The ROS harness needs rosbags; the C++ target (libFuzzer, ASan + UBSan) needs clang and takes
about a minute to build, so it is marked slow.
"""
from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FUZZ = ROOT / "tests" / "fuzz"
SECONDS = 2

needs_atheris = pytest.mark.skipif(importlib.util.find_spec("atheris") is None,
                                   reason="atheris is not installed (pip install atheris; in the dev extra on Linux x86_64)")


def _fuzz(cmd: list[str], target: str, tmp_path: Path, seconds: int = SECONDS) -> int:
    work = tmp_path / target
    work.mkdir()
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               TMPDIR=str(tmp_path))  # the harnesses' scratch files go where pytest cleans up
    proc = subprocess.run([*cmd, str(work), str(FUZZ / "corpus" / target), f"-max_total_time={seconds}",
                           "-timeout=20", "-rss_limit_mb=3072", f"-artifact_prefix={tmp_path}/"],
                          capture_output=True, text=True, timeout=seconds + 120, env=env, cwd=ROOT)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{target} fuzzing failed (rc {proc.returncode}):\n{log[-4000:]}"
    assert not list(tmp_path.glob("crash-*")) and not list(tmp_path.glob("timeout-*")), log[-4000:]
    runs = re.search(r"Done (\d+) runs", log)
    assert runs, log[-2000:]
    seeds = len(list((FUZZ / "corpus" / target).iterdir()))
    assert int(runs.group(1)) >= seeds, (runs.group(0), seeds)  # at least the whole corpus was replayed
    return int(runs.group(1))


@needs_atheris
@pytest.mark.parametrize("target", ["model", "metadata", "image", "ros"])
def test_harness_smoke(target, tmp_path):
    if target == "ros":
        pytest.importorskip("rosbags", reason="rosbags is not installed (pip install 'edgeseg[ros]')")
    if target == "model":
        pytest.importorskip("onnxruntime")
    _fuzz([sys.executable, str(FUZZ / f"fuzz_{target}.py")], target, tmp_path)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("clang++") is None, reason="clang++ is not installed (apt-get install clang)")
def test_core_libfuzzer_smoke(tmp_path):
    """Build csrc/fuzz/fuzz_core.cpp with -fsanitize=fuzzer,address,undefined and fuzz 20 s."""
    binary = tmp_path / "fuzz_core"
    sources = sorted(str(p) for p in (ROOT / "csrc" / "core").glob("*.cpp"))
    subprocess.run(["clang++", "-std=c++17", "-O1", "-g", "-fsanitize=fuzzer,address,undefined",
                    "-fno-sanitize-recover=all", "-ffp-contract=off", f"-I{ROOT / 'csrc'}",
                    str(ROOT / "csrc" / "fuzz" / "fuzz_core.cpp"), *sources, "-pthread", "-o", str(binary)],
                   check=True, timeout=600)
    _fuzz([str(binary), "-max_len=4096"], "core", tmp_path, seconds=20)


# ------------------------------------------- what the fuzzers found, replayed without atheris
def test_findings_in_model_files_are_model_errors():
    import edgeseg
    from edgeseg.errors import ModelError
    from edgeseg.runtime.model_files import check_onnx

    for name in ("regress_truncated_opset.onnx", "regress_dims_wire_type.onnx", "external_dot.onnx"):
        with pytest.raises(ModelError):
            check_onnx(FUZZ / "corpus" / "model" / name)
    pytest.importorskip("onnxruntime")
    with pytest.raises(ModelError, match="not valid UTF-8"):
        edgeseg.load(FUZZ / "corpus" / "model" / "regress_bad_utf8_metadata.onnx", mean=(0, 0, 0), std=(1, 1, 1))
    with pytest.raises(ModelError, match="0 outputs"):
        edgeseg.load(FUZZ / "corpus" / "model" / "regress_no_outputs.onnx", mean=(0, 0, 0), std=(1, 1, 1))


def test_findings_in_metadata_are_model_errors():
    from edgeseg.errors import ModelError
    from edgeseg.meta import ModelMeta
    from edgeseg.runtime.conventions.base import parse_pair

    with pytest.raises(ModelError, match="nested too deeply"):
        ModelMeta.from_json("[" * 100_000)
    for bad in ([640, float("inf")], [640.5, 640]):
        with pytest.raises(ModelError, match="imgsz"):
            parse_pair(bad, "metadata 'imgsz'")
    assert parse_pair([640.0, 480], "metadata 'imgsz'") == (640, 480)


def test_png_chunk_bomb_is_refused_before_decoding(tmp_path):
    """136 bytes declaring a 3.7 GB chunk: OpenCV 5.1 allocated 3.6 GB for 7 s decoding it."""
    from edgeseg._io import read_image
    from edgeseg.errors import InputFileError

    with pytest.raises(InputFileError, match="PNG chunk at byte 124 declares 3769919516 bytes"):
        read_image(FUZZ / "corpus" / "image" / "regress_png_chunk_bomb.png")  # refused by the header walk
