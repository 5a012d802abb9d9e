"""Every tutorial runs to completion (they check their own results against numpy)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

TUTORIALS = sorted((Path(__file__).resolve().parent.parent / "tutorials").glob("*.py"))


@pytest.mark.parametrize("path", TUTORIALS, ids=[p.name for p in TUTORIALS])
def test_tutorial_runs(path: Path) -> None:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(path.parent.parent) + os.pathsep + env.get("PYTHONPATH", "")
    result = subprocess.run([sys.executable, str(path)], capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, f"{path.name} failed:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
