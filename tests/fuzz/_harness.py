"""What every atheris harness shares: the run loop and the rule that only documented errors escape.

A harness module defines ``test_one_input(data: bytes)`` that feeds ``data`` to one entry point
and lets through only the exceptions that entry point documents (an ``EdgesegError`` subclass,
or a named library error the caller already handles); anything else escapes, and atheris reports
it as a crash with the input saved. Hangs are caught by libFuzzer's ``-timeout``.

Run one directly (libFuzzer flags; new inputs go to the first folder)::

    python tests/fuzz/fuzz_metadata.py /tmp/new tests/fuzz/corpus/metadata -max_total_time=60
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[2]
CORPUS = Path(__file__).resolve().parent / "corpus"
if str(ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENCV_LOG_LEVEL", "OFF")  # decoders log every malformed input


def run(test_one_input: Callable[[bytes], None]) -> None:
    """Hand ``test_one_input`` to libFuzzer with this process's command-line flags."""
    import atheris

    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
