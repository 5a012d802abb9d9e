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


def test_parallel_body_honours_may_alias() -> None:
    """Each row adds its first element to the others, in place: row element 0 is written first, so the later
    elements must read its new value. With ``noalias`` on the outlined parallel body the optimizer hoists the read
    of ``A[i, 0]`` out of the row loop and the kernel returns the old value (it did, by up to 1.0)."""
    A = te.placeholder((64, 256), name="A")
    B = te.compute((64, 256), lambda i, j: A[i, j] + A[i, 0], name="B")
    s = tcomp.create_schedule(B)
    s[B].parallel(B.op.axis[0])
    mod = tcomp.build(tcomp.lower(s, [A, B], name="row_add").with_attr("may_alias", (0, 1)))
    body = next(line for line in mod.get_source("ll_unopt").splitlines() if "parallel.body\"(" in line)
    assert "noalias %\"A\"" not in body and "noalias %\"B\"" not in body
    data = np.random.default_rng(0).random((64, 256), dtype=np.float32)
    want = data.copy()
    want[:, 0] *= 2
    want[:, 1:] += want[:, :1]
    mod(data, data)
    np.testing.assert_array_equal(data, want)
