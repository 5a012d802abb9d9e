"""Which GEMM tiles to try and which to use untuned: the candidates of a problem, and a default picked from them.

``candidate_tiles`` lists every tile (block shape, warps, lanes, pipeline depth, shared-memory layout) that
computes the problem within the target's limits: block tiles of 16 to 256 rows and columns, warp tiles of
16 x 8 multiples on tensor cores, float32 register tiles of 4 or 8 rows and columns per lane, 1 to 4 stages.
``tile_name`` / ``parse_tile_name`` write a tile's shape as the string a tuning record keeps
(``128x128x8_w4x2_l4_s4_pad``).

``default_tile`` picks, without measuring, the first tile of a preference list that fits and still gives the
GPU at least one block per multiprocessor (132 on an H100/H200), from these first principles:

- float32 (FFMA): 128x128 blocks of 8 warps (32 x 64 each, lanes 4 x 8, 8 x 8 results per lane), 8 deep,
  4 stages, both tiles stored k-outermost (lanes read 4 rows or columns as one ``float4`` per step: 4 shared loads
  per 64 multiply-adds) and 2 blocks per multiprocessor (registers capped at 128: ptxas fits it without spills,
  16 warps resident, 2 x 33 KB of shared memory).
- float16 operands (``mma.sync`` m16n8k16 from ``ldmatrix``): warps of 64 x 64 (32 mma per 16-deep step for 8
  ``ldmatrix.x4``), 32 deep, 3 stages swizzled: 128x256 blocks of 8 warps where the target allows 72 KB of
  (dynamic) shared memory (one block of 256 threads at about 235 registers per multiprocessor; half the traffic
  per multiply-add of a 128x128 block along B), else 128x128 blocks of 4 warps (48 KB, 2 blocks per
  multiprocessor).
- float32 operands rounded for the tensor cores: 128x128x16 blocks of 4 warps, 3 padded stages (62 KB) where
  allowed, else 2 (41 KB).

Smaller problems step down to 128x64, 64x64, 64x32, 32x32 and 16-row blocks.

Convolutions (implicit GEMM: output channels x a ``tile_y x tile_x`` patch of pixels) take ``ConvTile`` values: block
tiles of 16 to 128 channels and 32 to 128 pixels in patches 8 (4 for narrow images) columns wide, 16-32 deep
slices; the default steps down from 64 channels x 8 x 8 pixels as the number of blocks requires.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace

from tcomp.arith.factors import ceil_power_of_two
from tcomp.ops.cuda.gemm_tile import GemmError, GemmProblem, GemmTile, SmemLayout, check_tile
from tcomp.target import Precision, Target

MULTIPROCESSORS = 132


def tile_name(tile: GemmTile) -> str:
    """The tile's shape knobs as one string (``k_outer``, ``min_blocks`` and ``vector`` are not part of it)."""
    return (f"{tile.block_m}x{tile.block_n}x{tile.block_k}_w{tile.warps_m}x{tile.warps_n}_l{tile.lanes_m}_"
            f"s{tile.stages}_{tile.layout}")


def parse_tile_name(name: str, **extra: object) -> GemmTile:
    """The tile ``tile_name`` wrote (with ``extra`` knobs such as ``k_outer``)."""
    try:
        block, warps, lanes, stages, layout = name.split("_")
        bm, bn, bk = (int(v) for v in block.split("x"))
        wm, wn = (int(v) for v in warps[1:].split("x"))
        return GemmTile(bm, bn, bk, wm, wn, stages=int(stages[1:]), lanes_m=int(lanes[1:]),
                        layout=SmemLayout(layout), **extra)  # type: ignore[arg-type]
    except (ValueError, TypeError) as exc:
        raise GemmError(f"not a GEMM tile name: {name!r}") from exc


def fits(tile: GemmTile, problem: GemmProblem, target: Target | None) -> bool:
    try:
        check_tile(tile, problem, target)
    except GemmError:
        return False
    return True


def _block_shapes(problem: GemmProblem) -> list[tuple[int, int, int]]:
    depths = (16, 32, 64) if problem.a_dtype == "float16" else (8, 16, 32)
    sizes = (16, 32, 64, 128, 256)
    return [(m, n, k) for m, n, k in itertools.product(sizes, sizes, depths)]


