"""Fuzzing the importer: mutated models (truncated bytes, flipped bytes, wrong raw-data sizes, negative or huge
dimensions, dangling inputs, cycles, bad attributes) end in a tcomp ``GraphError`` (or, for a blind mutation that
leaves a valid model, compile), never in another exception, a crash, a hang or a huge allocation.

The cases run in a child process with an address-space limit of 4 GiB (a huge allocation fails there instead of
exhausting the machine) and a time limit per case; a crash shows as a child that dies before reporting every case.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

from tests.graph.fuzz_cases import INVALID, cases

ROOT = Path(__file__).resolve().parents[2]
ADDRESS_SPACE = 4 << 30


def _limit() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))


def test_mutated_models_end_in_tcomp_errors() -> None:
    expected = [name for name, _, _ in cases()]
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    result = subprocess.run([sys.executable, "-m", "tests.graph.fuzz_cases", "30"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=600, preexec_fn=_limit)
    reports = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert result.returncode == 0, f"the fuzz process died ({result.returncode}): {result.stderr[-2000:]}"
    assert [r["name"] for r in reports] == expected
    wrong = [r for r in reports if r["outcome"] not in ("graph_error", "ok")]
    assert not wrong, f"cases ended in other exceptions: {wrong}"
    accepted = [r["name"] for r in reports if r["must_fail"] and r["outcome"] == "ok"]
    assert not accepted, f"invalid models were accepted: {accepted}"
    assert sum(r["name"] in INVALID for r in reports) == len(INVALID)
