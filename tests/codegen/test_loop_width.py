"""Vector-width bounds on loops whose indices divide the loop variable (``tcomp.codegen.llvm.loop_width``).

LLVM's loop vectorizer can read ``i % 8`` under a condition as consecutive across a 16-lane vector (seen with
AVX-512 on ``RotaryEmbedding``'s rotate-half: lanes 8-15 read the wrong elements). The bound keeps every vector
inside one period; the end-to-end test below fails without it on such a CPU and checks the result everywhere."""

from __future__ import annotations

import re

import numpy as np
import pytest

import tcomp
from tcomp import te
from tcomp.codegen.llvm.loop_width import MAX_WIDTH, width_limit
from tcomp.ir import expr as E
from tcomp.ir import stmt as S
from tcomp.ir.buffer import Buffer

RNG = np.random.default_rng(0)
I = E.Var("i", "int32")
J = E.Var("j", "int32")


def _c(value: int) -> E.Expr:
    return E.IntImm(value, "int32")


def _store(index: E.Expr) -> S.Stmt:
    buffer = Buffer("out", (_c(1 << 20),), "float32")
    return S.BufferStore(buffer, E.FloatImm(1.0, "float32"), (index,))


def _width(index: E.Expr, start: int = 0) -> int:
    return width_limit(I, _c(start), _store(index))


def test_no_division_keeps_llvms_choice() -> None:
    assert _width(E.Add(E.Mul(J, _c(32), "int32"), I, "int32")) == MAX_WIDTH


@pytest.mark.parametrize("divisor, width", [(8, 8), (16, 16), (96, 32), (3, 1), (2, 2)])
def test_remainder_bounds_by_its_period(divisor: int, width: int) -> None:
    assert _width(E.FloorMod(I, _c(divisor), "int32")) == width
    assert _width(E.FloorDiv(I, _c(divisor), "int32")) == width


def test_offsets_and_strides_count() -> None:
    # (32 j + 4 + i) % 8: blocks of 4 iterations stay in one period, blocks of 8 do not
    offset = E.Add(E.Add(E.Mul(J, _c(32), "int32"), _c(4), "int32"), I, "int32")
    assert _width(E.FloorMod(offset, _c(8), "int32")) == 4
    # (2 i) % 16: a period is 8 iterations
    assert _width(E.FloorMod(E.Mul(I, _c(2), "int32"), _c(16), "int32")) == 8
    # an outer loop's variable is an unknown offset: no vectors
    assert _width(E.FloorMod(E.Add(J, I, "int32"), _c(8), "int32")) == 1
    # a loop that starts at 4 is not aligned to 8
    assert _width(E.FloorMod(I, _c(8), "int32"), start=4) == 4


def test_nested_divisions_and_unknown_divisors() -> None:
    inner = E.Add(E.Mul(E.FloorDiv(I, _c(8), "int32"), _c(8), "int32"), E.FloorMod(I, _c(8), "int32"), "int32")
    assert _width(E.FloorDiv(inner, _c(96), "int32")) == 8
    assert _width(E.FloorMod(I, J, "int32")) == 1
    assert _width(E.FloorMod(E.Min(I, _c(3), "int32"), _c(8), "int32")) == 1


