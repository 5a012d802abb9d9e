"""Fuzzing exported folders (``export_fuzz.py``): random edits of ``graph.json``, swapped or rewritten
``params.npz``, a swapped ``kernels.so``, links out of the folder, many cases per child process. Zero crashes, no
exception but ``GraphError`` (or a ``KernelError`` from a kernel's own checks), and intact folders load and compute
the original outputs.

``python -m tests.graph.export_fuzz 3000 1 /tmp/fuzz`` runs a large count by hand.
"""

from __future__ import annotations

from pathlib import Path

from tests.fuzzing import ROOT, run_reporting_child

CASES = 64


def test_fuzzed_export_folders_end_in_graph_errors(tmp_path: Path) -> None:
    args = ["-m", "tests.graph.export_fuzz", str(CASES), "3", str(tmp_path)]
    status, reports, stderr = run_reporting_child(args, ROOT, 8 << 30)
    assert status == 0, f"the fuzz process died ({status}) after {reports[-1:]}: {stderr[-2000:]}"
    assert [r["case"] for r in reports] == list(range(CASES))
    wrong = [r for r in reports if r["outcome"] not in ("ok", "graph_error", "kernel_error")]
    assert not wrong, f"cases ended in other exceptions: {wrong}"
    intact = [r for r in reports if not r["edits"]]
    assert intact and all(r["outcome"] == "ok" and r["same_output"] for r in intact)
    assert sum(r["outcome"] == "graph_error" for r in reports) > CASES // 2
