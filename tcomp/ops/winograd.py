"""3x3 convolution by Winograd's minimal filtering F(m x m, 3 x 3), in the blocked layout of ``conv2d_nchwc``.

Each ``m x m`` block of output pixels ("tile") is computed from the ``a x a`` input patch under it (``a = m + 2``)::

    V = B^T d B     (input transform, per input channel)
    U = G g G^T     (kernel transform, per output and input channel: computed once, at compile time)
    M = sum_c U * V (elementwise over the a x a positions: a * a independent matrix products over the channels)
    Y = A^T M A     (output transform, per output channel)

with Lavin and Gray's matrices (``winograd_matrices``). The products do ``a^2 / (9 m^2)`` of a direct
convolution's multiply-adds: F(2x2, 3x3) 4/9, F(4x4, 3x3) 1/4; the transforms are additions and multiplications by
small constants. The price is rounding: the transforms' constants grow with ``m``, so float32 results differ from a
direct convolution by about ``1e-6`` (m = 2) and ``1e-5`` (m = 4) of the output's magnitude.

Stages of ``conv2d_winograd_nchwc`` (data ``[N, C/ic, H, W, ic]``, transformed kernel
``[a, a, K/oc, C/ic, ic, oc]``), for a schedule to place::

    pad_data[n, c, y, x, i]                 zero padding up to whole tiles (``OpKind.PAD``)
    rows[e, c, t, tx, x, i] = B^T d         input transform of the patch's rows; t = n * TH + ty
    V[e, u, c, t, tx, i]    = rows B        and of its columns (both ``WINOGRAD_INPUT``, ``PART`` rows, columns)
    M[e, u, k, t, tx, o] = sum_{c, i} V[e, u, c, t, tx, i] * U[e, u, k, c, i, o]   (``CONV2D_WINOGRAD``)
    rows[r, u, k, t, tx, o] = A^T M         output transform's rows
    out[n, k, y, x, o]      = rows A        at tile (y / m, x / m) (both ``WINOGRAD_OUTPUT``, ``PART`` rows, result)

``M`` is a batch of ``a^2`` blocked 1x1 convolutions of a ``TH x TW`` "image" of tiles: the schedule gives it the
register tiles of ``conv2d_nchwc``.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from typing import Any

from tcomp import te
from tcomp.ir.expr import Expr, Var, select
from tcomp.ops.conv import _spatial_args, pad
from tcomp.ops.utils import OP_KIND, OpError, OpKind, Tag, check_tensor, static_dim
from tcomp.te.tensor import Tensor

__all__ = ["WINOGRAD_TILES", "conv2d_winograd_nchwc", "winograd_kernel", "winograd_matrices"]

# which stage of a transform a compute is: "rows" and "columns" of the input transform, "rows" and "result" of the
# output transform
PART = "winograd_part"
# output tile sizes m with transforms defined here
WINOGRAD_TILES = (2, 4)

_F = Fraction
_MATRICES: dict[int, tuple[list[list[Fraction]], list[list[Fraction]], list[list[Fraction]]]] = {
    2: (
        [[_F(1), _F(0), _F(-1), _F(0)], [_F(0), _F(1), _F(1), _F(0)], [_F(0), _F(-1), _F(1), _F(0)],
         [_F(0), _F(1), _F(0), _F(-1)]],
        [[_F(1), _F(0), _F(0)], [_F(1, 2), _F(1, 2), _F(1, 2)], [_F(1, 2), _F(-1, 2), _F(1, 2)],
         [_F(0), _F(0), _F(1)]],
        [[_F(1), _F(1), _F(1), _F(0)], [_F(0), _F(1), _F(-1), _F(-1)]],
    ),
    4: (
        [[_F(4), _F(0), _F(-5), _F(0), _F(1), _F(0)], [_F(0), _F(-4), _F(-4), _F(1), _F(1), _F(0)],
         [_F(0), _F(4), _F(-4), _F(-1), _F(1), _F(0)], [_F(0), _F(-2), _F(-1), _F(2), _F(1), _F(0)],
         [_F(0), _F(2), _F(-1), _F(-2), _F(1), _F(0)], [_F(0), _F(4), _F(0), _F(-5), _F(0), _F(1)]],
        [[_F(1, 4), _F(0), _F(0)], [_F(-1, 6), _F(-1, 6), _F(-1, 6)], [_F(-1, 6), _F(1, 6), _F(-1, 6)],
         [_F(1, 24), _F(1, 12), _F(1, 6)], [_F(1, 24), _F(-1, 12), _F(1, 6)], [_F(0), _F(0), _F(1)]],
        [[_F(1), _F(1), _F(1), _F(1), _F(1), _F(0)], [_F(0), _F(1), _F(-1), _F(2), _F(-2), _F(0)],
         [_F(0), _F(1), _F(1), _F(4), _F(4), _F(0)], [_F(0), _F(1), _F(-1), _F(8), _F(-8), _F(1)]],
    ),
}


def winograd_matrices(m: int) -> tuple[list[list[Fraction]], list[list[Fraction]], list[list[Fraction]]]:
    """``(B^T, G, A^T)`` of F(m x m, 3 x 3): ``B^T`` is ``a x a``, ``G`` is ``a x 3``, ``A^T`` is ``m x a``
    (``a = m + 2``), exact rationals. For every 1-D signal ``d`` of ``a`` samples and filter ``g`` of 3,
    ``A^T ((G g) * (B^T d))`` is the ``m`` outputs of the valid correlation of ``d`` with ``g``."""
    if isinstance(m, bool) or not isinstance(m, int) or m not in _MATRICES:
        raise OpError(f"winograd: output tile {m!r} is not one of {WINOGRAD_TILES}")
    return _MATRICES[m]


def _combination(coefficients: Sequence[Fraction], terms: Sequence[Any]) -> Any:
    """``sum(c * t)`` over the nonzero coefficients, with additions and subtractions for +-1."""
    total: Any = None
    for coefficient, term in zip(coefficients, terms):
        if coefficient == 0:
            continue
        magnitude = abs(coefficient)
        value = term if magnitude == 1 else term * float(magnitude)
        if total is None:
            total = value if coefficient > 0 else -value
        else:
            total = total + value if coefficient > 0 else total - value
    assert total is not None, "a transform row with no nonzero coefficient"
    return total


def _choose(index: Any, values: Sequence[Any]) -> Any:
    """``values[index]`` as a chain of selects: once the loop over ``index`` is unrolled, each copy keeps one."""
    chosen = values[-1]
    for position in range(len(values) - 2, -1, -1):
        chosen = select(index == position, values[position], chosen)
    return chosen


def _transform_1d(matrix: Sequence[Sequence[Fraction]], row: Any, terms: Sequence[Any]) -> Any:
    """``(matrix @ terms)[row]`` for an index expression ``row``: every transform is two such stages (rows, then
    columns), so each stage's expression holds one row of the matrix per value of ``row`` and the unrolled copies
    stay small."""
    return _choose(row, [_combination(coefficients, terms) for coefficients in matrix])


def winograd_kernel(kernel: Tensor, tile: int, ic_block: int, oc_block: int, name: str = "winograd_kernel") -> Tensor:
    """The kernel transform ``U = G g G^T`` of an ``OIHW`` 3x3 ``kernel[K, C, 3, 3]``, in the layout that
    ``conv2d_winograd_nchwc`` reads: ``U[e, u, k // oc, c // ic, c % ic, k % oc]``, ``a x a`` positions first."""
    op = "winograd_kernel"
    check_tensor(op, "kernel", kernel, 4)
    _, g, _ = winograd_matrices(tile)
    out_channels, channels = static_dim(op, "kernel", kernel, 0), static_dim(op, "kernel", kernel, 1)
    if (static_dim(op, "kernel", kernel, 2), static_dim(op, "kernel", kernel, 3)) != (3, 3):
        raise OpError(f"{op}: a 3x3 kernel expected, got shape {tuple(kernel.shape)}")
    for blocked, block, what in ((channels, ic_block, "input"), (out_channels, oc_block, "output")):
        if not isinstance(block, int) or block < 1 or blocked % block:
            raise OpError(f"{op}: {blocked} {what} channels do not split into blocks of {block!r}")
    size = tile + 2
    blocks = (out_channels // oc_block, channels // ic_block, ic_block, oc_block)
    attrs = {OP_KIND: OpKind.WINOGRAD_KERNEL, "tile": tile}

    def rows(e: Var, k: Var, c: Var, x: Var, i: Var, o: Var) -> Expr:
        return _transform_1d(g, e, [kernel[k * oc_block + o, c * ic_block + i, y, x] for y in range(3)])

    # the rows of every kernel first (G g), then the columns ((G g) G^T): two small expressions
    combined = te.compute((size, blocks[0], blocks[1], 3, *blocks[2:]), rows, name=f"{name}_rows",
                          tag=Tag.INJECTIVE, attrs={**attrs, PART: "rows"})
    return te.compute((size, size, *blocks),
                      lambda e, u, k, c, i, o: _transform_1d(g, u, [combined[e, k, c, x, i, o] for x in range(3)]),
                      name=name, tag=Tag.INJECTIVE, attrs={**attrs, PART: "result"})


def conv2d_winograd_nchwc(data: Tensor, kernel: Tensor, padding: int | Sequence[int] = 1, tile: int = 4,
                          name: str = "conv2d_winograd_nchwc") -> Tensor:
    """3x3, stride-1 convolution of blocked ``data[N, C // ic, H, W, ic]`` (``NCHW{ic}c``) by a kernel transformed
    by ``winograd_kernel(kernel, tile, ic, oc)`` (``[a, a, K // oc, C // ic, ic, oc]``) -> ``[N, K // oc, OH, OW,
    oc]`` (``NCHW{oc}c``): the same result as ``conv2d_nchwc`` up to rounding (see the module docstring)."""
    op = "conv2d_winograd_nchwc"
    check_tensor(op, "data", data, 5)
    check_tensor(op, "kernel", kernel, 6)
    bt, _, at = winograd_matrices(tile)
    _, pads, _ = _spatial_args(op, 1, padding, 1)
    size = tile + 2
    batch, chunks = data.shape[0], static_dim(op, "data", data, 1)  # the batch may be symbolic
    height, width, ic_block = (static_dim(op, "data", data, axis) for axis in (2, 3, 4))
    got = tuple(static_dim(op, "kernel", kernel, axis) for axis in range(6))
    if got[:2] != (size, size) or got[3:5] != (chunks, ic_block):
        raise OpError(f"{op}: a kernel [{size}, {size}, K // oc, {chunks}, {ic_block}, oc] transformed for tile "
                      f"{tile} expected, got shape {got}")
    k_chunks, oc_block = got[2], got[5]
    out_h, out_w = height + pads[0] + pads[2] - 2, width + pads[1] + pads[3] - 2
    if out_h <= 0 or out_w <= 0:
        raise OpError(f"{op}: output plane would be {out_h}x{out_w}: the 3x3 kernel is larger than the padded input")
    tiles_h, tiles_w = -(-out_h // tile), -(-out_w // tile)
    # zeros up to whole tiles: the last tile's patch reaches past the padded input when the output is not a multiple
    extra_h, extra_w = tiles_h * tile - out_h, tiles_w * tile - out_w
    # a stage of its own even without padding (a copy), for the schedule to place
    padded = pad(data, (0, 0, pads[0], pads[1], 0), (0, 0, pads[2] + extra_h, pads[3] + extra_w, 0), 0.0,
                 name="pad_data")

    def input_rows(e: Var, c: Var, t: Var, tx: Var, x: Var, i: Var) -> Expr:
        n, ty = t // tiles_h, t % tiles_h
        return _transform_1d(bt, e, [padded[n, c, ty * tile + y, tx * tile + x, i] for y in range(size)])

    def input_columns(e: Var, u: Var, c: Var, t: Var, tx: Var, i: Var) -> Expr:
        return _transform_1d(bt, u, [rows_in[e, c, t, tx, x, i] for x in range(size)])

    attrs = {"tile": tile}
    rows_in = te.compute((size, chunks, batch * tiles_h, tiles_w, size, ic_block), input_rows,
                         name=f"{name}_input_rows", tag=Tag.INJECTIVE,
                         attrs={OP_KIND: OpKind.WINOGRAD_INPUT, PART: "rows", **attrs})
    v = te.compute((size, size, chunks, batch * tiles_h, tiles_w, ic_block), input_columns, name=f"{name}_input",
                   tag=Tag.INJECTIVE, attrs={OP_KIND: OpKind.WINOGRAD_INPUT, PART: "columns", **attrs})
    rc = te.reduce_axis((0, chunks), name="rc")
    ri = te.reduce_axis((0, ic_block), name="ri")
    product = te.compute(
        (size, size, k_chunks, batch * tiles_h, tiles_w, oc_block),
        lambda e, u, k, t, tx, o: te.sum(v[e, u, rc, t, tx, ri] * kernel[e, u, k, rc, ri, o], axis=[rc, ri]),
        name=f"{name}_product", attrs={OP_KIND: OpKind.CONV2D_WINOGRAD, **attrs},
    )
    rows_out = te.compute(
        (tile, size, k_chunks, batch * tiles_h, tiles_w, oc_block),
        lambda r, u, k, t, tx, o: _transform_1d(at, r, [product[e, u, k, t, tx, o] for e in range(size)]),
        name=f"{name}_output_rows", tag=Tag.INJECTIVE, attrs={OP_KIND: OpKind.WINOGRAD_OUTPUT, PART: "rows", **attrs},
    )

    def transform_output(n: Var, k: Var, y: Var, x: Var, o: Var) -> Expr:
        t, tx = n * tiles_h + y // tile, x // tile
        return _transform_1d(at, x % tile, [rows_out[y % tile, u, k, t, tx, o] for u in range(size)])

    return te.compute((batch, k_chunks, out_h, out_w, oc_block), transform_output, name=name, tag=Tag.INJECTIVE,
                      attrs={OP_KIND: OpKind.WINOGRAD_OUTPUT, PART: "result", "padding": pads, **attrs})
