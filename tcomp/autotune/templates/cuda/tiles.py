"""Knobs of the GEMM tile kernel shared by the CUDA templates: a convolution's tile when the target asks for tensor
cores (``conv2d_nchw_cuda`` hands over to ``conv2d_tile``).

``conv2d_tile`` tunes ``gemm_intrin.schedule_conv2d_tile``: knob ``tile`` is one of ``gemm_choice.
candidate_conv_tiles`` (output channels x a patch of pixels per block, warps, depth, stages, layout; every one fits
the target), falling back to ``gemm_choice.default_conv_tile``, the tile the graph compiler uses untuned.
"""

from __future__ import annotations

from tcomp import te
from tcomp.autotune.space import Config
from tcomp.ops.conv import conv2d_nchw, conv_output_size
from tcomp.ops.cuda.gemm_choice import ConvTile, candidate_conv_tiles, conv_problem, default_conv_tile
from tcomp.ops.cuda.gemm_intrin import schedule_conv2d_tile
from tcomp.schedule import Schedule, create_schedule
from tcomp.target import Precision
from tcomp.te.tensor import Tensor


def conv2d_tile(cfg: Config, precision: Precision, N: int, CI: int, H: int, W: int, CO: int, KH: int, KW: int,
                stride: int, padding: int, dtype: str) -> tuple[Schedule, list[Tensor]]:
    """``conv2d_nchw`` (one group) on the GEMM tile kernel in ``precision`` (module docstring)."""
    out_h, out_w = conv_output_size(H, KH, stride, 2 * padding), conv_output_size(W, KW, stride, 2 * padding)
    problem = conv_problem(CI, H + 2 * padding, W + 2 * padding, CO, (KH, KW), (out_h, out_w), (stride, stride),
                           (1, 1), 8, dtype, precision)
    default = default_conv_tile(problem, N, cfg.target)
    names = [t.name for t in candidate_conv_tiles(problem, cfg.target)]
    if default.name not in names:
        names.append(default.name)
    chosen = ConvTile.parse(str(cfg.define_knob("tile", names, fallback=default.name).val))
    data = te.placeholder((N, CI, H, W), name="data", dtype=dtype)
    kernel = te.placeholder((CO, CI, KH, KW), name="kernel", dtype=dtype)
    out = conv2d_nchw(data, kernel, stride, padding, out_dtype="float32")
    cfg.add_flop(2.0 * N * CO * out_h * out_w * CI * KH * KW)
    s = create_schedule(out)
    schedule_conv2d_tile(s, out, chosen.tile, chosen.tile_y, chosen.tile_x, precision, cfg.target)
    return s, [data, kernel, out]
