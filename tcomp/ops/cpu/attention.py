"""Fused attention on the CPU: ``softmax(q @ k_t * scale + biases) @ v``, one block of query rows at a time.

``attention(q, k_t, v, biases, scale, tiles)`` computes, for every matrix ``t`` of the (broadcast) batch,

    scores[i, j] = sum_d q[i, d] * k_t[d, j]              packed K, tensorized on the GEMM micro-kernel
    logits       = scores * scale + sum of biases[i, j]    (-inf in the padding columns; the scaled scores
                                                           capped first when softcap: softcap * tanh(. / softcap))
    max[i]       = max_j logits;  exp[i, j] = exp(logits - max[i]);  sum[i] = sum_j exp[i, j]
    out[i, e]    = sum_j exp[i, j] * v[j, e]               tensorized on the GEMM micro-kernel
    result       = out[i, e] / sum[i]                      (transposed by ``perm`` when given)

``schedule_attention`` runs one loop over (matrix, block of ``tiles.rows`` query rows) pairs, in parallel; inside it
each block computes its scores, softmax and product with V, so no more than a block of scores (``rows x Skv``) is
ever in memory. The key columns are padded to whole ``nr``-wide tiles (their logits are ``-inf``, so they weigh
nothing), the query rows to whole blocks (those rows read the last query row and are never written out). Q and V
are read in place by the micro-kernel where their rows are runs in memory with a row stride (transposed views of
the projections, ``views.py``), else packed; K is packed into ``nr``-column panels, along the axis that is
contiguous in memory.

One query row (a decoding step, ``mr = 1``) reads the key/value cache in place where its rows are runs in memory
(``[..., keys, d]``, K transposed by a view): each score is a dot product with a row of K (the dot micro-kernel),
and the result sums V's rows scaled by the weights, key by key, into accumulators held in registers. A packed copy
of K would cost as much as the scores themselves, for one use.

The batch (a batch of prompts: the number of matrices) and the numbers of queries and of keys may be symbolic
dimensions (a prompt's length, a cache's): the query rows are padded to whole blocks (their last row repeated),
blocks sized for ``TYPICAL_EXTENT`` keys where the keys are symbolic too, and the keys as above.

The stages carry ``OpKind.ATTENTION`` and their ``part`` so that ``schedule_cpu`` leaves them alone (they are not
inlined) and ``schedule_attention`` finds them from the result.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tcomp import te
from tcomp.arith import declared_upper_bound
from tcomp.ir.expr import Expr, IterKind, Var
from tcomp.ops.cpu.common import CpuTarget
from tcomp.ops.cpu.intrin import dot_intrin, gemm_intrin
from tcomp.ops.cpu.views import rows_in_place, unit_step
from tcomp.ops.elemwise import broadcast_shape
from tcomp.ops.utils import OP_KIND, OpError, OpKind, as_dim, as_int, element_count, op_kind, same_dim
from tcomp.schedule.schedule import Schedule
from tcomp.schedule.stage import Stage
from tcomp.te.tensor import ComputeOp, Tensor

PART = "attention_part"
BLOCK_SCORES_BYTES = 32 << 10  # a block's scores fit the L1 cache of most CPUs
TYPICAL_EXTENT = 1024  # stands for a symbolic extent where only a schedule decision depends on it


@dataclass(frozen=True)
class AttentionTiles:
    """``mr x nr`` micro tiles (``nr`` a multiple of the ``lanes`` of a vector) and blocks of ``rows`` query rows
    (a multiple of ``mr``)."""

    mr: int
    nr: int
    rows: int
    lanes: int


def choose_tiles(sq: int, skv: int, lanes: int, vector_registers: int) -> AttentionTiles:
    """Micro tiles of two vectors by ``mr`` rows (accumulators leaving registers for a panel row and a broadcast,
    at most 8 rows, and no more than the query has: a decoding step's one row is not padded to 8), blocks of rows
    whose scores stay in ``BLOCK_SCORES_BYTES``, the block chosen among multiples of ``mr`` to pad the query rows
    least."""
    nr = 2 * lanes
    mr = max(1, min(8, (vector_registers - 3) // 2, sq))
    columns = -(-skv // nr) * nr
    most = max(1, min(64 // mr, BLOCK_SCORES_BYTES // (4 * columns * mr)))
    best = min(range(1, most + 1), key=lambda blocks: (-(-sq // (blocks * mr)) * blocks * mr, -blocks))
    return AttentionTiles(mr, nr, best * mr, lanes)


def _ceil(a: Any, b: int) -> Any:
    """``a`` rounded up to a multiple of ``b`` (an expression when ``a`` is a symbolic dimension)."""
    if isinstance(a, int):
        return -(-a // b) * b
    return (a + (b - 1)) // b * b


def _ints(shape: Sequence[Any], what: str) -> tuple[int, ...]:
    values = tuple(getattr(d, "value", d) for d in shape)
    if not all(isinstance(v, (int, np.integer)) for v in values):
        raise OpError(f"attention: {what} must have a static shape, got {shape}")
    return tuple(int(v) for v in values)


def _is_one(dim: Any) -> bool:
    return as_int(dim) == 1


def _batch_reader(tensor: Tensor, batch: tuple[Any, ...]) -> Any:
    """``index(t)``: the leading indices of ``tensor`` for matrix ``t`` of ``batch`` (row-major over the batch
    shape; size-1 dimensions of ``tensor`` broadcast)."""
    own = [as_dim(d) for d in tensor.shape[:-2]]
    offset = len(batch) - len(own)
    strides = [element_count(batch[d + 1:]) for d in range(len(batch))]

    def index(t: Expr) -> tuple[Expr, ...]:
        result: list[Expr] = []
        for position, extent in enumerate(own):
            dim = position + offset
            if _is_one(extent):
                result.append(te.const(0, "int32"))
                continue
            value = t if _is_one(strides[dim]) else t // strides[dim]
            result.append(value if dim == 0 else value % batch[dim])
        return tuple(result)

    return index


def attention(q: Tensor, k_t: Tensor, v: Tensor, tiles: AttentionTiles, biases: Sequence[Tensor] = (),
              scale: float = 1.0, perm: Sequence[int] | None = None, name: str = "attention",
              softcap: float = 0.0) -> Tensor:
    """The stages of fused attention (module docstring) for ``q[..., Sq, D]``, ``k_t[..., D, Skv]``,
    ``v[..., Skv, Dv]`` and ``biases`` broadcast to ``[..., Sq, Skv]``; the result is ``[..., Sq, Dv]``, its axes
    permuted by ``perm`` (which keeps the last axis last) when given. A ``softcap`` above 0 caps the scaled scores
    before the biases: ``softcap * tanh(scores * scale / softcap)`` (Gemma 2's logit soft-capping)."""
    if not softcap >= 0.0 or softcap == float("inf"):
        raise OpError(f"attention: softcap must be a finite number at least 0, got {softcap}")
    for tensor in (q, k_t, v, *biases):
        if tensor.dtype != "float32":
            raise OpError(f"attention: {tensor.name} is {tensor.dtype}; the fused kernel is float32 only")
    (d,), (d_k,), (dv,) = _ints(q.shape[-1:], "q"), _ints(k_t.shape[-2:-1], "k_t"), _ints(v.shape[-1:], "v")
    sq = as_dim(q.shape[-2])
    skv, skv_v = as_dim(k_t.shape[-1]), as_dim(v.shape[-2])
    if d != d_k or not same_dim(skv, skv_v):
        raise OpError(f"attention: shapes q {q.shape}, k_t {k_t.shape}, v {v.shape} do not chain")
    batch = tuple(as_dim(x) for x in broadcast_shape("attention", *(t.shape[:-2] for t in (q, k_t, v, *biases))))
    try:
        for b in biases:
            if not (_is_one(b.shape[-2]) or same_dim(b.shape[-2], sq)):
                raise ValueError(f"a bias of {b.shape[-2]} rows for {sq} queries")
            if not (_is_one(b.shape[-1]) or same_dim(b.shape[-1], skv)):
                raise ValueError(f"a bias of {b.shape[-1]} columns for {skv} keys")
    except ValueError as error:
        raise OpError(f"attention: batch shapes do not broadcast: {error}") from None
    symbolic = not isinstance(skv, int)
    mr, nr, rows = tiles.mr, tiles.nr, tiles.rows
    if not isinstance(sq, int):  # a symbolic query (a prompt): blocks whose scores fit for a typical key count
        columns = _ceil(skv if isinstance(skv, int) else TYPICAL_EXTENT, nr)
        rows = mr * max(1, min(64 // mr, BLOCK_SCORES_BYTES // (4 * columns * mr)))
    padded_rows = not isinstance(sq, int) or sq % rows != 0  # query rows padded to whole blocks
    if nr % tiles.lanes or rows % mr:
        raise OpError(f"attention: tiles {tiles}: nr must be a multiple of the lanes, rows of mr")
    count = element_count(batch)  # the matrices: an expression for a symbolic batch
    last_matrix = (count if isinstance(count, int) else declared_upper_bound(count)) - 1
    sq_p, np_, dv_p = _ceil(sq, rows), _ceil(skv, nr), _ceil(dv, nr)
    q_at, k_at, v_at = _batch_reader(q, batch), _batch_reader(k_t, batch), _batch_reader(v, batch)
    zero = te.const(0.0, "float32")

    def attrs(part: str) -> dict[str, Any]:
        return {OP_KIND: OpKind.ATTENTION, PART: part}

    def read_k(t: Expr, j: Expr, dd: Expr) -> Expr:
        return k_t[(*k_at(t), dd, j)]

    padded = symbolic or np_ != skv
    q_row, q_col, t_var = te.var("i"), te.var("d"), te.var("t")
    k_row, k_col = te.var("j"), te.var("d")
    k_bounds = {t_var: (0, last_matrix), k_row: (0, (skv if not symbolic else TYPICAL_EXTENT) - 1), k_col: (0, d - 1)}
    # one query row: its scores are dot products with K's rows, read in place where they are runs in memory
    # (packing K would copy all of it for one use)
    k_rows = mr == 1 and rows_in_place(k_t, (*k_at(t_var), k_col, k_row), k_row, k_col, k_bounds)
    if not k_rows:
        def pack_k(t: Var, jo: Var, dd: Var, jj: Var) -> Expr:
            j = jo * nr + jj
            if not padded:
                return read_k(t, j, dd)
            # the clamp tells the simplifier the key stays in range (a reshaped K's index needs no modulo then)
            return te.if_then_else(j < skv, read_k(t, te.min(j, skv - 1), dd), zero)

        packed_k = te.compute((count, np_ // nr, d, nr), pack_k, name=f"{name}.packedK", attrs=attrs("packed_k"))
    q_in_place = not padded_rows and rows_in_place(q, (*q_at(t_var), q_row, q_col), q_row, q_col,
                                                   {t_var: (0, last_matrix), q_row: (0, sq - 1), q_col: (0, d - 1)})
    if q_in_place:
        def read_q(t: Expr, i: Expr, dd: Expr) -> Expr:
            return q[(*q_at(t), i, dd)]
    else:
        packed_q = te.compute((count, sq_p // mr, mr, d),
                              lambda t, io, ii, dd: q[(*q_at(t), te.min(io * mr + ii, sq - 1), dd)],
                              name=f"{name}.packedQ", attrs=attrs("packed_q"))

        def read_q(t: Expr, i: Expr, dd: Expr) -> Expr:
            return packed_q[t, i // mr, i % mr, dd]

    kd = te.reduce_axis((0, d), name="kd")
    if k_rows:
        # a padding column scores the last key again (finite; its logit is -inf)
        def score(t: Var, i: Var, j: Var) -> Expr:
            return te.sum(read_q(t, i, kd) * read_k(t, te.min(j, skv - 1) if padded else j, kd), axis=kd)
    else:
        def score(t: Var, i: Var, j: Var) -> Expr:
            return te.sum(read_q(t, i, kd) * packed_k[t, j // nr, kd, j % nr], axis=kd)
    scores = te.compute((count, sq_p, np_), score, name=f"{name}.scores", attrs=attrs("scores"))
    bias_at = [(_batch_reader(b, batch), (_is_one(b.shape[-2]), _is_one(b.shape[-1]))) for b in biases]

    def logits(t: Expr, i: Expr, j: Expr) -> Expr:
        value = scores[t, i, j] * te.const(float(scale), "float32")
        if softcap:
            cap = te.const(float(softcap), "float32")
            value = te.tanh(value / cap) * cap
        row = te.min(i, sq - 1) if padded_rows else i
        column = te.min(j, skv - 1) if padded else j  # the padding columns read the last key's bias
        for bias, (at, (one_row, one_column)) in zip(biases, bias_at):
            value = value + bias[(*at(t), te.const(0, "int32") if one_row else row,
                                  te.const(0, "int32") if one_column else column)]
        if not padded:
            return value
        # -inf added in the padding columns (their scores are zeros, finite): a select of two constants, a vector
        # blend, where a select around the loads of the scores would keep the row loops scalar
        return value + te.if_then_else(j < skv, zero, te.const(float("-inf"), "float32"))

    jm = te.reduce_axis((0, np_), name="jm")
    row_max = te.compute((count, sq_p), lambda t, i: te.max(logits(t, i, jm), axis=jm), name=f"{name}.max",
                         attrs=attrs("max"))
    expo = te.compute((count, sq_p, np_), lambda t, i, j: te.exp(logits(t, i, j) - row_max[t, i]),
                      name=f"{name}.exp", attrs=attrs("exp"))
    js = te.reduce_axis((0, np_), name="js")
    row_sum = te.compute((count, sq_p), lambda t, i: te.sum(expo[t, i, js], axis=js), name=f"{name}.sum",
                         attrs=attrs("sum"))
    v_row, v_col = te.var("j"), te.var("e")
    v_bounds = {t_var: (0, last_matrix), v_row: (0, (skv if not symbolic else TYPICAL_EXTENT) - 1), v_col: (0, dv - 1)}
    v_rows = rows_in_place(v, (*v_at(t_var), v_row, v_col), v_row, v_col, v_bounds)
    # one query row: the weighted sum of V's rows, read in place, over exactly the keys there are
    v_sum = mr == 1 and v_rows
    # else a symbolic number of keys: V is packed with zero rows up to a whole tile, so that the product runs over
    # whole nr-key steps of the micro-kernel (the padding columns' weights are exp(-inf) = 0)
    keys = np_ if symbolic and not v_sum else skv
    if v_sum or (not symbolic and dv_p == dv and v_rows):
        def read_v(t: Expr, j: Expr, e: Expr) -> Expr:
            return v[(*v_at(t), j, e)]
    else:
        def pack_v(t: Var, eo: Var, j: Var, ee: Var) -> Expr:
            e = eo * nr + ee
            value = v[(*v_at(t), te.min(j, skv - 1) if symbolic else j, e if dv_p == dv else te.min(e, dv - 1))]
            conditions = ([j < skv] if symbolic else []) + ([e < dv] if dv_p != dv else [])
            return te.if_then_else(te.all(*conditions), value, zero) if conditions else value

        packed_v = te.compute((count, dv_p // nr, keys, nr), pack_v, name=f"{name}.packedV",
                              attrs=attrs("packed_v"))

        def read_v(t: Expr, j: Expr, e: Expr) -> Expr:
            return packed_v[t, e // nr, j, e % nr]

    jo = te.reduce_axis((0, keys), name="jo")
    out = te.compute((count, sq_p, dv if v_sum else dv_p),
                     lambda t, i, e: te.sum(expo[t, i, jo] * read_v(t, jo, e), axis=jo), name=f"{name}.out",
                     attrs=attrs("out"))
    natural = (*batch, sq, dv)
    order = tuple(range(len(natural))) if perm is None else tuple(int(p) for p in perm)
    if sorted(order) != list(range(len(natural))) or order[-1] != len(natural) - 1:
        raise OpError(f"attention: perm {perm} must permute {len(natural)} axes and keep the last one last")
    shape = tuple(natural[p] for p in order)
    strides = [element_count(batch[d + 1:]) for d in range(len(batch))]

    def result(*index: Var) -> Expr:
        source = [te.const(0, "int32")] * len(natural)
        for position, axis in enumerate(order):
            source[axis] = index[position]
        t: Expr = te.const(0, "int32")
        for dim, stride in enumerate(strides):
            t = t + (source[dim] if _is_one(stride) else source[dim] * stride)
        return out[t, source[-2], source[-1]] / row_sum[t, source[-2]]

    return te.compute(shape, result, name=name, tag="attention",
                      attrs={**attrs("result"), "perm": order, "rows": rows, "mr": mr, "nr": nr,
                             "lanes": tiles.lanes})


def _parts(result: Tensor) -> dict[str, Tensor]:
    """The attention stages behind ``result``, by part."""
    found: dict[str, Tensor] = {}
    stack = [result]
    while stack:
        tensor = stack.pop()
        op = tensor.op
        if not isinstance(op, ComputeOp) or op_kind(op) is not OpKind.ATTENTION:
            continue
        part = str(op.attrs[PART])
        if part in found:
            continue
        found[part] = tensor
        stack.extend(op.input_tensors())
    return found


def schedule_attention(s: Schedule, stage: Stage, cpu: CpuTarget) -> None:
    """Schedule the attention whose result ``stage`` is (module docstring)."""
    op = stage.op
    assert isinstance(op, ComputeOp)
    parts = _parts(op.output(0))
    rows, mr, nr, lanes = (int(op.attrs[key]) for key in ("rows", "mr", "nr", "lanes"))
    order = tuple(op.attrs["perm"])
    # the result's loops in the order of the natural axes: batch..., query row, value column
    natural = [op.axis[order.index(axis)] for axis in range(len(order))]
    *batch_axes, row, column = natural
    stage.reorder(*natural)
    extent = as_int(row.dom.extent)  # type: ignore[attr-defined]
    blocks = -(-(TYPICAL_EXTENT if extent is None else extent) // rows)  # a symbolic query: many blocks
    row_block, row_inner = stage.split(row, factor=rows)
    # a symbolic batch: many matrices
    matrices = element_count([as_int(iv.dom.extent) or TYPICAL_EXTENT for iv in batch_axes])  # type: ignore[attr-defined]
    per_block = ("out", "sum", "exp", "max", "scores", "packed_q")  # readers first
    per_matrix = ("packed_v", "packed_k")
    if matrices >= cpu.cores or (matrices > 1 and blocks == 1):
        # the cores take whole matrices: K and V are packed once per matrix, then the row blocks run in turn
        matrix = stage.fuse(*batch_axes) if len(batch_axes) > 1 else batch_axes[0]
        if cpu.cores > 1:
            stage.parallel(matrix)
        block_loop, matrix_loop = row_block, matrix
    else:
        # fewer matrices than cores: (matrix, row block) pairs in parallel, each packing what it reads
        block_loop = stage.fuse(*batch_axes, row_block) if batch_axes else row_block
        if cpu.cores > 1:
            stage.parallel(block_loop)
        matrix_loop = block_loop
    # whole nr-wide tiles of the product's columns, so its region is whole tiles (the last one guarded here)
    _, column_inner = stage.split(column, factor=nr)
    stage.vectorize(column_inner)
    for part in per_block:
        if part in parts:
            s[parts[part]].compute_at(stage, block_loop)
    for part in per_matrix:
        if part in parts:
            s[parts[part]].compute_at(stage, matrix_loop)
    if "packed_k" in parts:
        _schedule_product(s[parts["scores"]], mr, nr, lanes)
    else:  # one dot product per key (K's rows in place)
        scores = s[parts["scores"]]
        (kd,) = scores.op.reduce_axis  # type: ignore[attr-defined]
        scores.tensorize(kd, dot_intrin(int(kd.dom.extent.value), lanes))  # type: ignore[attr-defined]
    if mr == 1 and "packed_v" not in parts:
        _schedule_row_sum(s[parts["out"]], lanes)
    else:
        _schedule_product(s[parts["out"]], mr, nr, lanes)
    _schedule_packing(s, parts, lanes)
    for part in ("max", "sum"):
        _schedule_row_reduction(s, s[parts[part]], lanes)
    exp_stage = s[parts["exp"]]
    _, j_inner = exp_stage.split(exp_stage.op.axis[-1], factor=lanes)
    exp_stage.vectorize(j_inner)


def _schedule_product(stage: Stage, mr: int, nr: int, lanes: int) -> None:
    """``[t, i, j] = sum_k a[t, i, k] b[t, k, j]`` in ``mr x nr`` tiles, each a micro-kernel call over all of K."""
    op = stage.op
    assert isinstance(op, ComputeOp)
    t, i, j = op.axis
    (k,) = op.reduce_axis
    i_outer, i_inner = stage.split(i, factor=mr)
    j_outer, j_inner = stage.split(j, factor=nr)
    steps = getattr(k.dom.extent, "value", None)
    if isinstance(steps, int):
        stage.reorder(t, j_outer, i_outer, i_inner, j_inner, k)
    else:  # a symbolic number of keys, a multiple of nr: micro-kernel calls of nr steps, accumulating
        k_outer, k = stage.split(k, factor=nr)
        stage.reorder(t, j_outer, i_outer, k_outer, i_inner, j_inner, k)
        steps = nr
    stage.tensorize(i_inner, gemm_intrin(mr, nr, steps, lanes))


def _schedule_row_sum(stage: Stage, lanes: int) -> None:
    """``out[t, 0, e] = sum_j w[t, 0, j] * v[t, j, e]`` key by key: a row of V (whole vectors, unrolled) scaled
    and added to accumulators that stay in registers over the keys."""
    op = stage.op
    assert isinstance(op, ComputeOp)
    t, i, e = op.axis
    (j,) = op.reduce_axis
    e_outer, e_inner = stage.split(e, factor=lanes)
    stage.reorder(t, i, j, e_outer, e_inner)
    stage.unroll(e_outer)
    stage.vectorize(e_inner)


def _schedule_packing(s: Schedule, parts: dict[str, Tensor], lanes: int) -> None:
    """The packing copies read their source along its contiguous axis."""
    if "packed_k" in parts:
        packed_k = parts["packed_k"]
        stage = s[packed_k]
        t, jo, dd, jj = packed_k.op.axis
        if _step_along(packed_k, jj) == 1:
            stage.reorder(t, jo, dd, jj)
            stage.vectorize(jj)
        else:
            stage.reorder(t, jo, jj, dd)  # a run of D per key
    if "packed_q" in parts:
        packed_q = parts["packed_q"]
        t, io, ii, dd = packed_q.op.axis
        _, run = s[packed_q].split(dd, factor=lanes)
        s[packed_q].vectorize(run)
    if "packed_v" in parts:
        packed_v = parts["packed_v"]
        t, eo, j, ee = packed_v.op.axis
        s[packed_v].vectorize(ee)


def _step_along(packed: Tensor, axis: Any) -> int | None:
    """How far the source read of one element of ``packed`` moves in memory along its ``axis``."""
    op = packed.op
    assert isinstance(op, ComputeOp)
    # a symbolic extent (a number of keys) is bounded by a typical one: the answer chooses a loop order only
    extents = [as_int(iv.dom.extent) or TYPICAL_EXTENT for iv in op.axis]
    bounds = {iv.var: (0, extent - 1) for iv, extent in zip(op.axis, extents)}
    return unit_step(packed, tuple(iv.var for iv in op.axis), axis.var, bounds)


def _schedule_row_reduction(s: Schedule, stage: Stage, lanes: int) -> None:
    """A reduction along a row of whole vectors: partial results per lane (rfactor), vectorized, then summed."""
    op = stage.op
    assert isinstance(op, ComputeOp)
    (k,) = op.reduce_axis
    _, k_inner = stage.split(k, factor=lanes)
    partial = s[s.rfactor(op.output(0), k_inner, factor_axis=len(op.axis))]
    partial.compute_at(stage, stage.op.axis[-1])  # type: ignore[attr-defined]
    data = [iv for iv in partial.leaf_iter_vars if iv.kind is not IterKind.REDUCE]
    reduce = [iv for iv in partial.leaf_iter_vars if iv.kind is IterKind.REDUCE]
    partial.reorder(*data[:-1], *reduce, data[-1])
    partial.vectorize(data[-1])
