"""``schedule_cpu``: the default CPU schedule of any graph of library operators, picked per stage by its kind.

Given the output tensors of a fused group (inputs are placeholders), the schedule is built in four steps (those of
every target, ``ops/steps.py``; steps 2 and 3 are its anchors step):

1. Inline every elementwise / injective stage that is not an output into its readers, except a padding stage read
   by a convolution (computed at the root instead, so the convolution's inner loops test no bounds; a pooling
   window is small, so there the bounds test costs less than writing a padded copy) and a stage that calls a
   transcendental function and has several readers (inlining would repeat the call).
2. Each convolution whose only reader (through the inlined stages) is an output that reads it elementwise takes
   that output as its epilogue: the convolution is computed, tile by tile, inside the output's loop (as TVM's
   ``schedule_conv2d`` does with a fused bias + relu).
3. Convolutions, matrix products and pooling windows (``POOL_WINDOW``) get their tiled schedules (``conv2d.py``,
   ``dense.py``, ``bf16_matmul.py``, ``matvec.py``, ``quantized_matmul.py``); a Winograd convolution's products
   place its transforms with them (``winograd.py``: its output transform inlined into an elementwise epilogue, as a
   convolution's epilogue hosts it in step 2).
4. Every other root stage gets the generic schedule of its kind: reductions (``schedule_reduction``: vectorized
   partial sums or vectorized outer reductions) and elementwise stages (``schedule_elementwise``). The init and
   update stages of a ``te.scan`` keep their plain loops (never inlined: the scan reads them row by row).

A group that is a row-wise normalization (softmax, log_softmax, layer_norm, rms_norm: reductions over the trailing
axes and an elementwise result, ``rows.py``) is scheduled one pass per row instead. Other multi-stage operators
(average pooling, mean) are graphs of reductions and elementwise stages and are scheduled stage by stage. The
per-operator entry points (``schedule_conv2d_nchwc(outs)`` ...) are ``schedule_cpu`` with a check that the
operator is there.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tcomp.ir.expr import Call, ProducerLoad
from tcomp.ir.functor import post_order_visit
from tcomp.ops.cpu.attention import PART as ATTENTION_PART
from tcomp.ops.cpu.attention import schedule_attention
from tcomp.ops.cpu.bf16_matmul import reads_bf16_panels, schedule_bf16_panel_matmul
from tcomp.ops.cpu.common import (
    CpuTarget,
    padding_stage,
    schedule_elementwise,
    schedule_layout_transform,
    schedule_reduction,
)
from tcomp.ops.cpu.conv2d import SCHEDULES as CONV_SCHEDULES
from tcomp.ops.cpu.conv2d import schedule_pool_window_stage
from tcomp.ops.cpu.dense import schedule_matmul_stage
from tcomp.ops.cpu.matvec import schedule_packed_matvec
from tcomp.ops.cpu.quantized_matmul import schedule_im2col, schedule_padded_windows, schedule_quantized_matmul
from tcomp.ops.cpu.rows import schedule_rows
from tcomp.ops.cpu.winograd import schedule_winograd
from tcomp.ops.pool import POOL_WINDOW
from tcomp.ops.steps import schedule_in_steps
from tcomp.ops.utils import OpError, OpKind, Tag, op_kind, same_dim
from tcomp.schedule.inline import inline_bodies
from tcomp.schedule.relation import AttachType
from tcomp.schedule.schedule import Schedule
from tcomp.schedule.stage import Stage
from tcomp.target import Target
from tcomp.te.tensor import ComputeOp, Tensor

MATMUL_KINDS = (OpKind.MATMUL, OpKind.BATCH_MATMUL)

__all__ = ["schedule_cpu", "schedule_with_kind"]


def _direct_readers(s: Schedule, stage: Stage) -> list[Stage]:
    tensor = stage.op.output(0)
    return [
        other for other in s.stages
        if other is not stage and any(s.resolve(t) is tensor for t in other.op.input_tensors())
    ]


def _calls_math(op: ComputeOp) -> bool:
    found = False

    def visit(node: object) -> None:
        nonlocal found
        if isinstance(node, Call):
            found = True

    for expr in op.body:
        post_order_visit(expr, visit)
    return found


def _inlinable(s: Schedule, stage: Stage) -> bool:
    op = stage.op
    if not isinstance(op, ComputeOp) or op.is_reduction or stage.is_output or op.num_outputs != 1:
        return False
    if op_kind(op) in (OpKind.ATTENTION, OpKind.WINOGRAD_INPUT, OpKind.WINOGRAD_KERNEL, OpKind.IM2COL,
                       OpKind.RESIZE_ROWS):
        return False  # scheduled with their operator's other stages, kept small (a Winograd transform's rows), or
        # gathered once (a convolution's windows, a resize's first axis: read many times)
    if stage.attach_type is not AttachType.ROOT or stage.scan_parent is not None:
        return False
    readers = _direct_readers(s, stage)
    if not readers:
        return False
    if op_kind(op) is OpKind.PAD and any((r.is_reduction and op_kind(r.op) in CONV_SCHEDULES)
                                         or op_kind(r.op) is OpKind.WINOGRAD_INPUT for r in readers):
        return False
    if op_kind(op) is OpKind.PAD and any(op_kind(r.op) is OpKind.IM2COL for r in readers) and \
            any(op.attrs["pad_before"] + op.attrs["pad_after"]):
        return False  # padded once: the windows read it without bounds tests
    if op_kind(op) is OpKind.WINOGRAD_OUTPUT and not _feeds_output_elementwise(s, stage):
        return False
    if op.tag == Tag.ELEMWISE and any(op_kind(r.op) is OpKind.IM2COL and _overlapping(r.op) for r in readers):
        return False  # computed once, not again for every window that reads it
    if len(readers) > 1 and _calls_math(op):
        return False
    return True


def _feeds_output_elementwise(s: Schedule, stage: Stage) -> bool:
    """Whether ``stage`` reaches an output through a chain of single readers that each read it elementwise over
    the same extents (an epilogue that can host it: a Winograd output transform, inlined there, runs tile by tile
    in the output's loops)."""
    current = stage
    while not current.is_output:
        readers = _direct_readers(s, current)
        if len(readers) != 1:
            return False
        op = readers[0].op
        if not isinstance(op, ComputeOp) or op.is_reduction or op.num_outputs != 1:
            return False
        if len(op.axis) != len(current.op.axis) or not all(
                same_dim(a.dom.extent, b.dom.extent) for a, b in zip(op.axis, current.op.axis)):
            return False
        if not _reads_elementwise(op.body, current.op.output(0), [iv.var for iv in op.axis]):
            return False
        current = readers[0]
    return current is not stage


def _overlapping(op: ComputeOp) -> bool:
    """Whether the windows of an ``im2col`` read some input elements more than once (more than one tap)."""
    return op.output(0).shape[1].value != op.attrs["channels"]


def inline_injective(s: Schedule) -> None:
    """Step 1: inline the elementwise and injective stages that are not outputs (see the module docstring)."""
    for stage in list(s.stages):
        if _inlinable(s, stage):
            stage.compute_inline()


def _reads_elementwise(body: Sequence[object], tensor: Tensor, axis_vars: Sequence[object],
                       unit_axes: Sequence[bool] = ()) -> bool:
    """Whether every read of ``tensor`` in ``body`` is at the reader's own axes (those in ``unit_axes``, axes of
    extent 1, may be missing from the read: a reshape that only adds dimensions of 1)."""
    loads: list[ProducerLoad] = []

    def visit(node: object) -> None:
        if isinstance(node, ProducerLoad) and node.producer is tensor:
            loads.append(node)

    for expr in body:
        post_order_visit(expr, visit)
    kept = [v for position, v in enumerate(axis_vars) if not (position < len(unit_axes) and unit_axes[position])]
    return bool(loads) and all(
        (len(load.indices) == len(axis_vars) and all(i is v for i, v in zip(load.indices, axis_vars)))
        or (len(load.indices) == len(kept) and all(i is v for i, v in zip(load.indices, kept)))
        for load in loads
    )


def _sole_root_reader(s: Schedule, stage: Stage, claimed: set[Stage]) -> Stage | None:
    """The one reader of ``stage`` (not itself an output) when that reader is an output computed at the root that no
    other stage has claimed as its host; else ``None``."""
    if stage.is_output:
        return None
    readers = s.readers(stage)
    if len(readers) != 1:
        return None
    host = readers[0]
    if host in claimed or not host.is_output or host.attach_type is not AttachType.ROOT:
        return None
    return host


def epilogue_host(s: Schedule, stage: Stage, claimed: set[Stage], same_shape: bool = True) -> Stage | None:
    """Step 2: the output stage that can host ``stage`` as its epilogue, or ``None``. ``same_shape=False`` also
    takes an output that reads the leading part of ``stage`` (index for index, fewer elements along an axis)."""
    host = _sole_root_reader(s, stage, claimed)
    if host is None:
        return None
    host_op, op = host.op, stage.op
    if not isinstance(host_op, ComputeOp) or host_op.is_reduction or host_op.num_outputs != 1:
        return None
    if not isinstance(op, ComputeOp) or op_kind(host_op) in CONV_SCHEDULES:
        return None
    out, result = host_op.output(0), op.output(0)
    out_shape, result_shape = list(out.shape), list(result.shape)
    # a symbolic dimension fits where the stage's schedule takes it (a convolution's or pooling window's batch); a
    # product's symbolic rows keep their epilogue apart
    symbolic = op_kind(op) in CONV_SCHEDULES or bool(op.attrs.get(POOL_WINDOW))
    # a matrix product's result may gain leading dimensions of 1 on the way (a squeeze or unsqueeze)
    unit = [False] * len(out_shape)
    if op_kind(op) in (*MATMUL_KINDS, OpKind.QUANTIZED_MATMUL) and len(out_shape) > len(result_shape):
        extra = len(out_shape) - len(result_shape)
        unit = [position < extra for position in range(len(out_shape))]
        out_shape = out_shape[extra:]
        if any(d != 1 for d in [getattr(x, "value", None) for x in out.shape][:extra]):
            return None
    shape_ok = len(out_shape) == len(result_shape) and all(
        _fits(a, b, same_shape, symbolic) for a, b in zip(out_shape, result_shape)
    )
    if not shape_ok:
        return None
    body = inline_bodies(s)[host_op]
    if not _reads_elementwise(body, result, [iv.var for iv in host_op.axis], unit):
        return None
    return host


def _fits(out: Any, result: Any, same: bool, symbolic: bool) -> bool:
    """Whether an output dimension ``out`` reads the product's ``result`` (the same, or a leading part where not
    ``same``); with ``symbolic``, a symbolic dimension (a batch) fits the same expression."""
    sizes = getattr(out, "value", None), getattr(result, "value", None)
    if sizes[0] is None or sizes[1] is None:
        return symbolic and same_dim(out, result)
    return sizes[0] == sizes[1] if same else sizes[0] <= sizes[1]


def unblocking_host(s: Schedule, stage: Stage, claimed: set[Stage]) -> Stage | None:
    """For a ``conv2d_nchwc`` stage: the output ``layout_transform`` from ``NCHW{oc}c`` back to ``NCHW`` that reads
    it directly or through inlined stages that read it elementwise (a blocked bias, an activation), which can host
    the convolution's tiles so the result is written in NCHW directly."""
    host = _sole_root_reader(s, stage, claimed)
    if host is None:
        return None
    host_op, op = host.op, stage.op
    if not isinstance(host_op, ComputeOp) or op_kind(host_op) is not OpKind.LAYOUT_TRANSFORM:
        return None
    block = getattr(op.output(0).shape[-1], "value", None)
    if host_op.attrs.get("src_layout") != f"NCHW{block}c" or host_op.attrs.get("dst_layout") != "NCHW":
        return None
    source = s.resolve(host_op.input_tensors()[0])
    while source is not s.resolve(op.output(0)):
        producer = s[source]
        inputs = [s.resolve(t) for t in producer.op.input_tensors()]
        if producer.attach_type is not AttachType.INLINE or not isinstance(producer.op, ComputeOp):
            return None
        path = [t for t in inputs if t is s.resolve(op.output(0)) or s[t].attach_type is AttachType.INLINE]
        if len(path) != 1 or not _reads_elementwise(producer.op.body, path[0], [iv.var for iv in producer.op.axis]):
            return None
        source = path[0]
    return host


def _schedule_anchors(s: Schedule, cpu: CpuTarget) -> set[Stage]:
    """Step 3; returns the stages it scheduled (anchors, their hosts and padding stages)."""
    done: set[Stage] = set()
    for stage in reversed(list(s.stages)):
        kind = op_kind(stage.op)
        if stage.attach_type is not AttachType.ROOT or stage in done:
            continue
        if kind in CONV_SCHEDULES:
            host = epilogue_host(s, stage, done)
            if host is None and kind is OpKind.CONV2D_NCHWC:
                host = unblocking_host(s, stage, done)
            op = stage.op
            assert isinstance(op, ComputeOp)
            pad = padding_stage(s, op)
            CONV_SCHEDULES[kind](s, op.output(0), host, cpu)
            done.update(x for x in (stage, host, pad) if x is not None)
        elif kind in MATMUL_KINDS:
            host = epilogue_host(s, stage, done)
            if reads_bf16_panels(stage.op):
                schedule_bf16_panel_matmul(s, stage.op.output(0), host, cpu)
            else:
                schedule_matmul_stage(s, stage.op.output(0), host, cpu)
            done.update(x for x in (stage, host) if x is not None)
        elif kind is OpKind.QUANTIZED_MATMUL:
            host = epilogue_host(s, stage, done)
            schedule_quantized_matmul(s, stage.op.output(0), host, cpu)
            done.update(x for x in (stage, host) if x is not None)
        elif kind is OpKind.PACKED_MATVEC:
            host = epilogue_host(s, stage, done, same_shape=False)
            schedule_packed_matvec(s, stage.op.output(0), host, cpu)
            done.update(x for x in (stage, host) if x is not None)
        elif isinstance(stage.op, ComputeOp) and stage.op.is_reduction and stage.op.attrs.get(POOL_WINDOW):
            host = epilogue_host(s, stage, done)
            schedule_pool_window_stage(s, stage.op.output(0), host, cpu)
            done.update(x for x in (stage, host) if x is not None)
        elif kind is OpKind.CONV2D_WINOGRAD:
            done.update(schedule_winograd(s, stage, cpu))
        elif kind is OpKind.ATTENTION and stage.op.attrs.get(ATTENTION_PART) == "result":
            schedule_attention(s, stage, cpu)
            done.add(stage)
    return done


def schedule_cpu(outs: Tensor | Sequence[Tensor], target: Target | None = None) -> Schedule:
    """The default CPU schedule of the graph that computes ``outs`` (one fused group: its inputs are
    placeholders), for ``target`` (the host by default)."""
    cpu = CpuTarget.of(target)

    def anchors(s: Schedule) -> set[Stage]:
        if schedule_rows(s, cpu):  # a row-wise normalization: one pass per row places every stage
            return set(s.stages)
        return _schedule_anchors(s, cpu)

    def generic(s: Schedule, stage: Stage) -> None:
        if stage.scan_parent is not None:  # a scan's init or update: its loops run inside the scan's time loop
            return
        if stage.op.is_reduction:
            schedule_reduction(s, stage, cpu)
        elif op_kind(stage.op) is OpKind.LAYOUT_TRANSFORM:
            schedule_layout_transform(stage, cpu)
        elif op_kind(stage.op) is OpKind.IM2COL:
            schedule_im2col(stage, cpu)
        elif op_kind(stage.op) is OpKind.PAD and any(op_kind(r.op) is OpKind.IM2COL for r in s.readers(stage)):
            schedule_padded_windows(stage, cpu)
        else:
            schedule_elementwise(stage, cpu)

    return schedule_in_steps("schedule_cpu", outs, inline_injective, anchors, generic)


def schedule_with_kind(
    outs: Tensor | Sequence[Tensor], target: Target | None, kinds: Sequence[OpKind], entry: str
) -> Schedule:
    """``schedule_cpu(outs)`` after checking that the graph holds an operator of one of ``kinds``."""
    tensors = [outs] if isinstance(outs, Tensor) else list(outs)
    s = schedule_cpu(tensors, target)
    if not any(op_kind(stage.origin_op) in kinds for stage in s.stages):
        names = ", ".join(k.value for k in kinds)
        raise OpError(f"{entry}: the graph of {', '.join(t.name for t in tensors)} has no {names} operator")
    return s
