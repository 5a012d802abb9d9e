"""Fuzzing exported folders (``export_fuzz.py``): random edits of ``graph.json``, swapped or rewritten
``params.npz``, a swapped ``kernels.so``, links out of the folder, many cases per child process. Zero crashes, no
exception but ``GraphError`` (or a ``KernelError`` from a kernel's own checks), and intact folders load and compute
the original outputs.

``python -m tests.graph.export_fuzz 3000 1 /tmp/fuzz`` runs a large count by hand.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CASES = 64


def _limit() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (8 << 30, 8 << 30))  # a huge allocation fails instead of swapping


def test_fuzzed_export_folders_end_in_graph_errors(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    child = subprocess.run([sys.executable, "-m", "tests.graph.export_fuzz", str(CASES), "3", str(tmp_path)],
                           cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, preexec_fn=_limit)
    reports = [json.loads(line) for line in child.stdout.splitlines() if line.startswith("{")]
    assert child.returncode == 0, f"the fuzz process died ({child.returncode}) after {len(reports)} cases: " \
                                  f"{reports[-1:] if reports else ''} {child.stderr[-2000:]}"
    assert [r["case"] for r in reports] == list(range(CASES))
    wrong = [r for r in reports if r["outcome"] not in ("ok", "graph_error", "kernel_error")]
    assert not wrong, f"cases ended in other exceptions: {wrong}"
    intact = [r for r in reports if not r["edits"]]
    assert intact and all(r["outcome"] == "ok" and r["same_output"] for r in intact)
    assert sum(r["outcome"] == "graph_error" for r in reports) > CASES // 2
