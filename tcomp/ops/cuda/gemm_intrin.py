"""Block tiles of matrix products and convolutions as tensor intrinsics backed by the GEMM tile kernel.

``matmul_tile_intrin`` declares ``c[BM, BN] = sum_k a[BM, K] * b[K, BN]`` (either operand transposed, float32 or
float16 operands, float32 results) and ``conv_tile_intrin`` a ``block_m x tile_y x tile_x`` output tile of an NCHW
convolution over its whole window. Both are ``partial`` (a tile may overhang the tensors) and lower to::

    allocate smem: float32[shared bytes / 4] in shared memory
    for tid in threadIdx.x (0 .. threads):
        tc_gemm_<hash>(&a[tile start], &b[tile start], &c[tile start], rows left, pixel rows left,
                       columns left, &smem[0], tid)

where ``tc_gemm_<hash>`` is the device function ``gemm_source`` generates for the tile and the operands' strides
(read off the regions). ``schedule_matmul_tile`` and ``schedule_conv2d_tile`` split the output into block tiles,
bind them to ``blockIdx`` and tensorize; a convolution's padding stage becomes its own kernel (the tile kernel
reads the padded tensor).
"""

from __future__ import annotations

import functools

from tcomp import te
from tcomp.arith import simplify
from tcomp.ir import expr as E
from tcomp.ir.buffer import Buffer
from tcomp.ir.stmt import Allocate, Evaluate, For, ForKind, Stmt
from tcomp.ops.cuda.common import bind_blocks_threads
from tcomp.ops.cuda.gemm_source import gemm_device_function
from tcomp.ops.cuda.gemm_tile import GemmError, GemmProblem, GemmTile, shared_bytes
from tcomp.ops.utils import OpKind, op_kind
from tcomp.schedule.schedule import Schedule
from tcomp.target import Precision, Target
from tcomp.te.intrin import TensorIntrin, TensorRegion, decl_tensor_intrin
from tcomp.te.tensor import ComputeOp, PlaceholderOp, Tensor

ELEMWISE_THREADS = 256


def _const(value: E.Expr, what: str) -> int:
    result = E.const_int_value(simplify(value))
    if result is None:
        raise GemmError(f"GEMM tile: {what} is {value}, not a constant (the tile kernel needs static shapes)")
    return result


