"""Fuzzing records files (``records_fuzz.py``): cut files, garbage lines and hostile fields, many cases per child
process. Zero crashes, zero code run from data, and every intact record still loads.

``PYTHONPATH=. python tests/autotune/records_fuzz.py 3000 1 /tmp/fuzz`` runs a large count by hand.
"""

from __future__ import annotations

from pathlib import Path

from tests.fuzzing import run_reporting_child

CASES = 40


def test_fuzzed_records_files_load_what_is_intact(tmp_path: Path) -> None:
    runner = str(Path(__file__).with_name("records_fuzz.py"))
    status, reports, stderr = run_reporting_child([runner, str(CASES), "7", str(tmp_path)], tmp_path, 4 << 30)
    assert status == 0, f"the fuzz process died ({status}): {stderr[-2000:]}"
    assert [r["case"] for r in reports] == list(range(CASES))
    assert not [r for r in reports if r["outcome"] != "ok"]
    assert not any(r["payload_ran"] for r in reports)
    assert not [r for r in reports if r["lost"]]
    assert sum(r["intact"] for r in reports) > CASES  # the cases hold intact records to lose
