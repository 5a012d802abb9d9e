"""CUDA conv2d (NCHW, ``ops.conv2d_nchw`` with ``groups=1``): output tiles per block, shared-memory input and weight
tiles, several output channels per thread in registers.

A block computes ``tile_f`` output channels of a ``tile_y x tile_x`` patch of one image; its threads are laid out
``(tile_f / thread_f) x tile_y x tile_x`` along ``threadIdx.z, y, x``, each computing ``thread_f`` channels of one
output pixel (``conv.local``). The input channels are reduced in chunks of ``tile_rc``: per chunk the block copies
the input patch it needs (with the halo of the kernel window) and the weights of its channels into shared memory,
cooperatively, then each thread accumulates over ``rc, ry, rx`` from shared memory::

    for (n, f.block) in blockIdx.z, y.block in blockIdx.y, x.block in blockIdx.x,
        f.thread in threadIdx.z, y.thread in threadIdx.y, x.thread in threadIdx.x:
      conv.local[0 : thread_f] = 0
      for rc.outer:
        data.shared <- data[n, rc chunk, input rows and columns of the patch]     # __syncthreads() around
        kernel.shared <- kernel[the block's channels, rc chunk, :, :]
        for rc.inner, ry, rx, f.inner (unrolled): conv.local[f.inner] += data.shared[...] * kernel.shared[...]
      conv <- conv.local

Padding is computed while copying the input patch to shared memory (the padding stage is inlined into the copy).
Knobs are plain values (``Conv2dKnobs``) for a tuner.
"""

from __future__ import annotations

from dataclasses import dataclass

from tcomp import te
from tcomp.ir import dtype as dt
from tcomp.ir.expr import const_int_value
from tcomp.ops.conv import conv2d_nchw
from tcomp.ops.cuda.common import cooperative_fetch
from tcomp.ops.cuda.gemm_choice import ConvTile, conv_problem, default_conv_tile, precision_for
from tcomp.ops.cuda.gemm_intrin import schedule_conv2d_tile
from tcomp.ops.cuda.limits import REGISTER_OVERHEAD, BlockResources
from tcomp.schedule import Schedule, create_schedule
from tcomp.target import Precision, Target, as_target
from tcomp.te.tensor import ComputeOp, Tensor

# The input-channel loop of a chunk is unrolled with the kernel window when chunk x window is at most this.
MAX_UNROLLED_STEPS = 256


@dataclass(frozen=True)
class Conv2dKnobs:
    tile_f: int = 16
    thread_f: int = 4
    tile_y: int = 4
    tile_x: int = 8
    tile_rc: int = 4

    @property
    def threads(self) -> tuple[int, int, int]:
        return self.tile_f // self.thread_f, self.tile_y, self.tile_x

    def check(self) -> None:
        if self.tile_f % self.thread_f:
            raise ValueError(f"conv2d knobs {self}: thread_f must divide tile_f")


@dataclass(frozen=True)
class ConvGeometry:
    """What, besides the knobs, decides a conv block's resources: the window, stride, dilation and element size."""

    kernel: tuple[int, int]
    stride: tuple[int, int] = (1, 1)
    dilation: tuple[int, int] = (1, 1)
    element_bytes: int = 4

    @staticmethod
    def of(conv: Tensor) -> ConvGeometry:
        """The geometry of a ``conv2d_nchw`` output."""
        kernel = conv.op.input_tensors()[1]
        kh, kw = (const_int_value(d) or 1 for d in kernel.shape[2:])
        attrs = conv.op.attrs
        stride = tuple(attrs.get("stride", (1, 1)))
        dilation = tuple(attrs.get("dilation", (1, 1)))
        return ConvGeometry((kh, kw), (stride[0], stride[1]), (dilation[0], dilation[1]),
                            dt.storage_bytes(conv.op.input_tensors()[0].dtype))

    def resources(self, knobs: Conv2dKnobs) -> BlockResources:
        """The block ``schedule_conv2d_nchw`` launches with ``knobs``: its threads, the shared input patch (with the
        window's halo) and weight tile of one chunk of input channels, and ``thread_f`` accumulators a thread."""
        (kh, kw), (sh, sw), (dh, dw) = self.kernel, self.stride, self.dilation
        rows = (knobs.tile_y - 1) * sh + (kh - 1) * dh + 1
        columns = (knobs.tile_x - 1) * sw + (kw - 1) * dw + 1
        elements = knobs.tile_rc * rows * columns + knobs.tile_f * knobs.tile_rc * kh * kw
        threads_z, threads_y, threads_x = knobs.threads
        return BlockResources((threads_x, threads_y, threads_z), elements * self.element_bytes,
                              REGISTER_OVERHEAD + 2 * knobs.thread_f)


def schedule_conv2d_nchw(s: Schedule, conv: Tensor, knobs: Conv2dKnobs) -> None:
    """Schedule the output of ``ops.conv2d_nchw`` (``groups=1``) as described in the module docstring."""
    knobs.check()
    for stage in list(s.stages):
        if stage.op is not conv.op and isinstance(stage.op, ComputeOp) and not stage.is_reduction:
            stage.compute_inline()
    tile_conv2d_nchw(s, conv, knobs)


