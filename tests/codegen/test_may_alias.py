"""Parameters listed in a function's ``may_alias`` attribute are compiled without ``noalias`` and may share memory:
an elementwise kernel then runs in place."""

import numpy as np
import pytest

import tcomp
from tcomp import te
from tcomp.runtime import Module


def _scale_kernel(may_alias: tuple[int, ...]) -> Module:
    A = te.placeholder((1000,), name="A")
    B = te.compute((1000,), lambda i: A[i] * 2.0 + 1.0, name="B")
    s = tcomp.create_schedule(B)
    outer, inner = s[B].split(B.op.axis[0], factor=8)
    s[B].vectorize(inner)
    func = tcomp.lower(s, [A, B], name="scale")
    if may_alias:
        func = func.with_attr("may_alias", may_alias)
    return tcomp.build(func)


def test_noalias_only_where_allowed() -> None:
    assert _scale_kernel(()).get_source("ll_unopt").count("noalias") == 2
    assert _scale_kernel((0, 1)).get_source("ll_unopt").count("noalias") == 0


def test_in_place_call() -> None:
    mod = _scale_kernel((0, 1))
    data = np.arange(1000, dtype=np.float32)
    want = data * 2 + 1
    mod(data, data)
    np.testing.assert_array_equal(data, want)
    with pytest.raises(ValueError, match="shares memory"):
        _scale_kernel(())(data, data)
