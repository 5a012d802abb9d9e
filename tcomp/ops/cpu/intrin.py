"""CPU tensor intrinsics backed by tcomp's own LLVM micro-kernels (``tcomp/codegen/llvm/microkernels.py``).

- ``gemm_intrin(mr, nr, kc)``: ``c[mr, nr] = sum_k a[mr, k] * b[k, nr]`` over ``kc`` steps, register-blocked;
  the ``b`` tile is read with a row stride (packed panels give stride ``nr``), ``a`` and ``c`` with theirs. With
  ``rows`` (a symbolic number of rows of the product the tiles cover), a tile starting at row ``i`` computes only
  its first ``rows - i`` rows where those are fewer than ``mr`` (the padding rows of the last tile are not
  computed, nor written: whatever reads the product must stop at ``rows``); ``igemm_intrin`` too.
- ``dot_intrin(n)``: ``c[0] = sum_k a[k] * b[k]``.
- ``igemm_intrin(mr, nr, kc, lanes, pairs)``: ``c[mr, nr] = sum int32(a[mr, g kg + s]) * int32(b[kg, nr, s])``
  over ``kg < kc / g`` and ``s < g``, int32 ``c``: uint8 ``a`` and int8 ``b`` in groups of ``g = 4`` steps, or
  with ``pairs`` int16 ``a`` and ``b`` in groups of 2.
- ``bgemm_intrin(mr, nr, kc, lanes, native)``: ``c[mr, nr] = sum float32(a[mr, 2 kg + s]) * float32(b[kg, nr, s])``
  over ``kg < kc / 2`` and ``s < 2``, float32 ``c``: bfloat16 ``a`` and ``b`` in pairs of steps (``vdpbf16ps``
  where ``native``, float32 multiply-adds elsewhere).

Each returns ``(body, reset, update)`` so that it can sit inside a reduction split further out.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from tcomp import te
from tcomp.codegen.llvm.microkernels import (
    bgemm_kernel_name,
    dot_kernel_name,
    gemm_kernel_name,
    igemm_kernel_name,
    rows_kernel_name,
)
from tcomp.ir.expr import Expr, const
from tcomp.ops.quantized import BYTES, PAIRS, panel_dtype
from tcomp.target import Target
from tcomp.te.intrin import LowerResult, TensorIntrin, TensorRegion, call_extern, decl_tensor_intrin, emit, int64


def default_lanes(target: Target | None = None) -> int:
    return (target or Target.current_host()).vector_bits // 32


@functools.cache
def gemm_intrin(mr: int, nr: int, kc: int, lanes: int | None = None, rows: Expr | None = None) -> TensorIntrin:
    lanes = lanes or default_lanes()
    if nr % lanes:
        raise ValueError(f"gemm_intrin: nr={nr} must be a multiple of the vector lanes ({lanes})")
    a = te.placeholder((mr, kc), name="a")
    b = te.placeholder((kc, nr), name="b")
    k = te.reduce_axis((0, kc), name="k")
    c = te.compute((mr, nr), lambda i, j: te.sum(a[i, k] * b[k, j], axis=k), name="c")
    lowering = _tile_lowering(gemm_kernel_name(mr, nr, lanes), kc, rows)
    return decl_tensor_intrin(c, lowering, name=f"gemm_{mr}x{nr}x{kc}" + ("" if rows is None else "_rows"),
                              partial=rows is not None)


def _tile_lowering(name: str, steps: int, rows: Expr | None = None,
                   ) -> Callable[[list[TensorRegion], list[TensorRegion]], LowerResult]:
    """The lowering of a register tile computed by the micro-kernel ``name`` over ``steps`` steps of its loop:
    ``name(a, lda, b, ldb, c, ldc, steps, accumulate)`` from scratch, as the reset (no steps) and accumulating;
    with ``rows`` (the product's), its ``rows_kernel_name`` given the rows left from the tile's first."""
    if rows is not None:
        name = rows_kernel_name(name)

    def lower(ins: list[TensorRegion], outs: list[TensorRegion]) -> LowerResult:
        ra, rb = ins
        (rc,) = outs

        def call(count: int, accumulate: int):
            # the reset (no steps) reads no input: it passes the output tile for them, so it stays valid where it
            # is placed outside the scope of a buffer an input lives in (a panel copied inside the reduction loop)
            a_ptr, b_ptr = (ra.access_ptr(), rb.access_ptr()) if count else (rc.access_ptr(), rc.access_ptr())
            left = () if rows is None else (int64(rows - rc.start[-2]),)
            return emit(
                call_extern(
                    "int32", name,
                    a_ptr, int64(ra.stride(0)),
                    b_ptr, int64(rb.stride(0)),
                    rc.access_ptr(), int64(rc.stride(0)),
                    int64(count), const(accumulate), *left,
                )
            )

        return call(steps, 0), call(0, 0), call(steps, 1)

    return lower


@functools.cache
def dot_intrin(n: int, lanes: int | None = None) -> TensorIntrin:
    lanes = lanes or default_lanes()
    a = te.placeholder((n,), name="a")
    b = te.placeholder((n,), name="b")
    k = te.reduce_axis((0, n), name="k")
    c = te.compute((1,), lambda i: te.sum(a[k] * b[k], axis=k), name="c")
    name = dot_kernel_name(lanes)

    def lower(ins: list[TensorRegion], outs: list[TensorRegion]):
        ra, rb = ins
        (rc,) = outs

        def call(steps: int, accumulate: int):
            a_ptr, b_ptr = (ra.access_ptr(), rb.access_ptr()) if steps else (rc.access_ptr(), rc.access_ptr())
            return emit(call_extern("int32", name, a_ptr, b_ptr, int64(steps), rc.access_ptr(), const(accumulate)))

        return call(n, 0), call(0, 0), call(n, 1)

    return decl_tensor_intrin(c, lower, name=f"dot_{n}")


@functools.cache
def igemm_intrin(mr: int, nr: int, kc: int, lanes: int, pairs: bool, rows: Expr | None = None) -> TensorIntrin:
    group = PAIRS if pairs else BYTES
    if nr % lanes or kc % group:
        raise ValueError(f"igemm_intrin: nr={nr} must be a multiple of the lanes ({lanes}) and kc={kc} of {group}")
    a = te.placeholder((mr, kc), name="a", dtype="int16" if pairs else "uint8")
    b = te.placeholder((kc // group, nr, group), name="b", dtype=panel_dtype(group))
    kg = te.reduce_axis((0, kc // group), name="kg")
    step = te.reduce_axis((0, group), name="s")

    def body(i, j):
        return te.sum(te.cast(a[i, kg * group + step], "int32") * te.cast(b[kg, j, step], "int32"), axis=[kg, step])

    c = te.compute((mr, nr), body, name="c")
    lowering = _tile_lowering(igemm_kernel_name(mr, nr, lanes, pairs), kc // group, rows)  # steps by groups
    return decl_tensor_intrin(c, lowering, name=f"igemm_{'i16' if pairs else 'u8s8'}_{mr}x{nr}x{kc}"
                              + ("" if rows is None else "_rows"), partial=rows is not None)


@functools.cache
def bgemm_intrin(mr: int, nr: int, kc: int, lanes: int, native: bool, rows: Expr | None = None) -> TensorIntrin:
    if nr % lanes or kc % PAIRS:
        raise ValueError(f"bgemm_intrin: nr={nr} must be a multiple of the lanes ({lanes}) and kc={kc} of {PAIRS}")
    a = te.placeholder((mr, kc), name="a", dtype="bfloat16")
    b = te.placeholder((kc // PAIRS, nr, PAIRS), name="b", dtype="bfloat16")
    kg = te.reduce_axis((0, kc // PAIRS), name="kg")
    step = te.reduce_axis((0, PAIRS), name="s")

    def body(i, j):
        return te.sum(te.cast(a[i, kg * PAIRS + step], "float32") * te.cast(b[kg, j, step], "float32"),
                      axis=[kg, step])

    c = te.compute((mr, nr), body, name="c")
    lowering = _tile_lowering(bgemm_kernel_name(mr, nr, lanes, native), kc // PAIRS, rows)  # steps by pairs
    return decl_tensor_intrin(c, lowering, name=f"bgemm_{'dp' if native else 'fma'}_{mr}x{nr}x{kc}"
                              + ("" if rows is None else "_rows"), partial=rows is not None)
