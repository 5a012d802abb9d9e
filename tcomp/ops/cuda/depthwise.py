"""CUDA depthwise convolution (NCHW, ``ops.depthwise_conv2d_nchw``): an output tile per block, its input patch (with
the window's halo) and the channels' weights in shared memory, a few consecutive outputs per thread.

A block computes ``tile_c`` channels of a ``tile_y x tile_x`` patch of one image; its threads are laid out
``tile_c x tile_y x (tile_x / thread_x)`` along ``threadIdx.z, y, x``, each computing ``thread_x`` neighbouring
outputs of one row (``conv.local``)::

    for (n, c.block) in blockIdx.z, y.block in blockIdx.y, x.block in blockIdx.x,
        c.thread in threadIdx.z, y.thread in threadIdx.y, x.thread in threadIdx.x:
      conv.local[0 : thread_x] = 0
      data.shared <- the patch: tile_c channels x ((tile_y - 1) * sy + (KH - 1) * dy + 1) rows x (...) columns
      kernel.shared <- the tile_c channels' KH x KW weights                            # __syncthreads() after
      for ry, rx, x.inner (unrolled): conv.local[x.inner] += data.shared[...] * kernel.shared[...]
      out <- epilogue(conv.local)

Every input element of the patch is read from global memory once per block and then ``KH * KW / stride^2`` times
from shared memory (49 times for ConvNeXt's 7x7 windows), instead of ``KH * KW`` times from global memory by a
thread per output. Padding is computed while copying the patch (the padding stage is inlined into the copy). With
``out`` (an elementwise function of the convolution at the same indices) the result is written through it.
``depthwise_knobs`` sizes the tiles to the image and the target.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace

from tcomp import te
from tcomp.ir import dtype as dt
from tcomp.ir.expr import const_int_value
from tcomp.ops.cuda.common import cooperative_fetch
from tcomp.ops.cuda.limits import REGISTER_OVERHEAD, BlockResources, first_fitting
from tcomp.schedule.schedule import Schedule
from tcomp.target import Target
from tcomp.te.tensor import Tensor

MAX_UNROLLED_STEPS = 256  # window x outputs per thread unrolled as straight-line code up to this many steps
MIN_BLOCKS = 132  # about one block per multiprocessor of an H100 or H200: fewer channels per block below it


@dataclass(frozen=True)
class DepthwiseKnobs:
    tile_c: int = 1
    tile_y: int = 8
    tile_x: int = 32
    thread_x: int = 4

    @property
    def threads(self) -> tuple[int, int, int]:
        """Threads along x, y, z."""
        return self.tile_x // self.thread_x, self.tile_y, self.tile_c

    def check(self) -> None:
        if min(self.tile_c, self.tile_y, self.tile_x, self.thread_x) < 1 or self.tile_x % self.thread_x:
            raise ValueError(f"depthwise knobs {self}: positive tiles, thread_x dividing tile_x")


def _geometry(conv: Tensor) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
    kernel = conv.op.input_tensors()[1]
    kh, kw = (int(const_int_value(d) or 1) for d in kernel.shape[2:])
    stride, dilation = conv.op.attrs.get("stride", (1, 1)), conv.op.attrs.get("dilation", (1, 1))
    return (kh, kw), (stride[0], stride[1]), (dilation[0], dilation[1])


def depthwise_resources(conv: Tensor, knobs: DepthwiseKnobs) -> BlockResources:
    """The block ``schedule_depthwise_conv2d_nchw`` launches: its threads, the shared patch and weights, and a
    thread's ``thread_x`` accumulators."""
    (kh, kw), (sh, sw), (dh, dw) = _geometry(conv)
    rows = (knobs.tile_y - 1) * sh + (kh - 1) * dh + 1
    columns = (knobs.tile_x - 1) * sw + (kw - 1) * dw + 1
    elements = knobs.tile_c * (rows * columns + kh * kw)
    return BlockResources(knobs.threads, elements * dt.storage_bytes(conv.dtype),
                          REGISTER_OVERHEAD + 2 * knobs.thread_x)


def _power_of_two_cover(extent: int, limit: int) -> int:
    """The smallest power of two covering ``extent``, at most ``limit``."""
    return min(limit, 1 << max(0, (max(extent, 1) - 1).bit_length()))


