"""``partition_tails``: a serial loop whose guards hold on a prefix of its iterations splits into that prefix
(guards dropped by the next simplify) and the tail."""

from __future__ import annotations

import numpy as np
from transform_golden import assert_ir, loop_nest

import tcomp
from tcomp import te
from tcomp.backend.testing import build_and_check
from tcomp.ir.functor import post_order_visit
from tcomp.ir.stmt import PrimFunc, Stmt
from tcomp.schedule.schedule import Schedule
from tcomp.te.tensor import Tensor
from tcomp.transform.partition_tails import GROWTH, partition_tails
from tcomp.transform.simplify import simplify_func


def _tiled(width: int, factor: int, parallel_split: bool = False) -> tuple[Schedule, list[Tensor]]:
    A = te.placeholder((3, width), name="A")
    B = te.compute((3, width), lambda i, j: A[i, j] * 2.0, name="B")
    s = tcomp.create_schedule(B)
    if parallel_split:
        outer, inner = s[B].split(B.op.axis[1], factor=factor)
        s[B].parallel(outer)
    else:
        _, inner = s[B].split(B.op.axis[1], factor=factor)
        s[B].unroll(inner)
        s[B].parallel(B.op.axis[0])
    return s, [A, B]


def test_the_guarded_tail_splits_off() -> None:
    s, args = _tiled(10, 4)
    func = partition_tails(loop_nest(s, args, "tails"))
    assert_ir(func, """
        def tails(A: float32[3, 10], B: float32[3, 10]):
          for i in parallel(0, 3):
            for j.outer in range(0, 2):
              for j.inner in unrolled(0, 4):
                if j.outer * 4 + j.inner < 10:
                  B[i, j.outer * 4 + j.inner] = A[i, j.outer * 4 + j.inner] * 2.0f
            for j.outer in range(2, 2 + 1):
              for j.inner in unrolled(0, 2):
                if j.outer * 4 + j.inner < 10:
                  B[i, j.outer * 4 + j.inner] = A[i, j.outer * 4 + j.inner] * 2.0f
              for j.inner in unrolled(2, 2 + 2):
                if j.outer * 4 + j.inner < 10:
                  B[i, j.outer * 4 + j.inner] = A[i, j.outer * 4 + j.inner] * 2.0f
    """)
    assert "if " not in str(simplify_func(func))


def test_loops_without_a_provable_prefix_are_left_alone() -> None:
    s, args = _tiled(12, 4)  # the split divides: no guard
    func = loop_nest(s, args, "exact")
    assert partition_tails(func) is func
    s, args = _tiled(10, 4, parallel_split=True)  # the guarded loop is parallel: it stays one loop
    text = str(partition_tails(loop_nest(s, args, "parallel")))
    assert text.count("for j.outer in parallel(0, 3)") == 1 and "for j.outer in range" not in text


def test_partitioned_tails_compute_the_same() -> None:
    for width, factor in ((10, 4), (13, 5), (7, 3), (2, 4)):
        s, args = _tiled(width, factor)
        a = np.random.default_rng(width).standard_normal((3, width)).astype(np.float32)
        build_and_check(s, args, [a], a * 2.0, 1e-6, 1e-6)


def _statements(func: PrimFunc) -> int:
    found: list[Stmt] = []
    post_order_visit(func.body, lambda node: found.append(node) if isinstance(node, Stmt) else None)
    return len(found)


def test_nested_guards_stop_splitting_at_the_growth_budget() -> None:
    # every one of 5 nested loops guards the body (a padded read from each axis): splitting all of them would copy
    # the body 2^5 times; the pass stops at GROWTH times the function's statements and still computes the same
    shape = (5, 6, 7, 5, 6)
    A = te.placeholder(shape, name="A")
    B = te.compute(shape, lambda a, b, c, d, e: te.if_then_else(
        te.all(a < 4, b < 5, c < 6, d < 4, e < 5), A[a, b, c, d, e], te.const(0.0, "float32")), name="B")
    s = tcomp.create_schedule(B)
    loops = [s[B].split(axis, factor=3) for axis in B.op.axis]
    s[B].reorder(*[outer for outer, _ in loops], *[inner for _, inner in loops])
    func = loop_nest(s, [A, B], "guarded")
    before, after = _statements(func), _statements(partition_tails(func))
    assert before < after <= GROWTH * before
    data = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    expected = np.zeros(shape, np.float32)
    expected[:4, :5, :6, :4, :5] = data[:4, :5, :6, :4, :5]
    build_and_check(s, [A, B], [data], expected, 0.0, 0.0)
