"""Small builders of flattened loop IR for the LLVM backend tests (the IR a lowered schedule would produce)."""

from __future__ import annotations

from tcomp.ir import dtype as dt
from tcomp.ir import expr as E
from tcomp.ir import stmt as S
from tcomp.ir.buffer import Buffer


def imm(value: int, dtype: str = "int32") -> E.IntImm:
    return E.IntImm(value, dtype)


def load(buffer: Buffer, index: E.Expr, dtype: str | None = None) -> E.BufferLoad:
    if dtype is None:
        dtype = dt.with_lanes(buffer.dtype, dt.lanes(index.dtype))
    return E.BufferLoad(buffer, (index,), dtype)


def store(buffer: Buffer, value: E.Expr, index: E.Expr) -> S.BufferStore:
    return S.BufferStore(buffer, value, (index,))


def loop(var: E.Var, extent: E.Expr | int, body: S.Stmt, kind: S.ForKind = S.ForKind.SERIAL,
         start: E.Expr | int = 0) -> S.For:
    start_expr = start if isinstance(start, E.Expr) else imm(start, var.dtype)
    extent_expr = extent if isinstance(extent, E.Expr) else imm(extent, var.dtype)
    return S.For(var, start_expr, extent_expr, kind, body)


def ramp(base: E.Expr, lanes: int, stride: int = 1) -> E.Ramp:
    return E.Ramp(base, imm(stride, base.dtype), lanes, f"{base.dtype}x{lanes}")


def elementwise(name: str, dtype: str, n: E.Expr | int, make_value, kind: S.ForKind = S.ForKind.SERIAL,
                num_inputs: int = 2, out_dtype: str | None = None) -> S.PrimFunc:
    """``out[i] = make_value(in0[i], in1[i], ...)`` over a 1-d extent ``n`` (a size var or a constant)."""
    extent = n if isinstance(n, E.Expr) else imm(n)
    inputs = tuple(Buffer(f"X{k}", (extent,), dtype) for k in range(num_inputs))
    out = Buffer("Y", (extent,), out_dtype or dtype)
    i = E.Var("i", "int32")
    value = make_value(*(load(b, i) for b in inputs))
    body = loop(i, extent, store(out, value, i), kind)
    size_vars = (n,) if isinstance(n, E.Var) else ()
    return S.PrimFunc(name, (*inputs, out), body, size_vars)
