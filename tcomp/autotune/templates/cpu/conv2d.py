"""Tunable 2-D convolution templates for CPUs: ``conv2d_nchw``, ``depthwise_conv2d_nchw`` and ``conv2d_nchwc``.

Arguments (all ints, then the dtype): ``batch, in_channels, height, width, out_channels, kernel_h, kernel_w,
stride, padding`` (depthwise: ``batch, channels, height, width, multiplier, kernel_h, kernel_w, stride,
padding``). The NCHW templates use the computes of ``tcomp.ops`` (``conv2d_nchw``, ``depthwise_conv2d_nchw``); the
padding stage they read is inlined or computed inside the output-tile loop (knob ``pad``).

``conv2d_nchw`` loop nest (fallback order shown):

    for (n, oc.0) in parallel:
      for oh.0, ow.0:                 # pad stage here when pad = compute_at
        for rc.0:
          <order of rc.1, ry, rx, oc.1, oh.1>   # ry/rx unrolled or not (knob unroll_kernel)
            for ow.1 vectorized        # or oc.1 innermost and vectorized (knob vec)

``conv2d_nchwc`` computes in the blocked layout NCHW[x]c (channel blocks ``ic_bn`` / ``oc_bn`` are knobs) with the
layout changes inside the function (data packed by a stage, kernel packed by a stage, the output unpacked), so its
interface is NCHW like the others. A graph compiler that keeps tensors in NCHWc would drop those stages.

``conv2d_nchwc_blocked`` is the convolution as the graph compiler builds it (blocked inputs and output, arguments
``..., padding, ic_block, oc_block``), its knobs the default CPU schedule's tile (``NCHWcTile``); its records apply
to the fused kernels of a compiled model.

Every template has a numpy reference (``tcomp.ops.testing``, accumulating in float64): measured candidates are
checked against it rather than against tcomp's own naive schedule, whose lowering and code generation they share.
"""

from __future__ import annotations

import enum
import operator
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from tcomp import te
from tcomp.autotune.space import AnnotatePolicy, Config, ReorderPolicy, SplitPolicy
from tcomp.autotune.template import template
from tcomp.autotune.templates.cpu.gemm import vector_lanes
from tcomp.ir.expr import max_expr, min_expr
from tcomp.ops.conv import conv2d_nchw as conv2d_compute
from tcomp.ops.conv import conv_output_size
from tcomp.ops.conv import depthwise_conv2d_nchw as depthwise_compute
from tcomp.ops.cpu.common import CpuTarget
from tcomp.ops.cpu.conv2d import nchwc_tiles
from tcomp.ops.cpu.conv_tiles import NCHWcTile, conv2d_nchwc_tile
from tcomp.ops.cpu.dispatch import schedule_cpu
from tcomp.ops.nchwc import conv2d_nchwc as conv2d_nchwc_compute
from tcomp.ops.testing import conv2d_nchw_python, depthwise_conv2d_nchw_python
from tcomp.schedule import Schedule, create_schedule
from tcomp.schedule.stage import Stage
from tcomp.target import TargetKind
from tcomp.te.tensor import ComputeOp, Tensor


class PadPlacement(enum.Enum):
    INLINE = "inline"
    COMPUTE_AT = "compute_at"


class VectorAxis(enum.Enum):
    OW = "ow"
    OC = "oc"


def _pad_stage(s: Schedule, out: Tensor) -> Stage | None:
    for tensor in out.op.input_tensors():
        if isinstance(tensor.op, ComputeOp) and not tensor.op.is_reduction:
            return s[tensor]
    return None


def _place_pad(cfg: Config, s: Schedule, out: Tensor, axis: Any, has_pad: bool) -> None:
    choices = [PadPlacement.INLINE, PadPlacement.COMPUTE_AT] if has_pad else [PadPlacement.INLINE]
    placement = PadPlacement(cfg.define_knob("pad", choices).val)
    pad = _pad_stage(s, out)
    if pad is None:
        return
    if placement is PadPlacement.INLINE:
        pad.compute_inline()
    else:
        pad.compute_at(s[out], axis)