def tile_conv2d_nchw(s: Schedule, conv: Tensor, knobs: Conv2dKnobs, out: Tensor | None = None) -> None:
    """The tiling of ``schedule_conv2d_nchw`` alone (shared tiles, thread binding, register accumulation), for a
    convolution whose producers were already inlined or are inputs; ``conv`` may be an intermediate of a group.
    With ``out`` (an elementwise function of ``conv`` at the same indices, ``epilogue.same_index_epilogue``): the
    convolution stays in registers and ``out``'s tiles are the ones computed, bias and activation included."""
    padded, kernel = conv.op.input_tensors()  # the padded input (a stage, inlined into its copy) or data itself
    local = s.cache_write(conv, "local")
    if out is not None:
        s[conv].compute_inline()
    data_shared = s.cache_read(padded, "shared", [local])
    kernel_shared = s.cache_read(kernel, "shared", [local])
    tz, ty, tx = knobs.threads
    stage = s[out] if out is not None else s[conv]
    n, f, y, x = stage.op.axis
    fb, fi = stage.split(f, factor=knobs.tile_f)
    ft, fi = stage.split(fi, nparts=tz)
    yb, yt = stage.split(y, factor=knobs.tile_y)
    xb, xt = stage.split(x, factor=knobs.tile_x)
    stage.reorder(n, fb, yb, xb, ft, yt, xt, fi)
    block_z = stage.fuse(n, fb)
    for axis, tag in ((block_z, "blockIdx.z"), (yb, "blockIdx.y"), (xb, "blockIdx.x"), (ft, "threadIdx.z"),
                      (yt, "threadIdx.y"), (xt, "threadIdx.x")):
        stage.bind(axis, te.thread_axis(tag))
    s[local].compute_at(stage, xt)
    _, lf, _, _ = s[local].op.axis
    rc, ry, rx = s[local].op.reduce_axis
    rco, rci = s[local].split(rc, factor=knobs.tile_rc)
    s[local].reorder(rco, rci, ry, rx, lf)
    window = 1
    for axis in (ry, rx):
        extent = const_int_value(axis.dom.extent) if axis.dom is not None else None
        window *= extent if extent is not None else MAX_UNROLLED_STEPS
    unrolled = (rci, ry, rx, lf) if knobs.tile_rc * window <= MAX_UNROLLED_STEPS else (ry, rx, lf)
    for axis in unrolled:  # one chunk's multiply-adds as straight-line code (within a size limit)
        s[local].unroll(axis)
    s[data_shared].compute_at(s[local], rco)
    s[kernel_shared].compute_at(s[local], rco)
    layout = [("threadIdx.z", tz), ("threadIdx.y", ty), ("threadIdx.x", tx)]
    cooperative_fetch(s[data_shared], layout)
    cooperative_fetch(s[kernel_shared], layout)


def conv2d_cuda(
    batch: int, in_channels: int, height: int, width: int, out_channels: int, kernel_size: int,
    stride: int = 1, padding: int = 0, knobs: Conv2dKnobs | None = None, dtype: str = "float32", *,
    precision: Precision | str | None = None, tile: ConvTile | None = None, target: Target | str | None = None,
) -> tuple[Schedule, list[Tensor]]:
    """``conv2d_nchw`` with the CUDA schedule; returns ``(schedule, [data, kernel, out])``. With a tensor-core
    ``precision`` (``"tf32"``, ``"fp16"``, ``"bf16"``; default: the target's) or a ``tile``: the GEMM tile kernel
    (``gemm_intrin.schedule_conv2d_tile``, the default tile of the shape unless given)."""
    resolved = as_target(target) if target is not None else None
    chosen = Precision.parse(precision) if precision is not None else precision_for(dtype, resolved)
    data = te.placeholder((batch, in_channels, height, width), name="data", dtype=dtype)
    kernel = te.placeholder((out_channels, in_channels, kernel_size, kernel_size), name="kernel", dtype=dtype)
    out = conv2d_nchw(data, kernel, stride, padding, out_dtype="float32")
    s = create_schedule(out)
    if tile is None and not chosen.uses_tensor_cores:
        schedule_conv2d_nchw(s, out, knobs or Conv2dKnobs())
        return s, [data, kernel, out]
    _, _, out_h, out_w = (int(const_int_value(d) or 0) for d in out.shape)
    if tile is None:
        problem = conv_problem(in_channels, height + 2 * padding, width + 2 * padding, out_channels,
                               (kernel_size, kernel_size), (out_h, out_w), (stride, stride), (1, 1), 8, dtype, chosen)
        tile = default_conv_tile(problem, batch, resolved)
    schedule_conv2d_tile(s, out, tile.tile, tile.tile_y, tile.tile_x, chosen, resolved)
    return s, [data, kernel, out]
