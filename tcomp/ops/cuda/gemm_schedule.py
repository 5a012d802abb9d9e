"""The default CUDA schedule of any matrix product of a fused group: ``matmul`` (either operand transposed, as
``dense`` is), ``batch_matmul``, their inputs read through the group's injective stages (a reshape, a transpose),
their elementwise epilogue (bias, GELU, scale, residual) computed in the same kernel.

``schedule_gemm(s, C, knobs, out)`` tiles ``C`` as ``schedule_matmul`` does (shared-memory tiles of both operands
filled cooperatively, a register tile per thread, ``block_k``-deep slices of the reduction), with the differences
that make it general:

- leading axes (a batch) are bound to ``blockIdx.z``; rows and columns the tiles do not divide are guarded;
- an operand may be any expression of the group's inputs that the cache stage inlines (``A`` a reshape of a 4-D
  activation: the copy into shared memory reads the activation at the reshaped indices);
- with ``out`` (an elementwise function of ``C`` that ``epilogue_of`` accepts): ``C`` accumulates in registers
  (``cache_write``), ``C`` itself is inlined, and the tiles are ``out``'s: each thread applies the epilogue to its
  own results and writes ``out``, so ``C`` never goes to global memory.

``epilogue_of(s, C)`` accepts the one root stage that reads ``C`` when it is an output of the group, not a
reduction, and reads ``C`` at ``(f(lead), row, column)`` of its own axes (``column`` the last, ``row`` the last
before it that is not of extent 1, ``lead`` the others), with ``f`` not depending on the row or column (a 2-D ``C``
at ``(f(lead) + row, column)``): then a thread's tile of ``out`` needs exactly a thread's tile of ``C``. A
transposed read (``C`` consumed as ``C.T``) is refused and keeps its own kernel.
``gemm_knobs`` picks tiles for the rows and columns of one block's problem, checked against the target.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TypeVar

from tcomp import te
from tcomp.arith import simplify
from tcomp.arith.factors import ceil_power_of_two
from tcomp.ir import dtype as dt
from tcomp.ir.expr import Expr, Var, const, const_int_value
from tcomp.ir.functor import substitute
from tcomp.ops.cuda.common import cooperative_fetch
from tcomp.ops.cuda.epilogue import depends_on, equal_under, reads_of, sole_output_reader
from tcomp.ops.cuda.limits import first_fitting
from tcomp.ops.cuda.matmul import MatmulKnobs
from tcomp.schedule.schedule import Schedule
from tcomp.schedule.stage import Stage
from tcomp.target import Target
from tcomp.te.tensor import ComputeOp, Tensor

T = TypeVar("T")

# (rows or columns per block, per thread), in order of preference for a dimension of at least the block
GEMM_TILES = ((64, 4), (32, 2), (16, 1), (8, 1), (4, 1), (2, 1), (1, 1))
MIN_ROWS = 8  # a product with fewer rows per block is a matrix-vector product: the generic reduction spreads it wider


def row_axis(tensor: Tensor) -> int:
    """The axis of ``tensor`` that plays the rows of a product tiled over its last two non-unit axes: the last axis
    before the last one whose extent is not 1 (``[197, 1, 2304]``: axis 0), else the one before the last."""
    extents = [const_int_value(d) for d in tensor.shape]
    for position in range(len(extents) - 2, -1, -1):
        if extents[position] != 1:
            return position
    return len(extents) - 2


def _split_axes(axes: list[T], row: int) -> tuple[list[T], T, T]:
    """``(lead, row, column)`` of ``axes``: the row axis, the last axis, and every other axis (unit axes included)
    as the lead, in order."""
    return [a for i, a in enumerate(axes[:-1]) if i != row], axes[row], axes[-1]


def _reads_tile_for_tile(indices: tuple[Expr, ...], row: Var, column: Var, bounds: dict[Var, tuple[int, int]],
                         c_rank: int) -> bool:
    """Whether ``indices`` (into ``C``, of rank ``c_rank``) are ``(f(lead), row, column)`` (or ``(f(lead) + row,
    column)`` for a 2-D ``C``), ``f`` free of ``row`` and ``column``."""
    simple = [simplify(i, bounds) for i in indices]
    if not equal_under(simple[-1], column, bounds):
        return False
    if c_rank == 2:
        first = simple[0]
        at_zero = simplify(substitute(first, {row: const(0, row.dtype)}), bounds)
        if depends_on(at_zero, column) or depends_on(at_zero, row):
            return False
        return const_int_value(simplify(first - at_zero - row, bounds)) == 0
    if not equal_under(simple[-2], row, bounds):
        return False
    return not any(depends_on(i, row) or depends_on(i, column) for i in simple[:-2])


def epilogue_of(s: Schedule, C: Tensor) -> Tensor | None:
    """The elementwise output computed with ``C`` in one kernel, or ``None`` (module docstring)."""
    out = sole_output_reader(s, C)
    if out is None or len(out.shape) < 2:
        return None
    op = out.op
    assert isinstance(op, ComputeOp)
    _, row, column = _split_axes([axis.var for axis in op.axis], row_axis(out))
    bounds = {axis.var: (0, int(const_int_value(axis.dom.extent) or 1) - 1) for axis in op.axis}
    reads = reads_of(s, op.body[0], C)
    if not reads or not all(_reads_tile_for_tile(r, row, column, bounds, len(C.shape)) for r in reads):
        return None
    return out


def gemm_knobs(rows: int, columns: int, depth: int, target: Target | None, element_bytes: int = 4,
               pad: bool = True) -> MatmulKnobs:
    """Tiles for a ``rows x columns`` problem: 64 (4 per thread) where the dimension has that many, else the
    smallest power of two covering it; slices of 8 (16 for deep reductions); then smaller until the block fits
    ``target``."""

    def start(extent: int) -> int:  # the biggest tile no bigger than the extent rounded up to a power of two
        cap = ceil_power_of_two(extent)
        return next(i for i, (block, _) in enumerate(GEMM_TILES) if block <= cap)

    first_m, first_n = start(rows), start(columns)

    def candidates() -> Iterator[MatmulKnobs]:
        for step in range(len(GEMM_TILES)):
            (block_m, thread_m), (block_n, thread_n) = (GEMM_TILES[min(first + step, len(GEMM_TILES) - 1)]
                                                        for first in (first_m, first_n))
            for block_k in (16 if depth >= 256 else 8, 4, 2, 1):
                if block_k <= max(depth, 1) or block_k == 1:
                    yield MatmulKnobs(block_m, block_n, block_k, thread_m, thread_n, smem_pad=int(pad and block_k > 1))

    return first_fitting(candidates(), lambda k: k.resources(element_bytes), target,
                         f"matrix product {rows}x{columns}x{depth}")


def schedule_gemm(s: Schedule, C: Tensor, knobs: MatmulKnobs, out: Tensor | None = None) -> Stage:
    """Schedule the matrix product ``C`` (and its epilogue ``out``) as the module docstring says; returns the stage
    that was tiled."""
    knobs.check()
    op = C.op
    assert isinstance(op, ComputeOp)
    A, B = op.input_tensors()
    local = s.cache_write(C, "local")
    if out is not None:
        s[C].compute_inline()
    tiled = s[out] if out is not None else s[C]
    a_shared = s.cache_read(A, "shared", [local])
    b_shared = s.cache_read(B, "shared", [local])
    threads_y, threads_x = knobs.threads
    lead, i, j = _split_axes(list(tiled.op.axis), row_axis(tiled.op.output(0)))
    by, yi = tiled.split(i, factor=knobs.block_m)
    bx, xi = tiled.split(j, factor=knobs.block_n)
    ty, yi = tiled.split(yi, nparts=threads_y)
    tx, xi = tiled.split(xi, nparts=threads_x)
    tiled.reorder(*lead, by, bx, ty, tx, yi, xi)
    if lead:
        tiled.bind(tiled.fuse(*lead) if len(lead) > 1 else lead[0], te.thread_axis("blockIdx.z"))
    for axis, tag in ((by, "blockIdx.y"), (bx, "blockIdx.x"), (ty, "threadIdx.y"), (tx, "threadIdx.x")):
        tiled.bind(axis, te.thread_axis(tag))
    tiled.unroll(yi)
    tiled.unroll(xi)
    s[local].compute_at(tiled, tx)
    *local_lead, ci, cj = s[local].op.axis
    (k,) = s[local].op.reduce_axis
    ko, ki = s[local].split(k, factor=knobs.block_k)
    s[local].reorder(*local_lead, ko, ki, ci, cj)
    for axis in (ki, ci, cj):
        s[local].unroll(axis)
    s[a_shared].compute_at(s[local], ko)
    s[b_shared].compute_at(s[local], ko)
    if knobs.smem_pad:  # the copy whose rows run along k is read down a column: pad its rows against bank conflicts
        for cached, reads_k_last in ((a_shared, not op.attrs.get("transpose_a", False)),
                                     (b_shared, bool(op.attrs.get("transpose_b", False)))):
            if reads_k_last:
                s[cached].storage_align(s[cached].op.axis[-2], knobs.block_k, knobs.smem_pad)
    layout = [("threadIdx.y", threads_y), ("threadIdx.x", threads_x)]
    cooperative_fetch(s[a_shared], layout)
    cooperative_fetch(s[b_shared], layout)
    return tiled


def gemm_problem(C: Tensor, out: Tensor | None) -> tuple[int, int, int]:
    """Rows and columns of one block's problem (``out``'s last two axes, else ``C``'s) and the reduction depth."""
    tiled = out if out is not None else C
    rows = int(const_int_value(tiled.shape[row_axis(tiled)]) or 1)
    columns = int(const_int_value(tiled.shape[-1]) or 1)
    op = C.op
    assert isinstance(op, ComputeOp)
    return rows, columns, int(const_int_value(op.reduce_axis[0].dom.extent) or 1)


def element_bytes(C: Tensor) -> int:
    return dt.storage_bytes(C.op.input_tensors()[0].dtype)
