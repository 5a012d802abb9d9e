"""Default CPU schedules of the matrix products: ``matmul``, ``dense`` (``matmul`` with ``transpose_b``) and
``batch_matmul``.

When B's columns are contiguous (no ``transpose_b``), the problem is large and float32 and the tiles divide the
shape (no batch, A not transposed), the schedule is the hand GEMM of ``packed_matmul.py`` with ``cache_read`` copies for
its packing: the cores take blocks of column panels (or of rows), each ``mc x kc`` block of A is copied contiguous,
each ``kc x nr`` panel of B too, and every ``mr x nr x kc`` tile is a call of tcomp's GEMM micro-kernel.

Other large float32 products (no batch; tiles that do not divide the shape, ``transpose_b`` as in dense, or
``transpose_a``) run the same hand GEMM with its packing stages spliced into the schedule (``_gemm_packed``, as
``cache_write`` splices a stage): the packed panels of A and B are zero-padded to whole ``mr x nr x kc`` tiles, every
tile is a micro-kernel call, and the product goes to a padded buffer whose top-left corner is copied into C (or read
by the fused epilogue). That is taken where padding adds at most ``PACKED_MAX_PADDING`` of the work, so a row
vector or a product with few columns keeps the plain loops below.

Other shapes without ``transpose_b`` get the blocked GEMM in plain loops: an ``mr x nr`` register tile of C (``nr``
a multiple of the vector width, vectorized; ``mr`` rows unrolled, each a broadcast of A) accumulated over a ``kc``
slice of K, with the ``kc x nr`` panel of B copied to a contiguous local buffer (``cache_read`` computed at the
panel loop) when the matrices are large:

    for (batch, i.block) in parallel:   # or the column panels when there are too few row blocks
      for k.outer:                      # a kc-deep slice
        for j.outer:                    # B panel (kc x nr), copied once here
          for i.mid, k.inner:
            for i.inner in unrolled(mr): for j.inner in vectorized(nr): C += A * B

Otherwise (fewer rows than cores can share, or small problems) each tile accumulates in a local buffer over
all of K, computed inside the loop of the stage that writes C: a copy, or the fused elementwise epilogue.

With ``transpose_b`` (dense: ``weight[N, K]``) a row of B is contiguous along K, so each output is a dot product:
K is split by the vector width and factored (``rfactor``) into ``lanes`` partial sums, computed for an
``mt x nt`` tile of outputs at once (``mt + nt`` vector loads feed ``mt * nt`` vector multiply-adds), then summed.
Shapes the factors do not divide keep correct bounds guards; symbolic shapes get a plain parallel loop, except a
``panel_matmul`` whose rows are symbolic (a prompt's length): it runs the packed GEMM with the plan of
``TYPICAL_ROWS`` rows (``packed_matmul.with_symbolic_rows``); and a product without transposes whose batch and rows
are symbolic but whose columns and depth are numbers (``symbolic_rows_product``): the blocked GEMM above with the
tiles of ``TYPICAL_BATCH_ROWS`` rows accumulating over all of K, the last row tile guarded, and each ``K x nr``
panel of B copied contiguous (B may be a transposed view).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from tcomp import te
from tcomp.arith.factors import largest_divisor
from tcomp.ir.expr import IterKind, const_int_value
from tcomp.ops.cpu.common import (
    CpuTarget,
    const_extent,
    dot_lanes,
    extents,
    parallel_fused,
    product,
    schedule_elementwise,
    vector_factor,
)
from tcomp.ops.cpu.gemm_plan import GemmPlan, micro_blocking, plan_gemm, split_columns_over_cores, with_symbolic_rows
from tcomp.ops.cpu.intrin import gemm_intrin
from tcomp.ops.cpu.packed_matmul import Operand, operand, packed_product, splice_packed_product
from tcomp.ops.cpu.panel_tiles import PanelTile, chosen_tile, panel_workload, plan_with_tile, tile_error
from tcomp.ops.cpu.views import rows_in_place
from tcomp.ops.panels import PANELS
from tcomp.schedule.schedule import Schedule
from tcomp.schedule.stage import Stage
from tcomp.te.tensor import ComputeOp, PlaceholderOp, Tensor

# B panels are copied only when the problem is this large (multiply-adds): below, the copy does not pay off
PANEL_MIN_WORK = 1 << 24
# the packed GEMM pads the product to whole tiles where this share of extra work at most is needed
PACKED_MAX_PADDING = 0.25
# what copying an element of a transposed B (dense's weight) into the panels costs relative to one of A
TRANSPOSED_B_COST = 4.0
# a symbolic number of rows (a prompt's length) takes the plan of this many: blocks of whole mr-row tiles
TYPICAL_ROWS = 256
# a symbolic row or batch extent of a product of two activations takes the blocking of this many
TYPICAL_BATCH_ROWS = 64


def _inputs(op: ComputeOp) -> tuple[Tensor, Tensor]:
    tensors = op.input_tensors()
    if len(tensors) < 2:
        return tensors[0], tensors[0]
    return tensors[0], tensors[1]


def schedule_matmul_stage(s: Schedule, tensor: Tensor, host: Stage | None, cpu: CpuTarget,
                          tile: PanelTile | None = None) -> None:
    """Schedule the matmul or batch_matmul compute ``tensor`` (a root stage, attributes ``transpose_a`` /
    ``transpose_b``) and its elementwise epilogue ``host`` (an output reading it elementwise), which either hosts
    the product's register tiles or, where the product accumulates in place across K slices, runs as its own pass.
    ``tile``: the packed GEMM's tile of a ``panel_matmul`` (``panel_tiles.py``; by default the one a
    ``panel_tiles`` chooser gives, else the default plan's)."""
    stage = s[tensor]
    op = stage.op
    assert isinstance(op, ComputeOp)
    sizes = extents(op.axis)
    k_sizes = extents(op.reduce_axis)
    fused = False
    symbolic_panels = sizes is None and bool(op.attrs.get(PANELS)) and (plan := _panels_plan(op, cpu, tile))
    if symbolic_panels:  # a symbolic number of rows times a weight in panels
        fused = _gemm_packed(s, stage, tensor, host, plan, cpu)
    elif sizes is None and (columns := symbolic_rows_product(op)) is not None:
        batch_rows = [const_extent(iv) or TYPICAL_BATCH_ROWS for iv in op.axis[:-1]]
        fused = _gemm_tiles(s, stage, tensor, host, batch_rows[:-1], batch_rows[-1], *columns, cpu, symbolic=True)
    elif sizes is None or k_sizes is None or len(op.reduce_axis) != 1:
        schedule_elementwise_reduction_fallback(stage, cpu)
    else:
        *batch, m, n = sizes
        k = k_sizes[0]
        transpose_a = bool(op.attrs.get("transpose_a", False))
        transpose_b = bool(op.attrs.get("transpose_b", False))
        lanes = cpu.lanes(tensor.dtype)
        panels = bool(op.attrs.get(PANELS))
        if panels:
            plan = _panels_plan(op, cpu, tile)
        else:
            plan = packed_plan(op, tensor, m, n, k, cpu) if len(batch) <= 1 else None
        if plan is not None:
            fused = _gemm_packed(s, stage, tensor, host, plan, cpu)
        elif panels:  # panels packed for another target's tiles: correct, slow
            schedule_elementwise_reduction_fallback(stage, cpu)
        elif not transpose_b:
            fused = _gemm_tiles(s, stage, tensor, host, batch, m, n, k, cpu)
        elif not transpose_a and (dots := default_dot_tile(m, n, k, lanes)) is not None:
            schedule_dot_tiles(s, stage, tensor, batch, m, n, k, cpu, dots)
        else:
            schedule_elementwise_reduction_fallback(stage, cpu)
    if host is not None and not fused:
        schedule_elementwise(host, cpu)