# inner loop orders of conv2d_nchw over (rc.1, ry, rx, oc.1, oh.1); ow.1 always stays innermost-but-vector
_CONV_ORDERS = [(0, 1, 2, 3, 4), (1, 2, 0, 3, 4), (0, 1, 2, 4, 3), (1, 2, 0, 4, 3), (3, 0, 1, 2, 4)]


def conv2d_nchw_reference(inputs: Sequence[np.ndarray], batch: int, in_channels: int, height: int, width: int,
                          out_channels: int, kernel_h: int, kernel_w: int, stride: int = 1, padding: int = 0,
                          dtype: str = "float32") -> list[np.ndarray]:
    """``conv2d_nchw`` and ``conv2d_nchwc`` (NCHW in and out) in numpy."""
    data, kernel = inputs
    return [conv2d_nchw_python(data, kernel, stride, padding)]


def depthwise_conv2d_nchw_reference(inputs: Sequence[np.ndarray], batch: int, channels: int, height: int,
                                    width: int, multiplier: int, kernel_h: int, kernel_w: int, stride: int = 1,
                                    padding: int = 0, dtype: str = "float32") -> list[np.ndarray]:
    data, kernel = inputs
    return [depthwise_conv2d_nchw_python(data, kernel, stride, padding)]


# the fused members ``conv2d_nchwc_blocked`` rebuilds behind its convolution (its ``epilogue`` argument): binary
# operators, each with the kind of its other operand (``c`` per output channel, ``t`` the whole output, ``s`` one
# value), and activations; an activation's bounds do not change its cost, so ``clip`` stands for ``clip(0, 6)``
EPILOGUE_BINARY = {"add": operator.add, "subtract": operator.sub, "multiply": operator.mul}  # numpy and te alike
EPILOGUE_OPERANDS = ("c", "t", "s")
EPILOGUE_UNARY = ("relu", "clip")


def epilogue_steps(epilogue: str) -> list[tuple[str, str | None]]:
    """``(operator, operand kind or None)`` per member of an ``epilogue`` (``"add:c,add:t,relu"``; "" for none);
    ValueError names a member the template does not rebuild."""
    steps: list[tuple[str, str | None]] = []
    for token in filter(None, epilogue.split(",")):
        name, _, operand = token.partition(":")
        if name in EPILOGUE_BINARY and operand in EPILOGUE_OPERANDS:
            steps.append((name, operand))
        elif name in EPILOGUE_UNARY and not operand:
            steps.append((name, None))
        else:
            raise ValueError(f"conv2d_nchwc_blocked: unknown epilogue member {token!r} (binary "
                             f"{'/'.join(EPILOGUE_BINARY)} with an operand kind {'/'.join(EPILOGUE_OPERANDS)}, "
                             f"or {'/'.join(EPILOGUE_UNARY)})")
    return steps


def _operand_shape(kind: str, out_shape: Sequence[int]) -> tuple[int, ...]:
    _, chunks, _, _, block = out_shape
    return {"c": (1, chunks, 1, 1, block), "t": tuple(out_shape), "s": (1,)}[kind]


