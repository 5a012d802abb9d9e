"""The demo (`tcomp demo`) runs end to end with small sizes: a short tuning run and a small compiled model."""

from __future__ import annotations

import subprocess
import sys


def test_demo_runs_small() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tcomp.cli", "demo", "--size", "64", "--trials", "4", "--image-size", "32"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    assert "trials measured" in result.stdout
    assert "max relative difference" in result.stdout
    assert "tcomp / onnxruntime: min" in result.stdout  # timed against onnxruntime in the same run