def packed_plan(op: ComputeOp, tensor: Tensor, m: int, n: int, k: int, cpu: CpuTarget) -> GemmPlan | None:
    """The plan of the packed GEMM on the micro-kernel (``packed_matmul.py``) for a large float32 product (or batch
    of products) that the whole-tile schedule (``_gemm_micro_kernel``) does not take, or ``None``: where padding to
    whole tiles would add more than ``PACKED_MAX_PADDING`` of the work, or the product is too small for the packing
    to pay off."""
    a, b = _inputs(op)
    batch = product(extents(op.axis)[:-2]) if len(op.axis) > 2 else 1  # type: ignore[index]
    batched = len(op.axis) > 2
    if tensor.dtype != "float32" or a.dtype != "float32" or b.dtype != "float32" or \
            batch * m * n * k < PANEL_MIN_WORK:
        return None
    transpose_a = bool(op.attrs.get("transpose_a", False))
    transpose_b = bool(op.attrs.get("transpose_b", False))
    lanes = cpu.lanes(tensor.dtype)
    if not batched and not transpose_a and not transpose_b and a is not b and \
            isinstance(a.op, PlaceholderOp) and isinstance(b.op, PlaceholderOp) and _whole_tiles(m, n, k, cpu, lanes):
        return None
    blocking = micro_blocking(m, k, lanes, cpu.vector_registers)
    a_operand, b_operand = _operands(op)
    # B copied in scalar runs (its K axis contiguous): the cores take column blocks sooner, so each copies its own
    # part of B (dense 512 x 500 x 512, 2 cores: 0.67-0.74x numpy with each core copying all of B, 0.82-0.84x with
    # column blocks)
    b_cost = TRANSPOSED_B_COST if b_operand.k_contiguous else 1.0
    plan = plan_gemm(m, n, k, blocking, lanes, cpu.cores, a_readable_in_place=_a_in_place(a_operand, m, k),
                     b_cost=b_cost, batch=batch, batched=batched)
    if plan.Mp * plan.Np * plan.Kp > (1 + PACKED_MAX_PADDING) * m * n * k:
        return None
    return plan