def conv2d_nchwc_blocked_reference(inputs: Sequence[np.ndarray], batch: int, in_channels: int, height: int,
                                   width: int, out_channels: int, kernel_h: int, kernel_w: int, stride: int,
                                   padding: int, ic_block: int, oc_block: int, dtype: str = "float32",
                                   epilogue: str = "") -> list[np.ndarray]:
    """The blocked convolution in numpy: unblock ``data[N, C/ic, H, W, ic]`` to NCHW and ``kernel[O/oc, C/ic, KH,
    KW, ic, oc]`` to OIHW, convolve, block the output to ``[N, O/oc, OH, OW, oc]``, then apply the epilogue with
    its operands (the inputs after the kernel, in order)."""
    data, kernel, *operands = inputs
    nchw = data.transpose(0, 1, 4, 2, 3).reshape(batch, in_channels, height, width)
    oihw = kernel.transpose(0, 5, 1, 4, 2, 3).reshape(out_channels, in_channels, kernel_h, kernel_w)
    out = conv2d_nchw_python(nchw, oihw, stride, padding)
    _, _, out_h, out_w = out.shape
    result_dtype = out.dtype
    out = out.reshape(batch, out_channels // oc_block, oc_block, out_h, out_w).transpose(0, 1, 3, 4, 2)
    pending = iter(operands)
    for name, operand in epilogue_steps(epilogue):
        if operand is not None:
            out = EPILOGUE_BINARY[name](out, next(pending).astype(np.float64))
        else:
            out = np.maximum(out, 0.0) if name == "relu" else np.clip(out, 0.0, 6.0)
    return [np.ascontiguousarray(out, dtype=result_dtype)]


def _epilogue(out: Tensor, epilogue: str, dtype: str) -> tuple[Tensor, list[Tensor]]:
    """``out`` followed by the members of ``epilogue`` as the graph compiler computes them (binary ones tagged
    ``broadcast``, activations ``elemwise``): the last tensor, and the operands' placeholders."""
    operands = []
    shape = [int(d) for d in out.shape]
    for position, (name, operand) in enumerate(epilogue_steps(epilogue)):
        if operand is None:
            out = te.compute(shape, _activation(name, out), name=f"{name}{position}", tag="elemwise")
            continue
        y = te.placeholder(_operand_shape(operand, shape), name=f"operand{position}", dtype=dtype)
        operands.append(y)
        out = te.compute(shape, _binary(name, operand, out, y), name=f"{name}{position}", tag="broadcast")
    return out, operands


def _activation(name: str, x: Tensor) -> Callable[..., Any]:
    """The body of ``relu(x)`` or ``clip(x, 0, 6)``."""
    def body(*i: Any) -> Any:
        value = max_expr(x[i], te.const(0.0, x.dtype))
        return value if name == "relu" else min_expr(value, te.const(6.0, x.dtype))

    return body


def _binary(name: str, operand: str, x: Tensor, y: Tensor) -> Callable[..., Any]:
    """The body of ``x <name> y`` over the blocked output, ``y`` broadcast as its kind ``operand`` says."""
    def body(*i: Any) -> Any:  # index names as the graph's elementwise computes have them
        zero = te.const(0)
        index = {"c": (zero, i[1], zero, zero, i[4]), "t": i, "s": (zero,)}[operand]
        return EPILOGUE_BINARY[name](x[i], y[index])

    return body


@template("conv2d_nchw", reference=conv2d_nchw_reference, kind=TargetKind.LLVM)
def conv2d_nchw(cfg: Config, batch: int, in_channels: int, height: int, width: int, out_channels: int,
                kernel_h: int, kernel_w: int, stride: int = 1, padding: int = 0,
                dtype: str = "float32") -> tuple[Schedule, list[Tensor]]:
    out_h = conv_output_size(height, kernel_h, stride, 2 * padding)
    out_w = conv_output_size(width, kernel_w, stride, 2 * padding)
    lanes = vector_lanes(cfg.target, dtype)
    tile_oc = cfg.define_split("tile_oc", out_channels, 2, SplitPolicy.FACTORS, max_factor=64, fallback=[-1, 8])
    tile_oh = cfg.define_split("tile_oh", out_h, 2, SplitPolicy.FACTORS, max_factor=8, fallback=[-1, 1])
    tile_ow = cfg.define_split("tile_ow", out_w, 2, SplitPolicy.FACTORS, max_factor=4 * lanes,
                               fallback=[-1, lanes])
    tile_rc = cfg.define_split("tile_rc", in_channels, 2, SplitPolicy.FACTORS, max_factor=64, fallback=[-1, 8])
    order = cfg.define_reorder("order", 5, ReorderPolicy.CANDIDATES, candidates=_CONV_ORDERS)
    unroll = cfg.define_annotate("unroll_kernel", 2, AnnotatePolicy.TRY_UNROLL)
    vec = VectorAxis(cfg.define_knob("vec", [VectorAxis.OW, VectorAxis.OC]).val)

    data = te.placeholder((batch, in_channels, height, width), name="data", dtype=dtype)
    kernel = te.placeholder((out_channels, in_channels, kernel_h, kernel_w), name="kernel", dtype=dtype)
    out = conv2d_compute(data, kernel, stride=stride, padding=padding, name="conv")
    s = create_schedule(out)
    n, oc, oh, ow = out.op.axis
    rc, ry, rx = out.op.reduce_axis
    oco, oci = tile_oc.apply(s[out], oc)
    oho, ohi = tile_oh.apply(s[out], oh)
    owo, owi = tile_ow.apply(s[out], ow)
    rco, rci = tile_rc.apply(s[out], rc)
    inner = order.permute([rci, ry, rx, oci, ohi])
    if vec is VectorAxis.OC:
        inner = [owi if axis is oci else axis for axis in inner]
        vector_axis = oci
    else:
        vector_axis = owi
    s[out].reorder(n, oco, oho, owo, rco, *inner, vector_axis)
    unroll.apply(s[out], [ry, rx])
    s[out].vectorize(vector_axis)
    _place_pad(cfg, s, out, owo, padding > 0)
    s[out].parallel(s[out].fuse(n, oco))
    return s, [data, kernel, out]


@template("depthwise_conv2d_nchw", reference=depthwise_conv2d_nchw_reference, kind=TargetKind.LLVM)
def depthwise_conv2d_nchw(cfg: Config, batch: int, channels: int, height: int, width: int, multiplier: int,
                          kernel_h: int, kernel_w: int, stride: int = 1, padding: int = 0,
                          dtype: str = "float32") -> tuple[Schedule, list[Tensor]]:
    out_h = conv_output_size(height, kernel_h, stride, 2 * padding)
    out_w = conv_output_size(width, kernel_w, stride, 2 * padding)
    lanes = vector_lanes(cfg.target, dtype)
    tile_c = cfg.define_split("tile_c", channels * multiplier, 2, SplitPolicy.FACTORS, max_factor=32,
                              fallback=[-1, 1])
    tile_oh = cfg.define_split("tile_oh", out_h, 2, SplitPolicy.FACTORS, max_factor=8, fallback=[-1, 1])
    tile_ow = cfg.define_split("tile_ow", out_w, 2, SplitPolicy.FACTORS, max_factor=4 * lanes,
                               fallback=[-1, lanes])
    order = cfg.define_reorder("order", 3, ReorderPolicy.CANDIDATES,
                               candidates=[(0, 1, 2), (2, 0, 1), (0, 2, 1)])
    unroll = cfg.define_annotate("unroll_kernel", 2, AnnotatePolicy.TRY_UNROLL)

    data = te.placeholder((batch, channels, height, width), name="data", dtype=dtype)
    kernel = te.placeholder((channels, multiplier, kernel_h, kernel_w), name="kernel", dtype=dtype)
    out = depthwise_compute(data, kernel, stride=stride, padding=padding, name="depthwise")
    s = create_schedule(out)
    n, c, oh, ow = out.op.axis
    ry, rx = out.op.reduce_axis
    co, ci = tile_c.apply(s[out], c)
    oho, ohi = tile_oh.apply(s[out], oh)
    owo, owi = tile_ow.apply(s[out], ow)
    s[out].reorder(n, co, oho, owo, *order.permute([ci, ry, rx]), ohi, owi)
    unroll.apply(s[out], [ry, rx])
    s[out].vectorize(owi)
    _place_pad(cfg, s, out, owo, padding > 0)
    s[out].parallel(s[out].fuse(n, co))
    return s, [data, kernel, out]


@template("conv2d_nchwc", reference=conv2d_nchw_reference, kind=TargetKind.LLVM)
def conv2d_nchwc(cfg: Config, batch: int, in_channels: int, height: int, width: int, out_channels: int,
                 kernel_h: int, kernel_w: int, stride: int = 1, padding: int = 0,
                 dtype: str = "float32") -> tuple[Schedule, list[Tensor]]:
    """NCHW in and out; inside, ``data_vec[n, C/ic_bn, H, W, ic_bn]``, ``kernel_vec[O/oc_bn, C/ic_bn, KH, KW,
    ic_bn, oc_bn]`` and ``conv[n, O/oc_bn, OH, OW, oc_bn]`` with the ``oc_bn`` block vectorized."""
    out_h = conv_output_size(height, kernel_h, stride, 2 * padding)
    out_w = conv_output_size(width, kernel_w, stride, 2 * padding)
    lanes = vector_lanes(cfg.target, dtype)
    tile_ic = cfg.define_split("tile_ic", in_channels, 2, SplitPolicy.FACTORS, max_factor=64, fallback=[-1, 8])
    tile_oc = cfg.define_split("tile_oc", out_channels, 2, SplitPolicy.FACTORS, max_factor=4 * lanes,
                               fallback=[-1, lanes])
    tile_ow = cfg.define_split("tile_ow", out_w, 2, SplitPolicy.FACTORS, max_factor=16, fallback=[-1, 4])
    unroll = cfg.define_annotate("unroll_kw", 1, AnnotatePolicy.TRY_UNROLL)
    ic_bn, oc_bn = tile_ic.size[1], tile_oc.size[1]
    ic_chunks, oc_chunks = in_channels // ic_bn, out_channels // oc_bn

    data = te.placeholder((batch, in_channels, height, width), name="data", dtype=dtype)
    kernel = te.placeholder((out_channels, in_channels, kernel_h, kernel_w), name="kernel", dtype=dtype)
    padded_h, padded_w = height + 2 * padding, width + 2 * padding

    def pack_data(n: Any, cc: Any, y: Any, x: Any, cb: Any) -> Any:
        value = data[n, cc * ic_bn + cb, te.max(te.min(y - padding, height - 1), 0),
                     te.max(te.min(x - padding, width - 1), 0)]
        if padding == 0:
            return value
        inside = te.all(y >= padding, y < height + padding, x >= padding, x < width + padding)
        return te.if_then_else(inside, value, te.const(0, dtype))

    data_vec = te.compute((batch, ic_chunks, padded_h, padded_w, ic_bn), pack_data, name="data_vec")
    kernel_vec = te.compute(
        (oc_chunks, ic_chunks, kernel_h, kernel_w, ic_bn, oc_bn),
        lambda oo, cc, ky, kx, cb, ob: kernel[oo * oc_bn + ob, cc * ic_bn + cb, ky, kx],
        name="kernel_vec",
    )
    ic = te.reduce_axis((0, in_channels), name="ic")
    ky = te.reduce_axis((0, kernel_h), name="ky")
    kx = te.reduce_axis((0, kernel_w), name="kx")
    conv = te.compute(
        (batch, oc_chunks, out_h, out_w, oc_bn),
        lambda n, oo, y, x, ob: te.sum(
            data_vec[n, ic // ic_bn, y * stride + ky, x * stride + kx, ic % ic_bn]
            * kernel_vec[oo, ic // ic_bn, ky, kx, ic % ic_bn, ob],
            axis=[ic, ky, kx],
        ),
        name="conv_nchwc",
    )
    out = te.compute((batch, out_channels, out_h, out_w),
                     lambda n, o, y, x: conv[n, o // oc_bn, y, x, o % oc_bn], name="conv")
    s = create_schedule(out)
    n, oo, y, x, ob = conv.op.axis
    ic_axis, ky_axis, kx_axis = conv.op.reduce_axis
    xo, xi = tile_ow.apply(s[conv], x)
    ico, ici = s[conv].split(ic_axis, factor=ic_bn)
    s[conv].reorder(n, oo, y, xo, ico, ky_axis, kx_axis, ici, xi, ob)
    unroll.apply(s[conv], [kx_axis])
    s[conv].unroll(xi)
    s[conv].vectorize(ob)
    s[conv].parallel(s[conv].fuse(n, oo))
    s[data_vec].parallel(s[data_vec].fuse(*data_vec.op.axis[:2]))
    s[kernel_vec].parallel(kernel_vec.op.axis[0])
    on, oc, oy, ox = out.op.axis
    s[out].parallel(s[out].fuse(on, oc))
    return s, [data, kernel, out]


def nchwc_tile_of(config: Config) -> NCHWcTile:
    """The ``NCHWcTile`` a ``conv2d_nchwc_blocked`` config stands for (a space: its fallback)."""
    return NCHWcTile(int(config["reg_n"].val), int(config["oc_chunks"].val), bool(config["unroll_kw"].val),
                     int(config["ic_chunks"].val))


@template("conv2d_nchwc_blocked", reference=conv2d_nchwc_blocked_reference, kind=TargetKind.LLVM)
def conv2d_nchwc_blocked(cfg: Config, batch: int, in_channels: int, height: int, width: int, out_channels: int,
                         kernel_h: int, kernel_w: int, stride: int, padding: int, ic_block: int, oc_block: int,
                         dtype: str = "float32", epilogue: str = "") -> tuple[Schedule, list[Tensor]]:
    """``ops.nchwc.conv2d_nchwc`` on blocked tensors (``data[N, C/ic, H, W, ic]``, ``kernel[O/oc, C/ic, KH, KW, ic,
    oc]``) followed by ``epilogue``, the elementwise members fused behind it in a model (``"add:c,relu"``: a
    per-channel bias and a relu; ``epilogue_steps``), scheduled by the default CPU schedule of a fused group with
    its tiling as knobs: ``reg_n`` output columns per register tile, ``oc_chunks`` channel blocks per tile,
    ``unroll_kw``, and ``ic_chunks`` (0: the whole reduction per tile, the epilogue applied in registers; n: the
    reduction blocked by n input-channel blocks, the epilogue a pass of its own). So a config is measured as the
    model runs it, and its records apply to the fused kernels of a model (``nchwc_tiles``); the fallback is the
    default tile."""
    if in_channels % ic_block or out_channels % oc_block:
        raise ValueError(f"conv2d_nchwc_blocked: blocks {ic_block}/{oc_block} must divide the channels "
                         f"{in_channels}/{out_channels}")
    chunks, o_chunks = in_channels // ic_block, out_channels // oc_block
    data = te.placeholder((batch, chunks, height, width, ic_block), name="data", dtype=dtype)
    kernel = te.placeholder((o_chunks, chunks, kernel_h, kernel_w, ic_block, oc_block), name="kernel", dtype=dtype)
    conv = conv2d_nchwc_compute(data, kernel, stride, padding)
    out, operands = _epilogue(conv, epilogue, dtype)
    cpu = CpuTarget.of(cfg.target)
    out_w = conv_output_size(width, kernel_w, stride, 2 * padding)
    sizes = [batch, o_chunks, conv_output_size(height, kernel_h, stride, 2 * padding), out_w, oc_block]
    default = conv2d_nchwc_tile(sizes, [chunks, kernel_h, kernel_w, ic_block], cpu, cpu.lanes(dtype), stride)
    cfg.define_knob("reg_n", sorted({d for d in range(1, 17) if out_w % d == 0} | {default.reg_n}),
                    fallback=default.reg_n)
    cfg.define_knob("oc_chunks", sorted({c for c in (1, 2, 4) if o_chunks % c == 0} | {default.oc_chunks}),
                    fallback=default.oc_chunks)
    cfg.define_knob("unroll_kw", [False, True] if kernel_w > 1 else [False], fallback=default.unroll_kw)
    cfg.define_knob("ic_chunks", sorted({0, default.ic_chunks} | {c for c in (1, 2, 4, 8, 16) if chunks % c == 0}),
                    fallback=default.ic_chunks)
    tile = nchwc_tile_of(cfg)  # as the model's chooser reads a record (the loop order stays the default's)
    with nchwc_tiles(lambda op, workload: tile):
        s = schedule_cpu([out], cfg.target)
    return s, [data, kernel, *operands, out]