def candidate_tiles(problem: GemmProblem, target: Target | None = None, k_outer: bool = False,
                    min_blocks: int = 1) -> list[GemmTile]:
    """Every tile that fits (module docstring), smallest blocks first: 2 to 16 warps, blocks no bigger than the
    problem needs (rounded up to a power of two), one stage only when one slice covers the reduction."""
    tensor_cores = problem.precision.uses_tensor_cores
    rows = max(16, ceil_power_of_two(problem.m_extent))
    columns = max(16, ceil_power_of_two(problem.y_extent * problem.x_extent))
    found = []
    for bm, bn, bk in _block_shapes(problem):
        if bm > rows or bn > columns or (bk > 16 and bk >= 2 * problem.K):
            continue
        for wm, wn in itertools.product((1, 2, 4), (1, 2, 4)):
            if wm * wn < 2:
                continue
            warp_m, warp_n = bm // wm, bn // wn
            if tensor_cores and not (16 <= warp_m <= 64 and 16 <= warp_n <= 64):
                continue
            for lanes_m in ((4,) if tensor_cores else (4, 8)):
                thread = (warp_m // lanes_m, warp_n // (32 // lanes_m))
                if not tensor_cores and not all(t in (4, 8) for t in thread):
                    continue
                stage_counts = (1, 2, 3, 4) if problem.K <= bk else (2, 3, 4)
                for stages, layout in itertools.product(stage_counts, SmemLayout):
                    tile = GemmTile(bm, bn, bk, wm, wn, stages=stages, lanes_m=lanes_m, layout=layout,
                                    k_outer=k_outer, min_blocks=min_blocks)
                    if fits(tile, problem, target):
                        found.append(tile)
    return found


def _preferences(problem: GemmProblem) -> list[GemmTile]:
    if problem.a_dtype == "float16":
        swizzle = SmemLayout.SWIZZLE
        return [GemmTile(128, 256, 32, 2, 4, stages=3, layout=swizzle),
                GemmTile(128, 128, 32, 2, 2, stages=3, layout=swizzle, min_blocks=2),
                GemmTile(64, 128, 32, 2, 2, stages=3, layout=swizzle, min_blocks=2),
                GemmTile(64, 64, 32, 2, 2, stages=3, layout=swizzle),
                GemmTile(32, 64, 32, 1, 2, stages=3, layout=swizzle),
                GemmTile(32, 32, 32, 1, 2, stages=3, layout=swizzle),
                GemmTile(16, 32, 32, 1, 2, stages=3, layout=swizzle)]
    if problem.precision.uses_tensor_cores:
        return [GemmTile(128, 128, 16, 2, 2, stages=3),
                GemmTile(128, 128, 16, 2, 2, stages=2),
                GemmTile(64, 128, 16, 2, 2, stages=2),
                GemmTile(64, 64, 16, 2, 2, stages=3),
                GemmTile(32, 64, 16, 1, 2, stages=3),
                GemmTile(32, 32, 16, 1, 2, stages=3),
                GemmTile(16, 32, 16, 1, 2, stages=3)]
    return [GemmTile(128, 128, 8, 4, 2, stages=4, lanes_m=4, k_outer=True, min_blocks=2),
            GemmTile(128, 64, 8, 4, 2, stages=4, lanes_m=8, k_outer=True, min_blocks=2),
            GemmTile(64, 64, 16, 2, 2, stages=3, lanes_m=4, k_outer=True),
            GemmTile(64, 32, 16, 2, 2, stages=3, lanes_m=8, k_outer=True),
            GemmTile(32, 32, 16, 2, 2, stages=3, lanes_m=4, k_outer=True),
            GemmTile(16, 32, 16, 1, 2, stages=3, lanes_m=4, k_outer=True)]


def default_tile(problem: GemmProblem, rows: int, columns: int, batch: int = 1,
                 target: Target | None = None) -> GemmTile:
    """The untuned tile for a problem of ``batch x rows x columns`` results (module docstring)."""
    fitting = [t for t in _preferences(problem) if fits(t, problem, target)]
    if not fitting:
        raise GemmError(f"no GEMM tile fits {problem} on {target}")
    for tile in fitting:
        blocks = batch * -(-rows // tile.block_m) * -(-columns // tile.block_n)
        if blocks >= MULTIPROCESSORS:
            return tile
    return fitting[-1]


def matmul_problem(M: int, N: int, K: int, dtype: str, precision: Precision, transpose_a: bool = False,
                   transpose_b: bool = False) -> GemmProblem:
    """The problem of ``ops.matmul`` on compact row-major operands (``a[K, M]`` / ``b[N, K]`` when transposed)."""
    a_sm, a_sk = (1, M) if transpose_a else (K, 1)
    b_sc, b_sx = (1, K) if transpose_b else (N, 1)
    return GemmProblem(precision, dtype, dtype, "float32", K, a_sm, a_sk, b_sc, 0, b_sx, N, 0, 1, M, 1, N)


def conv_problem(in_channels: int, height: int, width: int, out_channels: int, window: tuple[int, int],
                 out_size: tuple[int, int], stride: tuple[int, int], dilation: tuple[int, int], tile_x: int,
                 dtype: str, precision: Precision) -> GemmProblem:
    """The problem of ``ops.conv2d_nchw`` (one group) on a compact NCHW input of ``height x width`` (padded)."""
    kh, kw = window
    out_h, out_w = out_size
    return GemmProblem(precision, dtype, dtype, "float32", in_channels * kh * kw, in_channels * kh * kw, 1,
                       height * width, width, 1, out_h * out_w, out_w, 1, out_channels, out_h, out_w, tile_x, window,
                       stride, dilation)


def precision_for(dtype: str, target: Target | None) -> Precision:
    """float16 operands multiply on float16 tensor cores; float32 ones as the target's precision says."""
    if dtype == "float16":
        return Precision.FP16
    return target.precision if target is not None else Precision.FP32  # a precision other than fp32 is cuda's


# ---------------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ConvTile:
    """A GEMM tile over ``block_m`` output channels and a ``tile_y x tile_x`` patch (``tile.block_n`` pixels)."""

    tile: GemmTile
    tile_y: int
    tile_x: int

    @property
    def name(self) -> str:
        return f"{tile_name(self.tile)}_p{self.tile_y}x{self.tile_x}"

    @staticmethod
    def parse(name: str, **extra: object) -> ConvTile:
        shape, _, patch = name.rpartition("_p")
        try:
            tile_y, tile_x = (int(v) for v in patch.split("x"))
        except ValueError as exc:
            raise GemmError(f"not a convolution tile name: {name!r}") from exc
        return ConvTile(parse_tile_name(shape, **extra), tile_y, tile_x)


def _patch(pixels: int, out_w: int) -> tuple[int, int]:
    tile_x = 8 if out_w >= 8 else 4
    return pixels // tile_x, tile_x


def conv_problem_for(conv: ConvTile, problem: GemmProblem) -> GemmProblem:
    """``problem`` with the patch width of ``conv``."""
    return replace(problem, tile_x=conv.tile_x)


def candidate_conv_tiles(problem: GemmProblem, target: Target | None = None) -> list[ConvTile]:
    """Every convolution tile that fits (module docstring)."""
    found = []
    depths = (16, 32, 64) if problem.a_dtype == "float16" else (16, 32)
    for bm, pixels, bk in itertools.product((16, 32, 64, 128), (32, 64, 128), depths):
        tile_y, tile_x = _patch(pixels, problem.x_extent)
        for wm, wn in itertools.product((1, 2, 4), (1, 2, 4)):
            if wm * wn < 2 or not (16 <= bm // wm <= 64 and 16 <= pixels // wn <= 64):
                continue
            for stages, layout in itertools.product((2, 3, 4), SmemLayout):
                conv = ConvTile(GemmTile(bm, pixels, bk, wm, wn, stages=stages, layout=layout), tile_y, tile_x)
                if fits(conv.tile, conv_problem_for(conv, problem), target):
                    found.append(conv)
    return found


def default_conv_tile(problem: GemmProblem, batch: int, target: Target | None = None) -> ConvTile:
    """The untuned convolution tile (tensor cores): the first of 64x64, 32x64, 32x32, 16x32 (channels x pixels)
    blocks of 4 (2) warps, 16 deep, 3 stages, that gives at least one block per multiprocessor."""
    out_h, out_w, channels = problem.y_extent, problem.x_extent, problem.m_extent
    choices = []
    for bm, pixels, wm, wn in ((64, 64, 2, 2), (32, 64, 1, 2), (32, 32, 1, 2), (16, 32, 1, 2)):
        tile_y, tile_x = _patch(pixels, out_w)
        conv = ConvTile(GemmTile(bm, pixels, 32 if problem.a_dtype == "float16" else 16, wm, wn, stages=3),
                        tile_y, tile_x)
        if fits(conv.tile, conv_problem_for(conv, problem), target):
            choices.append(conv)
    if not choices:
        raise GemmError(f"no convolution tile fits {problem} on {target}")
    for conv in choices:
        blocks = batch * -(-channels // conv.tile.block_m) * -(-out_h // conv.tile_y) * -(-out_w // conv.tile_x)
        if blocks >= MULTIPROCESSORS:
            return conv
    return choices[-1]