def test_metadata_on_the_loop() -> None:
    x = te.placeholder((64,), name="x")
    reverse = te.compute((64,), lambda i: x[i // 8 * 8 + 7 - i % 8], name="reverse")
    source = tcomp.build(tcomp.create_schedule(reverse), [x, reverse], target="llvm").get_source("ll_unopt")
    assert re.search(r'!"llvm.loop.vectorize.width", i32 8 \}', source)
    rotate = te.compute((64,), lambda i: x[i // 8 * 8 + (i + 1) % 8], name="rotate")  # wraps inside any 2 lanes
    source = tcomp.build(tcomp.create_schedule(rotate), [x, rotate], target="llvm").get_source("ll_unopt")
    assert re.search(r'!"llvm.loop.vectorize.enable", i1 0 \}', source)
    xs = RNG.random(64, dtype=np.float32)
    out = np.empty(64, np.float32)
    tcomp.build(tcomp.create_schedule(rotate), [x, rotate], target="llvm")(xs, out)
    np.testing.assert_array_equal(out, xs[np.arange(64) // 8 * 8 + (np.arange(64) + 1) % 8])


@pytest.mark.parametrize("head", [4, 8, 16])
def test_rotate_half_under_a_condition(head: int) -> None:
    """A rotary embedding's rotate-half over heads of ``head`` columns, positions from an int64 input and index
    checks (the conditions that made LLVM read the caches as consecutive across two heads)."""
    rows, cols, half = 6, 32, head // 2
    x = te.placeholder((rows, cols), name="x")
    cos = te.placeholder((50, half), name="cos")
    sin = te.placeholder((50, half), name="sin")
    positions = te.placeholder((rows,), name="positions", dtype="int64")

    def rotate(r: E.Expr, j: E.Expr) -> E.Expr:
        m = j % head
        pos = positions[r].astype("int32")
        first = cos[pos, te.min(m, half - 1)] * x[r, j // head * head + te.min(m, half - 1)]
        second = sin[pos, te.max(m - half, 0)] * x[r, j // head * head + te.max(m - half, 0)]
        return te.if_then_else(m < half, first, second)

    y = te.compute((rows, cols), rotate, name="y")
    mod = tcomp.build(tcomp.create_schedule(y), [x, cos, sin, positions, y], target="llvm", check_bounds=True)
    xs = RNG.random((rows, cols), dtype=np.float32)
    cs, ss = RNG.random((50, half), dtype=np.float32), RNG.random((50, half), dtype=np.float32)
    ps = RNG.integers(0, 50, rows).astype(np.int64)
    out = np.empty((rows, cols), np.float32)
    mod(xs, cs, ss, ps, out)
    m = np.arange(cols) % head
    base = np.arange(cols) // head * head
    first = cs[ps][:, np.minimum(m, half - 1)] * xs[:, base + np.minimum(m, half - 1)]
    second = ss[ps][:, np.maximum(m - half, 0)] * xs[:, base + np.maximum(m - half, 0)]
    np.testing.assert_array_equal(out, np.where(m < half, first, second))


def test_loops_llvm_cannot_vectorize_build_without_llvm_remarks(capfd: pytest.CaptureFixture[str]) -> None:
    """A vectorized loop whose body has index checks (a gather), and a loop with a periodic index whose body tcomp
    vectorized itself, build without LLVM printing "loop not vectorized" (it did for every such kernel of a model)
    and compute the right values."""
    x = te.placeholder((64,), name="x")
    idx = te.placeholder((48,), name="idx", dtype="int64")
    gather = te.compute((48,), lambda i: x[idx[i].astype("int32")], name="gather")
    s = tcomp.create_schedule(gather)
    s[gather].vectorize(gather.op.axis[0])
    gathered = tcomp.build(s, [x, idx, gather], target="llvm", check_bounds=True)
    a = te.placeholder((16, 64), name="a")
    t = te.compute((64, 16), lambda i, j: a[j, i // 16 * 16 + i % 16], name="t")
    s = tcomp.create_schedule(t)
    s[t].vectorize(t.op.axis[1])
    transposed = tcomp.build(s, [a, t], target="llvm")
    assert "loop not vectorized" not in capfd.readouterr().err
    xs = RNG.random(64, dtype=np.float32)
    ids = RNG.integers(0, 64, 48).astype(np.int64)
    out = np.empty(48, np.float32)
    gathered(xs, ids, out)
    np.testing.assert_array_equal(out, xs[ids])
    aa = RNG.random((16, 64), dtype=np.float32)
    tt = np.empty((64, 16), np.float32)
    transposed(aa, tt)
    np.testing.assert_array_equal(tt, aa.T)


def test_a_checked_gather_with_a_periodic_index_builds_quietly(capfd: pytest.CaptureFixture[str]) -> None:
    """A gather through runtime indices read at a periodic position (``i // 16 % 9 * 16 + i % 16``, a reshaped
    index table, as ConvBERT's span convolution exports it) with index checks: LLVM cannot vectorize the early exit,
    and with the loop's width bound it said so on stderr; the loop is left scalar, and right."""
    x = te.placeholder((24,), name="x")
    idx = te.placeholder((144,), name="idx", dtype="int64")
    y = te.compute((576,), lambda i: x[idx[i // 16 % 9 * 16 + i % 16].astype("int32")], name="y")
    mod = tcomp.build(tcomp.create_schedule(y), [x, idx, y], target="llvm", check_bounds=True)
    assert "loop not vectorized" not in capfd.readouterr().err
    xs = RNG.random(24, dtype=np.float32)
    ids = RNG.integers(0, 24, 144).astype(np.int64)
    out = np.empty(576, np.float32)
    mod(xs, ids, out)
    i = np.arange(576)
    np.testing.assert_array_equal(out, xs[ids[i // 16 % 9 * 16 + i % 16]])