def panels_plan(m: int, n: int, k: int, cpu: CpuTarget, a_in_place: bool = True,
                min_work: int | None = None, max_padding: float = PACKED_MAX_PADDING) -> GemmPlan | None:
    """The plan of the packed GEMM for ``[m, k] x [k, n]`` float32 with B a constant packed once into its panels
    (``tcomp.ops.panels``, shape ``[Np / nr, Kp, nr]`` of this plan), or ``None`` where the packed GEMM does not
    pay: less work than ``min_work`` (``PANEL_MIN_WORK`` by default: packing the weight, where it is not yet), or
    more than ``max_padding`` of extra work to pad to whole tiles. ``a_in_place``: whether A's rows can be read
    where they are."""
    if m * n * k < (PANEL_MIN_WORK if min_work is None else min_work):
        return None
    lanes = cpu.lanes("float32")
    blocking = micro_blocking(m, k, lanes, cpu.vector_registers)
    plan = plan_gemm(m, n, k, blocking, lanes, cpu.cores, a_readable_in_place=a_in_place)
    if plan.Mp * plan.Np * plan.Kp > (1 + max_padding) * m * n * k:
        return None
    return plan


def panels_in_place_plan(m: int, n: int, k: int, cpu: CpuTarget, a_in_place: bool = True) -> GemmPlan | None:
    """``panels_plan`` for a product whose weight is in its panels already (a ``panel_matmul``): a product of a few
    rows (a short prompt) runs on them whatever the work and the padding (the plain loops would be slower)."""
    return panels_plan(m, n, k, cpu, a_in_place, min_work=0, max_padding=math.inf)


def panel_product_workload(op: ComputeOp, cpu: CpuTarget) -> tuple[Any, ...] | None:
    """The ``panel_matmul`` tuning workload of a ``panel_matmul`` compute (``panel_tiles.panel_workload``) on
    ``cpu``: its sizes, its panels and whether its input rows are read in place, as the default schedule reads them
    off the compute; None where the packed GEMM does not take it, or its rows are symbolic (no tuning for them)."""
    found = _panel_product(op, cpu)
    return None if found is None or found[0].symbolic_rows is not None else found[1]


