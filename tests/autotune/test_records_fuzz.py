"""Fuzzing records files (``records_fuzz.py``): cut files, garbage lines and hostile fields, many cases per child
process. Zero crashes, zero code run from data, and every intact record still loads.

``python tests/autotune/records_fuzz.py 3000 1 /tmp/fuzz`` runs a large count by hand.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CASES = 40


def _limit() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))  # a huge allocation fails instead of swapping


def test_fuzzed_records_files_load_what_is_intact(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    child = subprocess.run([sys.executable, str(Path(__file__).with_name("records_fuzz.py")), str(CASES), "7",
                            str(tmp_path)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
                           preexec_fn=_limit)
    reports = [json.loads(line) for line in child.stdout.splitlines() if line.startswith("{")]
    assert child.returncode == 0, f"the fuzz process died ({child.returncode}): {child.stderr[-2000:]}"
    assert [r["case"] for r in reports] == list(range(CASES))
    assert not [r for r in reports if r["outcome"] != "ok"]
    assert not any(r["payload_ran"] for r in reports)
    assert not [r for r in reports if r["lost"]]
    assert sum(r["intact"] for r in reports) > CASES  # the cases hold intact records to lose
