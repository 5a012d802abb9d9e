"""``legalize_storage_types``: bfloat16, the 8-bit floats and the 4- and 2-bit integers are stored as their bits
and computed on in float32 or 8 bits; reads widen, writes narrow, casts into them round (the values against
``ml_dtypes`` are in ``tests/graph/test_bfloat16.py``, ``test_float8.py`` and ``test_small_integers.py``)."""

from __future__ import annotations

import time
from functools import partial

from transform_golden import assert_ir, loop_nest

import tcomp
from tcomp import te
from tcomp.transform.storage_types import legalize_storage_types


def test_bfloat16_arithmetic_runs_in_float32_and_rounds_where_it_is_stored() -> None:
    A = te.placeholder((4,), name="A", dtype="bfloat16")
    B = te.compute((4,), lambda i: A[i] * A[i] + te.const(0.1, "bfloat16"), name="B")
    assert_ir(legalize_storage_types(loop_nest(tcomp.create_schedule(B), [A, B], "square")), """
        def square(A: bfloat16[4], B: bfloat16[4]):
          for i in range(0, 4):
            B[i] = reinterpret(bfloat16_bits(reinterpret(shift_left(uint32(reinterpret(A[i])), 16u32)) * reinterpret(shift_left(uint32(reinterpret(A[i])), 16u32)) + 0.10009765625f))
    """)  # noqa: E501


def test_a_4_bit_integer_is_read_sign_extended() -> None:
    Q = te.placeholder((4,), name="Q", dtype="int4")
    F = te.compute((4,), lambda i: Q[i].astype("float32") * 0.5, name="F")
    assert_ir(legalize_storage_types(loop_nest(tcomp.create_schedule(F), [Q, F], "dequantize")), """
        def dequantize(Q: int4[4], F: float32[4]):
          for i in range(0, 4):
            F[i] = float32(int8(bitwise_xor(bitwise_and(int32(reinterpret(Q[i])), 15), 8) - 8)) * 0.5f
    """)


def test_a_cast_to_an_8_bit_float_clamps_then_rounds() -> None:
    X = te.placeholder((4,), name="X")
    Y = te.compute((4,), lambda i: X[i].astype("float8_e4m3fn"), name="Y")
    assert_ir(legalize_storage_types(loop_nest(tcomp.create_schedule(Y), [X, Y], "to_fp8")), """
        def to_fp8(X: float32[4], Y: float8_e4m3fn[4]):
          for i in range(0, 4):
            Y[i] = reinterpret(float8_e4m3fn_bits(float8_e4m3fn_value(float8_e4m3fn_bits(max(min(X[i], 448.0f), -448.0f)))))
    """)  # noqa: E501


def test_a_function_without_storage_types_is_returned_as_is() -> None:
    A = te.placeholder((4,), name="A")
    B = te.compute((4,), lambda i: A[i] * 2, name="B")
    func = loop_nest(tcomp.create_schedule(B), [A, B], "double")
    assert legalize_storage_types(func) is func


def _chain(x: te.Tensor, dtype: str, i: te.Var) -> te.Expr:
    value = x[i]
    for _ in range(12):
        value = value.astype(dtype).astype("float32") * 1.5
    return value


def test_chained_casts_grow_the_program_linearly() -> None:
    """Every widening and narrowing reads its operand once: 12 casts in and out of each storage type, in one
    expression, lower and build at once (an expression that read its operand five times per cast would grow
    5^12-fold)."""
    for dtype in ("bfloat16", "float8_e5m2", "int4"):
        x = te.placeholder((8,), name="x")
        y = te.compute((8,), partial(_chain, x, dtype), name="y")
        start = time.perf_counter()
        func = legalize_storage_types(loop_nest(tcomp.create_schedule(y), [x, y], "chain"))
        assert len(str(func)) < 12 * 400
        tcomp.build(tcomp.create_schedule(y), [x, y], target="llvm")
        assert time.perf_counter() - start < 30
