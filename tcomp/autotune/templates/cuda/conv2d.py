"""``conv2d_nchw_cuda(N, CI, H, W, CO, KH, KW, stride, padding)``: the default CUDA convolution, tunable.

It tunes ``schedule_conv2d_nchw`` of ``tcomp.ops.cuda`` and falls back to the knobs the graph compiler uses
(``conv_knobs``), so tuning starts from the untuned kernel. ``tile_f`` splits the output channels ``[blocks, threads
along z, channels per thread]`` (tiles that divide ``CO``); ``tile_y`` / ``tile_x`` are the output rows / columns of
a block (one per thread), ``tile_rc`` the input channels per shared-memory chunk, each ``[blocks, tile]`` with the
tile a divisor of the extent or a power of two below it (a partial last tile is guarded). At most 8 x 8 x 16
threads. A config whose block needs more shared memory, threads or registers than the target has is rejected
before it is built (an instantiation error); the fallback always fits. A target whose precision asks for
tensor cores (``cuda -precision=fp16`` ...) tunes the GEMM tile kernel instead (``tiles.conv2d_tile``), as the graph
compiler then computes the convolution.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tcomp import te
from tcomp.autotune.space import Config, SplitEntity, SplitPolicy
from tcomp.autotune.template import template
from tcomp.autotune.templates.cuda.knobs import static_shape, tile_sizes
from tcomp.autotune.templates.cuda.tiles import conv2d_tile
from tcomp.ops.conv import conv2d_nchw
from tcomp.ops.cuda.conv2d import Conv2dKnobs, ConvGeometry, schedule_conv2d_nchw
from tcomp.ops.cuda.dispatch import conv_knobs
from tcomp.ops.cuda.gemm_choice import precision_for
from tcomp.ops.cuda.limits import check_fits
from tcomp.ops.testing import conv2d_nchw_python
from tcomp.schedule import Schedule, create_schedule
from tcomp.target import TargetKind
from tcomp.te.tensor import Tensor


def _channel_splits(channels: int, default: Conv2dKnobs, max_threads: int = 8,
                    max_per_thread: int = 8) -> list[list[int]]:
    """``[-1, threads, per_thread]`` with ``threads * per_thread`` dividing ``channels``, and the default's."""
    splits = {(default.threads[0], default.thread_f)}
    for per_thread in range(1, min(max_per_thread, channels) + 1):
        if channels % per_thread:
            continue
        for threads in range(1, min(max_threads, channels // per_thread) + 1):
            if (channels // per_thread) % threads == 0:
                splits.add((threads, per_thread))
    return [[-1, threads, per_thread] for threads, per_thread in sorted(splits)]


def _tile_split(cfg: Config, name: str, extent: int, limit: int, default: int) -> None:
    """A ``[blocks, tile]`` split knob over ``tile_sizes``."""
    candidates = [[-1, tile] for tile in tile_sizes(extent, limit, default)]
    cfg.define_split(name, extent, 2, SplitPolicy.CANDIDATES, candidates=candidates, fallback=[-1, default])


def _split_sizes(cfg: Config, name: str) -> tuple[int, ...]:
    entity = cfg[name]
    assert isinstance(entity, SplitEntity), f"knob {name} is not a split"
    return entity.size


def conv2d_knobs_of(cfg: Config) -> Conv2dKnobs:
    """The ``Conv2dKnobs`` that a config of ``conv2d_nchw_cuda`` chooses (a space: its fallback)."""
    _, threads_f, thread_f = _split_sizes(cfg, "tile_f")
    return Conv2dKnobs(tile_f=threads_f * thread_f, thread_f=thread_f, tile_y=_split_sizes(cfg, "tile_y")[1],
                       tile_x=_split_sizes(cfg, "tile_x")[1], tile_rc=_split_sizes(cfg, "tile_rc")[1])


def conv2d_nchw_reference(inputs: Sequence[np.ndarray], N: int, CI: int, H: int, W: int, CO: int, KH: int, KW: int,
                          stride: int = 1, padding: int = 0, dtype: str = "float32") -> list[np.ndarray]:
    data, kernel = inputs
    return [conv2d_nchw_python(data, kernel, stride, padding)]


@template("conv2d_nchw_cuda", reference=conv2d_nchw_reference, kind=TargetKind.CUDA)
def conv2d_nchw_cuda(cfg: Config, N: int, CI: int, H: int, W: int, CO: int, KH: int, KW: int, stride: int = 1,
                     padding: int = 0, dtype: str = "float32") -> tuple[Schedule, list[Tensor]]:
    """``conv2d_nchw`` (``groups=1``) with the shared-memory CUDA schedule (see the module docstring)."""
    precision = precision_for(dtype, cfg.target)
    if precision.uses_tensor_cores:
        return conv2d_tile(cfg, precision, N, CI, H, W, CO, KH, KW, stride, padding, dtype)
    data = te.placeholder((N, CI, H, W), name="data", dtype=dtype)
    kernel = te.placeholder((CO, CI, KH, KW), name="kernel", dtype=dtype)
    out = conv2d_nchw(data, kernel, stride, padding)
    _, _, out_h, out_w = static_shape(out)
    base = conv_knobs(out, cfg.target)
    cfg.define_split("tile_f", CO, 3, SplitPolicy.CANDIDATES, candidates=_channel_splits(CO, base),
                     fallback=[-1, base.threads[0], base.thread_f])
    _tile_split(cfg, "tile_y", out_h, 8, base.tile_y)
    _tile_split(cfg, "tile_x", out_w, 16, base.tile_x)
    _tile_split(cfg, "tile_rc", CI, 16, base.tile_rc)
    cfg.add_flop(2.0 * N * CO * out_h * out_w * CI * KH * KW)
    knobs = conv2d_knobs_of(cfg)
    check_fits(ConvGeometry.of(out).resources(knobs), cfg.target, f"conv2d_nchw_cuda config {knobs}")
    s = create_schedule(out)
    schedule_conv2d_nchw(s, out, knobs)
    return s, [data, kernel, out]