def depthwise_knobs(conv: Tensor, target: Target | None = None) -> DepthwiseKnobs:
    """Tiles for ``conv``: up to 32 output columns (4 per thread) and 8 rows per block, as many channels per block
    as keep 256 threads and about 132 blocks; then smaller while the block does not fit ``target``."""
    _, channels, height, width = (int(const_int_value(d) or 1) for d in conv.shape)
    tile_x = _power_of_two_cover(width, 32)
    thread_x = min(4, max(1, tile_x // 8))
    tile_y = _power_of_two_cover(height, 8)
    blocks = -(-height // tile_y) * -(-width // tile_x)
    tile_c = 1
    while (channels % (2 * tile_c) == 0 and 2 * tile_c * tile_y * tile_x // thread_x <= 256
           and blocks * channels // (2 * tile_c) >= MIN_BLOCKS):
        tile_c *= 2
    first = DepthwiseKnobs(tile_c, tile_y, tile_x, thread_x)

    def candidates() -> Iterator[DepthwiseKnobs]:
        knobs = first
        while True:
            yield knobs
            if knobs.tile_c > 1:
                knobs = replace(knobs, tile_c=knobs.tile_c // 2)
            elif knobs.tile_x > knobs.thread_x and knobs.tile_x >= knobs.tile_y:
                knobs = replace(knobs, tile_x=knobs.tile_x // 2)
            elif knobs.tile_y > 1:
                knobs = replace(knobs, tile_y=knobs.tile_y // 2)
            elif knobs.thread_x > 1:
                knobs = replace(knobs, tile_x=knobs.tile_x // 2, thread_x=knobs.thread_x // 2)
            else:
                return

    return first_fitting(candidates(), lambda k: depthwise_resources(conv, k), target, f"depthwise {conv.name}")


def schedule_depthwise_conv2d_nchw(s: Schedule, conv: Tensor, knobs: DepthwiseKnobs,
                                   out: Tensor | None = None) -> None:
    """Tile ``conv`` (whose padding stage, if any, is inlined or will be) as the module docstring says."""
    knobs.check()
    padded, kernel = conv.op.input_tensors()
    if padded.op in {st.op for st in s.stages} and not s[padded].is_placeholder:
        s[padded].compute_inline()
    local = s.cache_write(conv, "local")
    if out is not None:
        s[conv].compute_inline()
    data_shared = s.cache_read(padded, "shared", [local])
    kernel_shared = s.cache_read(kernel, "shared", [local])
    stage = s[out] if out is not None else s[conv]
    n, c, y, x = stage.op.axis
    cb, ct = stage.split(c, factor=knobs.tile_c)
    yb, yt = stage.split(y, factor=knobs.tile_y)
    xb, xi = stage.split(x, factor=knobs.tile_x)
    xt, xv = stage.split(xi, factor=knobs.thread_x)
    stage.reorder(n, cb, yb, xb, ct, yt, xt, xv)
    for axis, tag in ((stage.fuse(n, cb), "blockIdx.z"), (yb, "blockIdx.y"), (xb, "blockIdx.x"),
                      (ct, "threadIdx.z"), (yt, "threadIdx.y"), (xt, "threadIdx.x")):
        stage.bind(axis, te.thread_axis(tag))
    stage.unroll(xv)
    s[local].compute_at(stage, xt)
    *_, lx = s[local].op.axis
    ry, rx = s[local].op.reduce_axis
    (kh, kw), _, _ = _geometry(conv)
    ryo, ryi = s[local].split(ry, factor=kh)  # one step: the patch is copied once, outside the window loops
    s[local].reorder(ryo, ryi, rx, lx)
    if kh * kw * knobs.thread_x <= MAX_UNROLLED_STEPS:
        for axis in (ryi, rx, lx):
            s[local].unroll(axis)
    s[data_shared].compute_at(s[local], ryo)
    s[kernel_shared].compute_at(s[local], ryo)
    threads_x, threads_y, threads_z = knobs.threads
    layout = [("threadIdx.z", threads_z), ("threadIdx.y", threads_y), ("threadIdx.x", threads_x)]
    cooperative_fetch(s[data_shared], layout)
    cooperative_fetch(s[kernel_shared], layout)