def _call(tile: GemmTile, problem: GemmProblem, target: Target | None, a: TensorRegion, b: TensorRegion,
          c: TensorRegion, limits: tuple[E.Expr, E.Expr, E.Expr]) -> Stmt:
    function = gemm_device_function(tile, problem, target)
    smem = Buffer("gemm_smem", (E.const(shared_bytes(tile, problem) // 4),), "float32", scope="shared")
    tid = E.Var("tid", "int32")
    args = (a.access_ptr(), b.access_ptr(), c.access_ptr(), *limits,
            E.Call("address_of", (E.BufferLoad(smem, (E.const(0),), "float32"),), "handle"), tid)
    call = Evaluate(E.Call(function.name, args, "int32", "extern"))
    loop = For(tid, E.const(0), E.const(tile.threads), ForKind.THREAD_BINDING, call, thread_tag="threadIdx.x")
    return Allocate(smem, loop)


def _left(region: TensorRegion, dim: int) -> E.Expr:
    """How many elements of ``region``'s buffer lie from its start to the end of dimension ``dim``."""
    return simplify(E.cast(region.buffer.shape[dim], "int32") - E.cast(region.start[dim], "int32"))


def _strides(region: TensorRegion, what: str) -> list[int]:
    return [_const(s, f"a stride of {what}") for s in region.strides]


@functools.cache
def matmul_tile_intrin(tile: GemmTile, K: int, dtype: str, precision: Precision, transpose_a: bool = False,
                       transpose_b: bool = False, target: Target | None = None) -> TensorIntrin:
    """The ``block_m x block_n`` tile of ``ops.matmul(a, b, transpose_a, transpose_b, out_dtype="float32")`` over
    the whole reduction ``K`` (module docstring)."""
    bm, bn = tile.block_m, tile.block_n
    a = te.placeholder((K, bm) if transpose_a else (bm, K), dtype, "a")
    b = te.placeholder((bn, K) if transpose_b else (K, bn), dtype, "b")
    k = te.reduce_axis((0, K), name="k")

    def body(i: E.Var, j: E.Var) -> E.Expr:
        lhs = a[k, i] if transpose_a else a[i, k]
        rhs = b[j, k] if transpose_b else b[k, j]
        return te.sum(E.cast(lhs, "float32") * E.cast(rhs, "float32"), axis=k)

    c = te.compute((bm, bn), body, name="c")

    def lower(ins: list[TensorRegion], outs: list[TensorRegion]) -> Stmt:
        ra, rb = ins
        (rc,) = outs
        sa, sb, sc = _strides(ra, "a"), _strides(rb, "b"), _strides(rc, "c")
        a_sm, a_sk = (sa[1], sa[0]) if transpose_a else (sa[0], sa[1])
        b_sc, b_sx = (sb[1], sb[0]) if transpose_b else (sb[0], sb[1])
        rows, cols = (_const(rc.buffer.shape[d], "the result's shape") for d in (-2, -1))
        problem = GemmProblem(precision, dtype, dtype, "float32", K, a_sm, a_sk, b_sc, 0, b_sx, sc[0], 0, sc[1],
                              rows, 1, cols)
        return _call(tile, problem, target, ra, rb, rc, (_left(rc, -2), E.const(1), _left(rc, -1)))

    name = f"gemm_tile_{bm}x{bn}x{K}_{dtype}_{precision}_{'t' if transpose_a else 'n'}{'t' if transpose_b else 'n'}"
    return decl_tensor_intrin(c, lower, name=name, partial=True)


@functools.cache
def conv_tile_intrin(tile: GemmTile, tile_y: int, tile_x: int, in_channels: int, window: tuple[int, int],
                     stride: tuple[int, int], dilation: tuple[int, int], dtype: str, precision: Precision,
                     target: Target | None = None) -> TensorIntrin:
    """A ``block_m x tile_y x tile_x`` tile (output channels, rows, columns) of ``ops.conv2d_nchw`` (one group)
    over the whole window and all input channels, reading the padded input (module docstring)."""
    if tile.block_n != tile_y * tile_x:
        raise GemmError(f"conv tile: block_n={tile.block_n} must be tile_y * tile_x = {tile_y * tile_x}")
    (kh, kw), (sh, sw), (dh, dw) = window, stride, dilation
    rows = (tile_y - 1) * sh + (kh - 1) * dh + 1
    cols = (tile_x - 1) * sw + (kw - 1) * dw + 1
    data = te.placeholder((in_channels, rows, cols), dtype, "d")
    weight = te.placeholder((tile.block_m, in_channels, kh, kw), dtype, "w")
    rc = te.reduce_axis((0, in_channels), name="rc")
    ry = te.reduce_axis((0, kh), name="ry")
    rx = te.reduce_axis((0, kw), name="rx")

    def body(f: E.Var, y: E.Var, x: E.Var) -> E.Expr:
        value = data[rc, y * sh + ry * dh, x * sw + rx * dw]
        return te.sum(E.cast(value, "float32") * E.cast(weight[f, rc, ry, rx], "float32"), axis=[rc, ry, rx])

    out = te.compute((tile.block_m, tile_y, tile_x), body, name="c")

    def lower(ins: list[TensorRegion], outs: list[TensorRegion]) -> Stmt:
        by_name = {p.name: r for p, r in zip((data, weight), ins)}
        rd, rw = by_name["d"], by_name["w"]
        (rc_,) = outs
        sd, sw_, so = _strides(rd, "the input"), _strides(rw, "the weights"), _strides(rc_, "the output")
        if sw_[1:] != [kh * kw, kw, 1]:
            raise GemmError(f"conv tile: weights with strides {sw_} are not contiguous per output channel")
        extents = [_const(rc_.buffer.shape[d], "the output's shape") for d in (-3, -2, -1)]
        problem = GemmProblem(precision, dtype, dtype, "float32", in_channels * kh * kw, sw_[0], 1, sd[0], sd[1],
                              sd[2], so[0], so[1], so[2], extents[0], extents[1], extents[2], tile_x, window,
                              stride, dilation)
        limits = (_left(rc_, -3), _left(rc_, -2), _left(rc_, -1))
        return _call(tile, problem, target, rw, rd, rc_, limits)

    name = (f"conv_tile_{tile.block_m}x{tile_y}x{tile_x}_{in_channels}x{kh}x{kw}_s{sh}{sw}_d{dh}{dw}_{dtype}_"
            f"{precision}")
    return decl_tensor_intrin(out, lower, name=name, partial=True)


# ---------------------------------------------------------------------------------------------------------------------
def schedule_matmul_tile(s: Schedule, C: Tensor, tile: GemmTile, precision: Precision,
                         target: Target | None = None) -> None:
    """Block tiles of a ``matmul`` or ``batch_matmul`` stage (two inputs read directly, float32 result) computed
    by the tile kernel: ``[batch] x M/block_m x N/block_n`` blocks (``blockIdx.z, y, x``)."""
    op = C.op
    assert isinstance(op, ComputeOp)
    A, B = op.input_tensors()
    if A.dtype != B.dtype or C.dtype != "float32":
        raise GemmError(f"matmul tile: operands {A.dtype} and {B.dtype} with a {C.dtype} result; the tile kernel "
                        "multiplies equal operand types into float32")
    (k_axis,) = op.reduce_axis
    K = _const(k_axis.dom.extent, "the reduction extent")
    intrin = matmul_tile_intrin(tile, K, A.dtype, precision, bool(op.attrs.get("transpose_a", False)),
                                bool(op.attrs.get("transpose_b", False)), target)
    stage = s[C]
    *batch, i, j = stage.op.axis
    io, ii = stage.split(i, factor=tile.block_m)
    jo, ji = stage.split(j, factor=tile.block_n)
    stage.reorder(*batch, io, jo, ii, ji)
    if batch:
        stage.bind(stage.fuse(*batch) if len(batch) > 1 else batch[0], te.thread_axis("blockIdx.z"))
    stage.bind(io, te.thread_axis("blockIdx.y"))
    stage.bind(jo, te.thread_axis("blockIdx.x"))
    stage.tensorize(ii, intrin)


def schedule_conv2d_tile(s: Schedule, conv: Tensor, tile: GemmTile, tile_y: int, tile_x: int,
                         precision: Precision, target: Target | None = None) -> None:
    """Output tiles of a ``conv2d_nchw`` stage (one group) computed by the tile kernel: ``batch * CO/block_m x
    OH/tile_y x OW/tile_x`` blocks; a padding stage before it is computed by its own kernel."""
    op = conv.op
    assert isinstance(op, ComputeOp)
    padded, kernel = op.input_tensors()
    if op.attrs.get("groups", 1) != 1:
        raise GemmError("conv tile: grouped convolutions are not matrix products of the whole input")
    if not isinstance(padded.op, PlaceholderOp):
        if op_kind(padded.op) is not OpKind.PAD:
            raise GemmError(f"conv tile: the input {padded.name} must be a tensor or its padding")
        pad_stage = s[padded]
        pad_stage.compute_root()
        axes = list(pad_stage.op.axis)
        bind_blocks_threads(pad_stage, pad_stage.fuse(*axes), ELEMWISE_THREADS)
    in_channels = _const(kernel.shape[1], "the input channels")
    window = (_const(kernel.shape[2], "the window"), _const(kernel.shape[3], "the window"))
    intrin = conv_tile_intrin(tile, tile_y, tile_x, in_channels, window, tuple(op.attrs.get("stride", (1, 1))),
                              tuple(op.attrs.get("dilation", (1, 1))), padded.dtype, precision, target)
    stage = s[conv]
    n, f, y, x = stage.op.axis
    fo, fi = stage.split(f, factor=tile.block_m)
    yo, yi = stage.split(y, factor=tile_y)
    xo, xi = stage.split(x, factor=tile_x)
    stage.reorder(n, fo, yo, xo, fi, yi, xi)
    stage.bind(stage.fuse(n, fo), te.thread_axis("blockIdx.z"))
    stage.bind(yo, te.thread_axis("blockIdx.y"))
    stage.bind(xo, te.thread_axis("blockIdx.x"))
    stage.tensorize(fi, intrin)