def _panel_product(op: ComputeOp, cpu: CpuTarget) -> tuple[GemmPlan, tuple[Any, ...], bool] | None:
    """``(panels_plan, workload, A readable in place)`` of a ``panel_matmul`` compute, if its panels have the
    plan's shape. Symbolic rows (a prompt's length) take the plan of ``TYPICAL_ROWS`` rows for them
    (``with_symbolic_rows``); the workload then has ``TYPICAL_ROWS``."""
    x, panels = _inputs(op)
    columns, k_sizes = extents(op.axis[1:]), extents(op.reduce_axis)
    if x.dtype != "float32" or panels.dtype != "float32" or columns is None or k_sizes is None or len(op.axis) != 2:
        return None
    rows = op.axis[0].dom.extent  # type: ignore[union-attr]
    count = const_int_value(rows)
    symbolic = count is None
    m = TYPICAL_ROWS if count is None else count
    (n,), (k,) = columns, k_sizes
    in_place = not symbolic and _a_in_place(operand(x, False, False, is_a=True), m, k)
    plan = panels_in_place_plan(m, n, k, cpu, in_place)
    shape = tuple(getattr(d, "value", None) for d in panels.shape)
    if plan is None or shape != (plan.Np // plan.blocking.nr, plan.Kp, plan.blocking.nr):
        return None
    workload = panel_workload(m, n, k, plan.blocking.nr, plan.Kp, in_place, x.dtype)
    return (with_symbolic_rows(plan, rows) if symbolic else plan), workload, in_place


def _panels_plan(op: ComputeOp, cpu: CpuTarget, tile: PanelTile | None = None) -> GemmPlan | None:
    """``panels_plan`` for a ``panel_matmul`` compute, if its panels have the plan's shape; with ``tile`` (or the
    tile a ``panel_tiles`` chooser gives the product's workload), the plan with that tile instead."""
    found = _panel_product(op, cpu)
    if found is None:
        return None
    plan, workload, in_place = found
    if tile is None:
        tile = chosen_tile(op, workload)
        if tile is None or plan.symbolic_rows is not None:  # tuned tiles are for numbers of rows
            return plan
    if plan.symbolic_rows is not None:
        raise ValueError(f"{op.name}: a panel_matmul tile is for a number of rows, not {plan.symbolic_rows}")
    m, n, k, nr, depth = workload[:5]
    error = tile_error(tile, m, n, k, nr, depth, in_place)
    if error is not None:
        raise ValueError(f"{op.name}: the panel_matmul tile {tile} does not fit: {error}")
    return plan_with_tile(m, n, k, nr, depth, tile, plan.lanes, plan.cores)


def _operands(op: ComputeOp) -> tuple[Operand, Operand]:
    a, b = _inputs(op)
    if op.attrs.get(PANELS):
        return operand(a, False, False, is_a=True), Operand(b, is_b=True)
    batched = len(op.axis) > 2
    transpose_a = bool(op.attrs.get("transpose_a", False))
    transpose_b = bool(op.attrs.get("transpose_b", False))
    return (operand(a, transpose_a, batched, is_a=True), operand(b, transpose_b, batched, is_a=False))


def _a_in_place(a: Operand, m: int, k: int) -> bool:
    """Whether the micro-kernel can read A's rows where they are: runs of K in memory with a row stride."""
    if a.transposed or not a.k_contiguous:
        return False
    if isinstance(a.tensor.op, PlaceholderOp):
        return True
    t, row, column = te.var("t"), te.var("row"), te.var("column")
    extent = getattr(a.tensor.shape[0], "value", 1) if a.batched else 1
    bounds = {t: (0, max(0, extent - 1)), row: (0, m - 1), column: (0, k - 1)}
    return rows_in_place(a.tensor, a.index(t, row, column), row, column, bounds)


def _gemm_packed(s: Schedule, stage: Stage, tensor: Tensor, host: Stage | None, plan: GemmPlan,
                 cpu: CpuTarget) -> bool:
    """The product's compute replaced by the packed GEMM's stages (``splice_packed_product``); returns whether
    ``host`` was scheduled with it."""
    op = stage.op
    assert isinstance(op, ComputeOp)
    a_operand, b_operand = _operands(op)
    panels = b_operand.tensor if op.attrs.get(PANELS) else None
    stages = packed_product(plan, a_operand, b_operand, name=op.name, tag=op.tag, attrs=op.attrs, panels=panels)
    return splice_packed_product(s, stage, stages, host, plan)


def symbolic_rows_product(op: ComputeOp) -> tuple[int, int] | None:
    """``(n, k)`` of a product whose rows or batch are symbolic (B's columns contiguous, no transposed operand) but
    whose columns ``n`` and depth ``k`` are numbers: its blocked GEMM takes the tiles of ``TYPICAL_BATCH_ROWS`` rows,
    the last row tile guarded (DeBERTa's products of the queries with the position keys, over a symbolic sequence);
    None for any other."""
    if op.attrs.get("transpose_a", False) or op.attrs.get("transpose_b", False) or len(op.reduce_axis) != 1:
        return None
    n, k = const_extent(op.axis[-1]), const_extent(op.reduce_axis[0])
    return None if n is None or k is None else (int(n), int(k))


def schedule_elementwise_reduction_fallback(stage: Stage, cpu: CpuTarget) -> None:
    """Outputs in parallel, each reduction a plain loop (symbolic shapes, layouts no tile fits)."""
    data = [iv for iv in stage.leaf_iter_vars if iv.kind is not IterKind.REDUCE]
    op = stage.op
    assert isinstance(op, ComputeOp)
    sizes = extents(op.axis)
    parallel_fused(stage, data, None if sizes is None else product(sizes), cpu.cores)


def gemm_blocking(m: int, n: int, k: int, cpu: CpuTarget, lanes: int) -> tuple[int, int, int, int]:
    """``(mr, nr, mc, kc)`` for C[m, n] += A[m, k] B[k, n]: ``nr`` two vectors when that divides ``n`` (else one,
    else the best vector factor), ``mr`` the largest divisor of ``m`` whose ``mr x nr`` accumulators leave registers
    for a panel row and a broadcast, ``mc`` rows per block so the rows split evenly over the cores, ``kc`` a slice
    of K that keeps the panel in L1/L2."""
    if n % (2 * lanes) == 0:
        nr = 2 * lanes
    else:
        nr = vector_factor(n, lanes) or lanes
    vectors = max(1, -(-nr // lanes))
    budget = max(1, (cpu.vector_registers - vectors - 2) // vectors)
    mr = largest_divisor(m, min(budget, 8 if vectors > 1 else 12))
    if mr < 4 and m > 8:  # no usable divisor: a tile with a guarded tail beats one-row tiles
        mr = min(8, budget)
    blocks = -(-m // mr)
    per_block = max(1, min(blocks // cpu.cores, max(1, 64 // mr)))
    mc = mr * per_block
    kc = k if k <= 512 else largest_divisor(k, 256) if largest_divisor(k, 256) >= 64 else 256
    return mr, nr, mc, kc


def _whole_tiles(m: int, n: int, k: int, cpu: CpuTarget, lanes: int) -> bool:
    """Whether ``gemm_blocking``'s tiles divide the shape and its column tiles are whole vectors."""
    mr, nr, _, kc = gemm_blocking(m, n, k, cpu, lanes)
    return m % mr == 0 and n % nr == 0 and k % kc == 0 and nr % lanes == 0


def _gemm_tiles(s: Schedule, stage: Stage, tensor: Tensor, host: Stage | None, batch: list[int], m: int, n: int,
                k: int, cpu: CpuTarget, symbolic: bool = False) -> bool:
    """The blocked GEMM; returns whether ``host`` was fused (it hosts the register tiles). ``symbolic``: the batch
    and rows are symbolic (``batch`` and ``m`` typical values): the tiles accumulate over the whole of K, in
    registers."""
    op = stage.op
    assert isinstance(op, ComputeOp)
    lanes = cpu.lanes(tensor.dtype)
    mr, nr, mc, kc = gemm_blocking(m, n, k, cpu, lanes)
    work = product(batch) * m * n * k
    row_blocks = product(batch) * -(-m // mc)
    by_rows = row_blocks >= 2 * cpu.cores or n <= nr
    a, b = _inputs(op)
    transpose_a = bool(op.attrs.get("transpose_a", False))
    if not symbolic and not batch and not transpose_a and tensor.dtype == "float32" and \
            _whole_tiles(m, n, k, cpu, lanes) and work >= PANEL_MIN_WORK and a is not b:
        _gemm_micro_kernel(s, stage, tensor, (mr, nr, mc, kc), (m, n), cpu, a, b)
        return False
    if not symbolic and by_rows and work >= PANEL_MIN_WORK and n % nr == 0 and k % kc == 0 and a is not b:
        _gemm_with_panels(s, stage, tensor, (mr, nr, mc, kc), k, work, cpu, b)
        return False
    # tiles accumulate in a local buffer over the whole of K (so the accumulators provably stay in registers),
    # computed inside the loop of the stage that writes the result: a cache_write copy or the fused epilogue
    if host is not None:
        out, acc = host, stage
    else:
        out, acc = stage, s[s.cache_write(tensor, "local")]
    *batch_axes, i, j = out.op.axis  # type: ignore[attr-defined]
    i_block, i_rest = out.split(i, factor=mc)
    i_mid, i_inner = out.split(i_rest, factor=mr)
    j_outer, j_inner = out.split(j, factor=nr)
    if by_rows:
        out.reorder(*batch_axes, i_block, j_outer, i_mid, i_inner, j_inner)
        parallel_fused(out, [*batch_axes, i_block], work, cpu.cores)
    else:
        out.reorder(*batch_axes, j_outer, i_block, i_mid, i_inner, j_inner)
        parallel_fused(out, [*batch_axes, j_outer], work, cpu.cores)
    out.vectorize(j_inner)
    acc.compute_at(out, i_mid)
    *acc_batch, acc_i, acc_j = acc.op.axis  # type: ignore[attr-defined]
    (acc_k,) = acc.op.reduce_axis  # type: ignore[attr-defined]
    acc.reorder(*acc_batch, acc_k, acc_i, acc_j)
    acc.unroll(acc_i)
    acc.vectorize(acc_j)
    if symbolic and a is not b:  # the K x nr panel of B copied contiguous once per block of rows (B may be a
        panel = s[s.cache_read(b, "local", [acc.op.output(0)])]  # transposed view: strided columns)
        panel.compute_at(out, j_outer)
        panel.vectorize(panel.op.axis[-1])
    return host is not None


def _gemm_micro_kernel(s: Schedule, stage: Stage, tensor: Tensor, blocking: tuple[int, int, int, int],
                       sizes: tuple[int, int], cpu: CpuTarget, a: Tensor, b: Tensor) -> None:
    """Whole ``mr x nr x kc`` tiles, each a call of tcomp's GEMM micro-kernel: the hand schedule of
    ``tcomp.ops.cpu.packed_matmul`` with ``cache_read`` copies for its packing stages (an ``mc x kc`` block of A copied
    contiguous per row block, a ``kc x nr`` panel of B per column panel). The cores take blocks of column panels,
    or of rows where that copies less twice (``split_columns_over_cores``)."""
    op = stage.op
    assert isinstance(op, ComputeOp)
    mr, nr, _, kc = blocking
    m, n = sizes
    lanes = cpu.lanes(tensor.dtype)
    block_rows = max(1, min(256, m) // mr) * mr
    i, j = op.axis
    (kk,) = op.reduce_axis
    i_mid, i_inner = stage.split(i, factor=mr)
    i_block, i_mid = stage.split(i_mid, factor=block_rows // mr)
    j_outer, j_inner = stage.split(j, factor=nr)
    k_outer, k_inner = stage.split(kk, factor=kc)
    if split_columns_over_cores(-(-m // block_rows), n // nr, m, n, cpu.cores):
        j_thread, j_outer = stage.split(j_outer, nparts=cpu.cores)
        stage.reorder(j_thread, k_outer, i_block, j_outer, i_mid, i_inner, j_inner, k_inner)
        parallel_loop, a_at = j_thread, i_block
    else:
        stage.reorder(i_block, k_outer, j_outer, i_mid, i_inner, j_inner, k_inner)
        parallel_loop, a_at = i_block, k_outer
    if cpu.cores > 1:
        stage.parallel(parallel_loop)
    stage.tensorize(i_inner, gemm_intrin(mr, nr, kc, lanes))
    a_copy = s[s.cache_read(a, "local", [tensor])]
    a_copy.compute_at(stage, a_at)
    _, run = a_copy.split(a_copy.op.axis[1], factor=lanes)
    a_copy.vectorize(run)
    b_copy = s[s.cache_read(b, "local", [tensor])]
    b_copy.compute_at(stage, j_outer)
    b_copy.vectorize(b_copy.op.axis[-1])


def _gemm_with_panels(s: Schedule, stage: Stage, tensor: Tensor, blocking: tuple[int, int, int, int], k: int,
                      work: int, cpu: CpuTarget, b: Tensor) -> None:
    """Blocked over K: the C tile accumulates in place across K slices, reading a ``kc x nr`` panel of B copied
    into a local buffer (a fresh allocation, which also tells LLVM the panel does not alias C)."""
    op = stage.op
    assert isinstance(op, ComputeOp)
    mr, nr, mc, kc = blocking
    *batch_axes, i, j = stage.leaf_iter_vars[: len(op.axis)]
    (kk,) = op.reduce_axis
    i_block, i_rest = stage.split(i, factor=mc)
    i_mid, i_inner = stage.split(i_rest, factor=mr)
    j_outer, j_inner = stage.split(j, factor=nr)
    k_outer, k_inner = stage.split(kk, factor=kc) if kc < k else (None, kk)
    k_loops = [k_outer] if k_outer is not None else []
    stage.reorder(*batch_axes, i_block, *k_loops, j_outer, i_mid, k_inner, i_inner, j_inner)
    parallel_fused(stage, [*batch_axes, i_block], work, cpu.cores)
    stage.unroll(i_inner)
    stage.vectorize(j_inner)
    panel = s.cache_read(b, "local", [tensor])
    s[panel].compute_at(stage, j_outer)
    s[panel].vectorize(s[panel].op.axis[-1])


@dataclass(frozen=True)
class DotTile:
    """How a product with B's rows contiguous along K (dense's weight) runs as dot products: each output's sum over
    K in ``lanes`` partial sums (vector lanes; a power of two dividing K), ``rows x cols`` outputs at once (``rows +
    cols`` vector loads feed ``rows * cols`` vector multiply-adds), the tile's point loops unrolled or not."""

    lanes: int
    rows: int
    cols: int
    unroll: bool = True


def default_dot_tile(m: int, n: int, k: int, lanes: int) -> DotTile | None:
    """The dot-product tile of the default schedule for an ``m x n`` product over ``k``, or None where K does not
    fill vectors of at least ``min(4, lanes)`` lanes twice (those keep plain loops)."""
    width = dot_lanes(k, lanes)
    if width < min(4, lanes) or k < 2 * width:
        return None
    rows = largest_divisor(m, 4)
    return DotTile(width, rows, largest_divisor(n, 4 if rows > 1 else 8))


def schedule_dot_tiles(s: Schedule, stage: Stage, tensor: Tensor, batch: list[int], m: int, n: int, k: int,
                       cpu: CpuTarget, tile: DotTile) -> None:
    """Schedule ``tensor`` (a product with ``transpose_b``, a root stage) as dot products in ``tile``s: K split by
    the tile's lanes and factored (``rfactor``) into partial sums, computed at each tile of outputs, then summed.
    The tile's sizes divide ``m``, ``n`` and ``k``."""
    op = stage.op
    assert isinstance(op, ComputeOp)
    (kk,) = op.reduce_axis
    _, k_lane = stage.split(kk, factor=tile.lanes)
    partial = s.rfactor(tensor, k_lane, factor_axis=len(op.axis))
    final_op = stage.op
    assert isinstance(final_op, ComputeOp)
    *batch_axes, i, j = final_op.axis
    i_outer, i_inner = stage.split(i, factor=tile.rows)
    j_outer, j_inner = stage.split(j, factor=tile.cols)
    (k_sum,) = final_op.reduce_axis
    stage.reorder(*batch_axes, i_outer, j_outer, i_inner, j_inner, k_sum)
    work = product(batch) * m * n * k
    if product(batch) * -(-m // tile.rows) >= 2 * cpu.cores:
        parallel_fused(stage, [*batch_axes, i_outer], work, cpu.cores)
    else:
        parallel_fused(stage, [*batch_axes, i_outer, j_outer], work, cpu.cores)
    anchor = stage.leaf_iter_vars[-4]  # the innermost tile loop, outside the rows x cols point loops
    s[partial].compute_at(stage, anchor)
    part = s[partial]
    data = [iv for iv in part.leaf_iter_vars if iv.kind is not IterKind.REDUCE]
    reduce = [iv for iv in part.leaf_iter_vars if iv.kind is IterKind.REDUCE]
    part.reorder(*data[:-3], *reduce, *data[-3:])
    if tile.unroll:
        part.unroll(data[-3])
        part.unroll(data[-2])
    part.vectorize(data[-1])
