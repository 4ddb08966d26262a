"""benchmarks/gpu_check.sh on a machine without a usable GPU: one line saying so, exit 0, at once.

``CUDA_VISIBLE_DEVICES=""`` hides every GPU, so the test takes the same path on machines with and
without one. (With a GPU the script runs the ``gpu`` tests, see tests/test_gpu.py.)
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.sh"


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_gpu_check_without_gpu_says_so_and_exits_0(tmp_path):
    out = tmp_path / "results_gpu.json"
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="")
    done = subprocess.run(["bash", str(SCRIPT), str(out)], env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert "no NVIDIA GPU" in done.stdout and "nothing to check" in done.stdout
    assert not out.exists()  # nothing measured, nothing written
