"""A hand-written CPU schedule for float32 matmul: packed A and B, cache blocking, tcomp's GEMM micro-kernel.

The computation is ``C[i, j] = sum_k A[i, k] * B[k, j]``. Two compute stages repack the inputs so that the
micro-kernel (``tcomp_sgemm_f32_{mr}x{nr}``, see ``tcomp/codegen/llvm/microkernels.py``) reads contiguous memory:

- ``packedB[j // nr, k, j % nr]``: ``nr``-column panels of B, one ``nr``-float row per k step;
- ``packedA[i // mr, i % mr, k]``: ``mr``-row micro-panels of A, each row a contiguous run of K.

Both are zero-padded to whole tiles (``M``, ``N``, ``K`` rounded up to ``mr``, ``nr``, ``kc``), so every tile is a
whole micro-kernel call whatever the shape; when ``M`` or ``N`` is not a multiple of its tile the product goes to a
padded buffer that a last stage copies into C. The loop nest (N split into blocks of column panels):

    for j.block in parallel(blocks):           # up to 4 blocks per core, claimed by whichever core is free
      for k.outer in range(K / kc):            # pack this block's kc x N/blocks slice of B (stays in L2)
        for i.block in range(M / mc):          # pack an mc x kc block of A (stays in L2)
          for j.panel in range(N / cores / nr):  # one kc x nr micro-panel of B (stays in L1)
            for i.panel in range(mc / mr):
              micro-kernel(mr x nr tile of C += A micro-panel @ B micro-panel)   # kc FMA steps in registers

When there are fewer column panels than cores, the row blocks run in parallel instead, each packing its own
(small) slice of B. Each block packs B for its own columns, so the packed slice is hot in its cache when used.
Several blocks per core (``column_blocks``), not one, so that the pool's dynamic scheduling can give the blocks of a
core that starts late or is descheduled to the others: ViT-B/16 (one layer, 2 cores, a busy machine) 0.67x the
median latency of one block per core, the minimum 0.96x. Where all rows are one block (a transformer's 128-256
tokens), A is packed once, its row panels over the cores, before the blocks of columns, which all read that copy
(``shared_a``), and so is a symbolic number of rows (a prompt's, mostly one block); else each block packs its
own. Packing per block copied A once per block: for ViT-B/16's 197 x 768 x 768 product in 6 blocks, ``memmove``
took 12% of the product's time (2.5% packed once). Where a core sweeps at most 4 column panels (N small) and M and
K need no padding, A is read in place instead of packed.
A batch of products (``C[t] = A[t] B[t]``, ``batch_matmul``) runs the same tiles with the batch axis outermost: the
cores take (matrix, block of rows) pairs, each packing its matrix's slice of B.

Operands may be views (reshapes, transposes inlined into the product, ``views.py``): each packing copy runs along
the axis that is contiguous in the memory underneath, whatever the operator's ``transpose_a`` / ``transpose_b``,
and A is read in place where its rows are runs of K in memory with a row stride (a transposed view of a
``[.., K]`` tensor, say), so the transposes that feed a product cost no separate kernel.

The plan (``gemm_plan.py``: ``plan_gemm``), the computes and their schedule are separate pieces
(``packed_product``, ``schedule_packed_product``, ``splice_packed_product``) so that the default CPU schedule of
``ops.matmul`` / ``ops.dense`` (``tcomp/ops/cpu/dense.py``) splices the same stages into a schedule of the library
compute, reading ``A`` or ``B`` transposed where the operator does; the int8 product (``quantized_matmul.py``)
builds its own product over groups of four steps of K from the same packing of A and runs it on its own
micro-kernel (``PackedProduct.intrin``).

The number of rows may be a symbolic dimension (``with_symbolic_rows``): the same nest, the row blocks' loop running
to the rows there are.

Measured on 1024^3 (2 cores, AVX-512) against the previous schedule (B packed for all rows up front, one parallel
row block per core, A read in place, LLVM-vectorized loops): 0.85-0.9x of numpy's GFLOP/s before, 0.95-1.0x after.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from tcomp import te
from tcomp.ir.expr import Expr, Var
from tcomp.ops.cpu.gemm_plan import GemmBlocking, GemmPlan, choose_blocking, plan_gemm
from tcomp.ops.cpu.intrin import gemm_intrin
from tcomp.ops.cpu.views import unit_step
from tcomp.schedule import Schedule, create_schedule
from tcomp.schedule.cache import replace_op, restart_stage
from tcomp.schedule.stage import Stage
from tcomp.target import Target
from tcomp.te.intrin import TensorIntrin
from tcomp.te.tensor import ComputeOp, Tensor


@dataclass(frozen=True)
class Operand:
    """How a packed product reads one operand: ``tensor`` holds A as ``[M, K]`` (``[K, M]`` when ``transposed``)
    or B as ``[K, N]`` (``[N, K]``), after a leading batch axis when ``batched`` (of extent 1: one matrix for the
    whole batch). ``k_contiguous``: steps along K are adjacent in memory, so its packing copy runs along K."""

    tensor: Tensor
    transposed: bool = False
    batched: bool = False
    k_contiguous: bool = True
    is_b: bool = False

    def index(self, t: Expr, outer: Expr, k: Expr) -> tuple[Expr, ...]:
        """The index of element ``(outer, k)`` of matrix ``t``: ``outer`` is A's row or B's column."""
        matrix = (outer, k) if self.transposed == self.is_b else (k, outer)
        if not self.batched:
            return matrix
        extent = self.tensor.shape[0]
        return ((t if getattr(extent, "value", None) != 1 else te.const(0, "int32")), *matrix)

    def read(self, t: Expr, outer: Expr, k: Expr) -> Expr:
        return self.tensor[self.index(t, outer, k)]


def operand(tensor: Tensor, transposed: bool, batched: bool, is_a: bool) -> Operand:
    """An ``Operand`` whose ``k_contiguous`` is found by following the reads through inlined views (``views.py``);
    where they cannot be followed, the operand's own layout decides."""
    shape = [getattr(d, "value", None) for d in tensor.shape]
    outer_first = transposed != is_a
    probe = Operand(tensor, transposed, batched, outer_first, not is_a)
    if any(d is None for d in shape):
        return probe
    t, outer, k = te.var("t"), te.var("outer"), te.var("k")
    outers, steps = (shape[-2], shape[-1]) if outer_first else (shape[-1], shape[-2])
    bounds: dict[Var, tuple[int, int]] = {t: (0, max(0, shape[0] - 1) if batched else 0), outer: (0, outers - 1),
                                          k: (0, steps - 1)}
    along_k = unit_step(tensor, probe.index(t, outer, k), k, bounds)
    along_outer = unit_step(tensor, probe.index(t, outer, k), outer, bounds)
    if along_k == 1 and along_outer != 1:
        return Operand(tensor, transposed, batched, True, not is_a)
    if along_outer == 1 and along_k != 1:
        return Operand(tensor, transposed, batched, False, not is_a)
    return probe


