"""Every operator problem of ``op_cases`` under the default schedule, against numpy."""

from __future__ import annotations

import pytest

import tcomp
from tcomp.backend.testing import build_and_check
from tests.ops.op_cases import CASES


@pytest.mark.parametrize("name", sorted(CASES))
def test_default_schedule_matches_numpy(name: str) -> None:
    problem = CASES[name]()
    s = tcomp.create_schedule(problem.output)
    build_and_check(s, problem.args, problem.arrays, problem.expected, problem.rtol, problem.atol)


def test_cases_use_sizes_that_splits_do_not_divide() -> None:
    odd = 0
    for build in CASES.values():
        problem = build()
        if any(int(d) % 2 or int(d) % 4 for d in problem.output.shape):
            odd += 1
    assert odd >= len(CASES) * 3 // 4
