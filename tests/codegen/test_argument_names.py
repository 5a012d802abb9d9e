"""Kernel arguments take their buffers' names in LLVM IR, cleaned, cut and made distinct: LLVM cuts local names at
1024 characters, so two long names sharing that prefix must not become one."""

import numpy as np

import tcomp
from tcomp import te
from tcomp.codegen.llvm.context import MAX_VALUE_NAME, argument_names


def test_argument_names_are_clean_short_and_distinct() -> None:
    long = "layer/" * 400
    names = argument_names([long + "a", long + "b", "x y", "", "x_y"])
    assert len(set(names)) == len(names)
    assert all(len(name) <= MAX_VALUE_NAME + 4 for name in names)
    assert names[2:] == ["x_y", "arg", "x_y.1"]


def test_kernels_with_long_names_sharing_a_prefix_build() -> None:
    prefix = "block/" * 300  # 1800 characters, as nested function expansions name their values
    a = te.placeholder((64,), name=prefix + "input")
    b = te.compute((64,), lambda i: a[i] + 1.0, name=prefix + "output")
    s = tcomp.create_schedule(b)
    s[b].parallel(b.op.axis[0])
    module = tcomp.build(tcomp.lower(s, [a, b], name="long_names"))
    x = np.arange(64, dtype=np.float32)
    y = np.empty_like(x)
    module(x, y)
    np.testing.assert_array_equal(y, x + 1)