@dataclass(frozen=True)
class PackedProduct:
    """The stages of a packed GEMM: ``packed_a`` (None where A is read in place), ``packed_b``, the ``Mp x Np``
    ``product`` and ``output``, the ``M x N`` result: the product itself, or a copy of its top-left corner (each
    with a leading batch axis when the plan is batched)."""

    packed_a: Tensor | None
    packed_b: Tensor
    product: Tensor
    output: Tensor
    a: Operand
    b: Operand
    b_packed_before: bool = False  # ``packed_b`` is given (a weight packed at compile time), not a copy to schedule
    intrin: TensorIntrin | None = None  # the micro-kernel of a tile (None: the float32 GEMM's)


def packed_product(plan: GemmPlan, a: Operand, b: Operand, name: str = "C", tag: str = "",
                   attrs: dict[str, Any] | None = None, panels: Tensor | None = None) -> PackedProduct:
    """The computes of ``plan`` for ``A`` read through ``a`` and ``B`` through ``b``. ``output`` is named ``name``
    and carries ``tag``; the product carries ``attrs`` (a padded one is named ``<name>.padded``). Reads beyond the
    edges of A and B are zeros in the packed panels. ``panels``: B already in its panels (``[Np / nr, Kp, nr]``,
    ``tcomp.ops.panels``), read as it is instead of copied (a single product only)."""
    bl = plan.blocking
    N, K, Np, Kp = plan.N, plan.K, plan.Np, plan.Kp
    dtype = a.tensor.dtype
    zero = te.const(0, dtype)
    lead: tuple[int, ...] = (plan.batch,) if plan.batched else ()

    # Steps beyond K must add zeros. Rows and columns beyond C's edge only feed products that are not copied into C:
    # A's repeat its last row (a clamped read, the same for all lanes of a vector); B's are zeros, where the columns
    # are the vector lanes: a select whose condition depends on the lane is evaluated lane by lane (masked loads),
    # so the reads need no clamp there, while a clamp would turn the vector load into a gather.
    def pack_b(t, x, y, z):
        column = x * bl.nr + z
        if Np == N and Kp == K:
            return b.read(t, column, y)
        return te.if_then_else(te.all(column < N, y < K), b.read(t, column, te.min(y, K - 1)), zero)

    if plan.batched:  # the axes are named after the arguments: t, then as in the single product
        b_body = pack_b
    else:
        def b_body(x, y, z):
            return pack_b(None, x, y, z)

    if panels is None:
        packed_b = te.compute((*lead, Np // bl.nr, Kp, bl.nr), b_body, name=f"{name}.packedB")
    else:
        shape = tuple(getattr(d, "value", None) for d in panels.shape)
        if plan.batched or shape != (Np // bl.nr, Kp, bl.nr):
            raise ValueError(f"packed_product: panels of shape {shape} do not fit the plan {plan}")
        packed_b = panels
    packed_a = pack_a_compute(plan, a, name)
    k = te.reduce_axis((0, Kp), name="k")

    def batch_body(t, i, j):
        b_value = packed_b[(*((t,) if plan.batched else ()), j // bl.nr, k, j % bl.nr)]
        return te.sum(packed_a_value(plan, a, packed_a, t, i, k) * b_value, axis=k)

    def single_body(i, j):
        return batch_body(None, i, j)

    product, output = product_computes(plan, batch_body if plan.batched else single_body, name, tag, attrs)
    return PackedProduct(packed_a, packed_b, product, output, a, b, panels is not None)


def pack_a_compute(plan: GemmPlan, a: Operand, name: str, dtype: str | None = None) -> Tensor | None:
    """``packedA[(t,) i // mr, i % mr, k]``: A's ``mr``-row micro-panels (converted to ``dtype`` when given), zero
    beyond K, rows beyond M repeating the last (a clamped read, the same for all lanes of a vector); None where the
    plan reads A in place."""
    if plan.in_place_a:
        return None
    bl, M, K, Kp = plan.blocking, plan.M, plan.K, plan.Kp
    dtype = dtype or a.tensor.dtype
    zero = te.const(0, dtype)

    def pack_a(t, x, z, y):
        row = x * bl.mr + z if plan.Mp == M else te.min(x * bl.mr + z, M - 1)
        value = te.cast(a.read(t, row, y), dtype)
        if Kp == K:
            return value
        return te.if_then_else(y < K, value, zero)

    def single(x, z, y):
        return pack_a(None, x, z, y)

    lead: tuple[int, ...] = (plan.batch,) if plan.batched else ()
    return te.compute((*lead, plan.Mp // bl.mr, bl.mr, Kp), pack_a if plan.batched else single,
                      name=f"{name}.packedA")


def packed_a_value(plan: GemmPlan, a: Operand, packed_a: Tensor | None, t: Expr | None, i: Expr, k: Expr) -> Expr:
    """Element ``(i, k)`` of A (of matrix ``t`` in a batch) as the product reads it: packed, or in place."""
    if packed_a is None:
        return a.read(t, i, k)
    bl = plan.blocking
    return packed_a[(*((t,) if plan.batched else ()), i // bl.mr, i % bl.mr, k)]


def product_computes(plan: GemmPlan, body: Any, name: str, tag: str,
                     attrs: dict[str, Any] | None) -> tuple[Tensor, Tensor]:
    """``(product, output)`` of a plan's product with ``body``: one tensor where the tiles fit C, else the
    ``Mp x Np`` product (``<name>.padded``) and a copy of its top-left corner."""
    M, N = plan.M, plan.N
    lead: tuple[int, ...] = (plan.batch,) if plan.batched else ()
    if not plan.padded:
        product = te.compute((*lead, M, N), body, name=name, tag=tag, attrs=attrs)
        return product, product
    product = te.compute((*lead, plan.Mp, plan.Np), body, name=f"{name}.padded", attrs=attrs)
    if plan.batched:
        output = te.compute((*lead, M, N), lambda t, i, j: product[t, i, j], name=name, tag=tag)
    else:
        output = te.compute((M, N), lambda i, j: product[i, j], name=name, tag=tag)
    return product, output


def schedule_packed_product(s: Schedule, plan: GemmPlan, stages: PackedProduct, host: Stage | None = None) -> Stage:
    """Schedule the product and the packing stages of ``stages`` as the module docstring describes (every
    ``mr x nr x kc`` tile a micro-kernel call); returns the product's stage. With ``host`` (an elementwise stage
    reading the product at its own indices, or with leading dimensions of 1 more: a bias, an activation, the
    copy out of a padded product) the host's loop over the cores' blocks runs the product block by block, and the
    host's own loops follow each block while it is in the core's cache (see ``host_blocks``). Without, a padded
    product's copy into C is left to the caller."""
    bl = plan.blocking
    product, packed_a, packed_b = stages.product, stages.packed_a, stages.packed_b
    stage = s[product]
    if host is not None:
        stage.compute_at(host, host_blocks(host, plan))
    *lead, i, j = product.op.axis
    k, *inner_k = product.op.reduce_axis
    i_panel, i_inner = stage.split(i, factor=bl.mr)  # whole tiles: the splits by mr, nr, kc divide Mp, Np, Kp
    i_block, i_panel = stage.split(i_panel, factor=plan.block_rows // bl.mr)
    j_panel, j_inner = stage.split(j, factor=bl.nr)
    # K may be two reduction axes, steps of a group and the step within it (the integer GEMM's groups of four)
    group = math.prod(int(iv.dom.extent.value) for iv in inner_k)
    k_outer, k_inner = stage.split(k, factor=bl.kc // group)
    tile = (i_inner, j_inner, k_inner, *inner_k)
    if plan.by_columns:
        if host is None:
            j_thread, j_panel = stage.split(j_panel, nparts=plan.column_blocks)
            stage.reorder(*lead, j_thread, k_outer, i_block, j_panel, i_panel, *tile)
            stage.parallel(j_thread)
        else:  # the host's loop gives this product a block of columns
            stage.reorder(*lead, k_outer, i_block, j_panel, i_panel, *tile)
        a_at = i_block
    else:
        stage.reorder(*lead, i_block, k_outer, j_panel, i_panel, *tile)
        if host is None:
            outer = stage.fuse(*lead, i_block) if lead else i_block
            if plan.cores > 1:
                stage.parallel(outer)
        a_at = k_outer
    # symbolic rows: the last tile computes the rows there are (its padding rows are never read)
    stage.tensorize(i_inner, stages.intrin or gemm_intrin(bl.mr, bl.nr, bl.kc, plan.lanes, plan.symbolic_rows))

    # the copies read their source along the axis contiguous in memory: vectorized where that is the panels' rows,
    # else in scalar runs
    if not stages.b_packed_before:
        s[packed_b].compute_at(stage, k_outer)
        *_, x, y, z = packed_b.op.axis
        if stages.b.k_contiguous:
            s[packed_b].reorder(x, z, y)  # a run of K per panel column
        else:
            s[packed_b].reorder(y, x, z)  # B row by row
            s[packed_b].vectorize(z)
    if packed_a is not None:
        *_, x, z, y = packed_a.op.axis
        if plan.shared_a:
            if plan.symbolic_rows is not None or plan.Mp // bl.mr > 1:
                s[packed_a].parallel(x)
        else:
            s[packed_a].compute_at(stage, a_at)
        if stages.a.k_contiguous:
            _, run = s[packed_a].split(y, factor=plan.lanes)
            s[packed_a].vectorize(run)
        else:
            s[packed_a].reorder(x, y, z)  # a run of rows per step of K
    return stage


def splice_packed_product(s: Schedule, stage: Stage, stages: PackedProduct, host: Stage | None,
                          plan: GemmPlan) -> bool:
    """Replace the compute of the product ``stage`` by the packed GEMM's ``stages`` (as ``cache_write`` replaces a
    stage's compute by a copy of a new stage): zero-padded packed panels of A and B, the product of whole tiles on
    the micro-kernel and, where the tiles overshoot C, a copy of the product's top-left corner (inlined into
    ``host`` when there is one). Reads of the product elsewhere are redirected to the new output, so callers keep
    their tensors. The epilogue ``host`` (or the copy) runs inside the product's parallel loop, block by block
    (``host_blocks``); returns whether ``host`` was scheduled so."""
    output = stages.output.op
    assert isinstance(output, ComputeOp)
    position = s.stages.index(stage)
    replace_op(s, stage, output)
    restart_stage(stage, tuple(output.axis) + tuple(output.reduce_axis))
    copies = (stages.packed_a, stages.product) if stages.b_packed_before else \
        (stages.packed_b, stages.packed_a, stages.product)
    new = [t.op for t in copies if t is not None and t.op is not output]
    for offset, new_op in enumerate(new):
        s.insert_stage(new_op, position + offset)
    if plan.padded and host is not None:
        stage.compute_inline()
    block_host = host if host is not None else stage if plan.padded else None
    schedule_packed_product(s, plan, stages, block_host)
    return host is not None


def host_blocks(host: Stage, plan: GemmPlan) -> Any:
    """Split ``host``'s loops as the product's blocks go (``mr``-row tiles in blocks of ``block_rows``, ``nr``-column
    panels, the panels or the row blocks over the cores) and return the loop at which the product is computed: one
    iteration per core's block (a block of columns, or a row block of one matrix). Its rows and columns are whole
    tiles, so the product's region is too (the host guards the rows and columns beyond its own, per vector of
    ``lanes`` where the last panel is partly outside C: its whole vectors run unguarded)."""
    bl = plan.blocking
    *lead, i, j = host.leaf_iter_vars
    i_tile, i_inner = host.split(i, factor=bl.mr)
    i_block, i_tile = host.split(i_tile, factor=plan.block_rows // bl.mr)
    j_panel, j_inner = host.split(j, factor=bl.nr)
    if plan.by_columns:
        j_thread, j_panel = host.split(j_panel, nparts=plan.column_blocks)
        host.reorder(j_thread, *lead, i_block, i_tile, i_inner, j_panel, j_inner)
        host.parallel(j_thread)
        attach = j_thread
    else:
        host.reorder(*lead, i_block, i_tile, i_inner, j_panel, j_inner)
        attach = host.fuse(*lead, i_block) if lead else i_block
        if plan.cores > 1:
            host.parallel(attach)
    if plan.N % bl.nr:  # the last panel is partly outside C: a guard per vector, not per panel
        _, j_inner = host.split(j_inner, factor=plan.lanes)
    host.vectorize(j_inner)
    return attach


def schedule_padded_copy(stage: Stage, lanes: int, cores: int) -> None:
    """The copy of a padded product into C: rows in parallel, each a vectorized run (a guarded tail where the
    vector width does not divide N)."""
    *lead, row, column = stage.op.axis
    _, column_inner = stage.split(column, factor=lanes)
    stage.vectorize(column_inner)
    if cores > 1:
        stage.parallel(stage.fuse(*lead, row) if lead else row)


def packed_matmul(
    M: int,
    N: int,
    K: int,
    blocking: GemmBlocking | None = None,
    target: Target | None = None,
    dtype: str = "float32",
) -> tuple[Schedule, list[Tensor]]:
    """The schedule and arguments ``[A, B, C]`` of a blocked, packed, parallel matmul on tcomp's micro-kernel."""
    if dtype != "float32":
        raise ValueError(f"packed_matmul: the GEMM micro-kernel is float32 only, got dtype={dtype!r}")
    target = target or Target.current_host()
    lanes = target.vector_bits // 32
    plan = plan_gemm(M, N, K, blocking or choose_blocking(M, N, K, target), lanes, target.num_cores)
    A = te.placeholder((M, K), name="A", dtype=dtype)
    B = te.placeholder((K, N), name="B", dtype=dtype)
    stages = packed_product(plan, Operand(A), Operand(B, k_contiguous=False, is_b=True))
    C = stages.output
    s = create_schedule(C)
    schedule_packed_product(s, plan, stages)
    if plan.padded:
        schedule_padded_copy(s[C], lanes, plan.cores)
    return s, [A, B, C]
