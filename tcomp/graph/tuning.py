"""Tuning records at graph compile time.

``tuning_records`` (an argument of ``tcomp.graph.compile``) is a path to a records file (JSON lines written by
``tcomp.autotune``), or any object with ``query(task) -> config | None`` (a ``tcomp.autotune`` dispatch context
such as ``ApplyHistoryBest``). For every convolution or matrix product whose workload matches a tunable template
(``workload_of``) and has a record that beats the default schedule (``use_record``: the record's measured cost
against the default kernel of the operator as the graph compiles it, timed once at compile time), the operator is
compiled alone from the template with the best config (``tuned_schedule``), in NCHW; its elementwise consumers then
form their own group (``fuse_ops`` and ``alter_layout`` leave tuned anchors alone). Otherwise the operator keeps the
default schedule, its blocked layout and its fusion.

Each backend names its template of each workload (``GraphOptions.templates``: for ``target="cuda"``
``conv2d_nchw_cuda`` and ``matmul_cuda``, whose default kernels are the ones ``tcomp.ops.cuda`` schedules, in NCHW).

Where the backend compiles convolutions blocked (CPUs: NCHW[x]c, fused with their epilogues), their tasks are
``conv2d_nchwc_blocked`` workloads of the fused kernels, epilogue included (``conv_epilogue``: a config that blocks
the reduction runs the epilogue as a pass of its own, which a convolution timed alone would not show;
``tasks.extract_model_tasks`` reads them after ``alter_layout`` and ``fuse_ops``), and a record gives the tile of the
fused kernel (``nchwc_tile_chooser``, used by ``kernels.compile_node``) rather than a kernel of its own. Products
whose weight the CPU graph stores in the packed GEMM's panels (``panel_matmul``, made by the pass ``gemm_panels``)
are tuned the same way: their tasks are ``panel_matmul`` workloads and a record gives the packed
GEMM's tile of the fused kernel (``panel_tile_chooser``). ``kernel_tuning(records)`` hands ``compile_node`` all.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from typing import Any

import numpy as np

from tcomp.autotune.dispatch import ApplyHistoryBest
from tcomp.autotune.task import create_task
from tcomp.autotune.templates.cpu.conv2d import EPILOGUE_BINARY, EPILOGUE_UNARY, nchwc_tile_of
from tcomp.autotune.templates.cpu.panels import panel_tile_of
from tcomp.backend import backend_for
from tcomp.graph.infer import infer_types
from tcomp.graph.ir import Graph, Node
from tcomp.graph.kernels import KernelTuning, body_of, compile_node, node_tensors
from tcomp.graph.passes.alter_layout import alter_layout
from tcomp.graph.passes.fold_constants import fold_constants
from tcomp.ir import dtype as dt
from tcomp.ops.cpu.common import CpuTarget
from tcomp.ops.cpu.conv2d import blocked_conv_workload, nchwc_tiles
from tcomp.ops.cpu.dense import panel_product_workload
from tcomp.ops.cpu.panel_tiles import panel_tiles
from tcomp.ops.panels import PANELS
from tcomp.schedule import Schedule
from tcomp.target import Target, TargetKind
from tcomp.te.tensor import ComputeOp, Tensor


def workload_of(graph: Graph, node: Node, target: Target) -> tuple[str, tuple[Any, ...]] | None:
    """The template name and arguments computing ``node`` alone on ``target`` (the backend names its template of
    each workload), or None when no template matches it."""
    workload = _cpu_workload(graph, node, target)
    if workload is None:
        return None
    name = backend_for(target).graph.template_for(workload[0])
    return (name, workload[1]) if name is not None else None


def _cpu_workload(graph: Graph, node: Node, target: Target) -> tuple[str, tuple[Any, ...]] | None:
    if node.op == "conv2d_nchwc" or (node.op == "fused" and body_of(node)[0].op == "conv2d_nchwc"):
        return _nchwc_workload(graph, node)
    if node.op == "panel_matmul":
        return _panel_workload(graph, node, target)
    if node.op == "conv2d":
        x, w = graph.type_of(node.inputs[0]), graph.type_of(node.inputs[1])
        strides, pads, dilations = node.attr("strides"), node.attr("pads"), node.attr("dilations")
        if len(set(strides)) != 1 or len(set(pads)) != 1 or set(dilations) != {1}:
            return None
        n, c, h, wd = x.shape
        o, cg, kh, kw = w.shape
        groups = int(node.attr("groups", 1))
        if groups == 1:
            return "conv2d_nchw", (n, c, h, wd, o, kh, kw, strides[0], pads[0], x.dtype)
        if groups == c and cg == 1 and o == c:
            return "depthwise_conv2d_nchw", (n, c, h, wd, 1, kh, kw, strides[0], pads[0], x.dtype)
        return None
    if node.op == "matmul":
        a, b = graph.type_of(node.inputs[0]), graph.type_of(node.inputs[1])
        if a.ndim == 2 and b.ndim == 2:
            if node.attr("transpose_b", False):  # b stored [N, K]
                return "dense", (a.shape[0], b.shape[0], a.shape[1], a.dtype)
            return "matmul", (a.shape[0], b.shape[1], a.shape[1], a.dtype)
    return None


def _nchwc_workload(graph: Graph, node: Node) -> tuple[str, tuple[Any, ...]] | None:
    """The ``conv2d_nchwc_blocked`` workload of a blocked convolution (as the CPU schedule reads it off the compute)
    and of the fused group it leads, epilogue included (``conv_epilogue``); None for a grouped one, which no
    template covers, or an epilogue the template does not rebuild."""
    conv = body_of(node)[0]
    scope: Graph = node.attr("body") if node.op == "fused" else graph
    epilogue = conv_epilogue(node)
    if int(conv.attr("groups", 1)) != 1 or epilogue is None:
        return None
    x, w = scope.type_of(conv.inputs[0]), scope.type_of(conv.inputs[1])
    args = blocked_conv_workload(x.shape, w.shape, conv.attr("strides"), conv.attr("pads"), conv.attr("dilations"),
                                 x.dtype)
    return ("conv2d_nchwc_blocked", (*args, epilogue)) if args is not None else None


def conv_epilogue(node: Node) -> str | None:
    """The ``epilogue`` argument of ``conv2d_nchwc_blocked`` for ``node``, a blocked convolution alone ("") or a
    fused group it leads: the members after it, in order, each reading the previous one's result; a binary one
    with the kind of its other operand (``add:c`` a per-channel bias, ``add:t`` a whole tensor such as a residual,
    ``add:s`` one value). None when a member is one the template does not rebuild, or reads more than the chain."""
    if node.op != "fused":
        return "" if node.op == "conv2d_nchwc" else None
    body: Graph = node.attr("body")
    conv, *members = body.nodes
    value = conv.outputs[0]
    tokens = []
    for member in members:
        out = body.type_of(member.outputs[0])
        if member.op in EPILOGUE_UNARY and member.inputs == (value,):
            tokens.append(member.op)
        elif member.op in EPILOGUE_BINARY and len(member.inputs) == 2 and value in member.inputs:
            other = member.inputs[1] if member.inputs[0] == value else member.inputs[0]
            if (member.op == "subtract" and member.inputs[0] != value) or other == value:
                return None
            kind = _operand_kind(body.type_of(other).shape, out.shape)
            if kind is None:
                return None
            tokens.append(f"{member.op}:{kind}")
        else:
            return None
        value = member.outputs[0]
    return ",".join(tokens) if body.outputs == (value,) else None


def _operand_kind(shape: Sequence[int], out: Sequence[int]) -> str | None:
    """How a binary epilogue member's other operand of ``shape`` broadcasts over the blocked output ``out`` (an
    output of one pixel takes whole-tensor operands as per-channel ones: the same values)."""
    if len(shape) == len(out) == 5 and tuple(shape) == (1, out[1], 1, 1, out[4]):
        return "c"
    if tuple(shape) == tuple(out):
        return "t"
    if int(np.prod(shape)) == 1:
        return "s"
    return None


def _panel_workload(graph: Graph, node: Node, target: Target) -> tuple[str, tuple[Any, ...]] | None:
    """A ``panel_matmul`` node's workload (``panel_workloads``); None where the packed GEMM does not take it."""
    workloads = panel_workloads(graph, node, target)
    return ("panel_matmul", workloads[0]) if len(workloads) == 1 else None


def panel_workloads(graph: Graph, node: Node, target: Target) -> list[tuple[Any, ...]]:
    """The ``panel_matmul`` workloads of the products from panels that ``node`` (an operator or a fused group)
    computes, read off its lowered computes as the default schedule reads them (``dense.panel_product_workload``:
    sizes, panels, whether the input rows are read in place, which depends on the views fused in front of the
    product); products the packed GEMM does not take (panels packed for another target) have none."""
    if target.kind is not TargetKind.LLVM or not any(m.op == "panel_matmul" for m in body_of(node)):
        return []
    cpu = CpuTarget.of(target)
    workloads = (panel_product_workload(op, cpu) for op in _panel_computes(node_tensors(graph, node).outputs))
    return [w for w in workloads if w is not None]


def _panel_computes(outputs: Sequence[Tensor]) -> list[ComputeOp]:
    """The ``panel_matmul`` computes that ``outputs`` read, in the order of their first reads."""
    pending = [t.op for t in reversed(outputs)]
    seen: set[int] = set()
    found = []
    while pending:
        op = pending.pop()
        if id(op) in seen or not isinstance(op, ComputeOp):
            continue
        seen.add(id(op))
        if op.attrs.get(PANELS):
            found.append(op)
        pending.extend(t.op for t in reversed(op.input_tensors()))
    return found


def record_tile_chooser(template: str, tile_of: Callable[[Any], Any], target: Target, records: Any,
                        chosen: list[bool], extra: tuple[Any, ...] = ()) -> Any:
    """A tile chooser (``TileChoice.using``) that gives each operator whose workload (followed by ``extra``) has a
    best ``template`` record the tile ``tile_of(config)`` of that record; appends True to ``chosen`` for each one it
    gives."""
    def choose(op: Any, workload: tuple[Any, ...]) -> Any:
        config = records.query(create_task(template, (*workload, *extra), target))
        if config is None:
            return None
        chosen.append(True)
        return tile_of(config)

    return choose


def nchwc_tile_chooser(node: Node, target: Target, records: Any, chosen: list[bool]) -> Any:
    """The tile chooser of the blocked convolution in ``node`` (``tcomp.ops.cpu.conv2d.nchwc_tiles``): the tile of
    its best ``conv2d_nchwc_blocked`` record with the node's epilogue; none where the template does not rebuild the
    epilogue."""
    epilogue = conv_epilogue(node)
    if epilogue is None:
        return lambda op, workload: None
    return record_tile_chooser("conv2d_nchwc_blocked", nchwc_tile_of, target, records, chosen, (epilogue,))


def panel_tile_chooser(target: Target, records: Any, chosen: list[bool]) -> Any:
    """The tile chooser of ``panel_matmul`` products (``tcomp.ops.cpu.panel_tiles.panel_tiles``): the packed GEMM's
    tile of each one's best ``panel_matmul`` record."""
    return record_tile_chooser("panel_matmul", panel_tile_of, target, records, chosen)


def as_dispatch_context(records: Any) -> Any:
    """A dispatch context from a records path (or the object itself when it already answers ``query``)."""
    if records is None or hasattr(records, "query"):
        return records
    if isinstance(records, (str, os.PathLike)):
        return ApplyHistoryBest(records)
    raise TypeError(f"tuning_records must be a path or a dispatch context, got {type(records).__name__}")


def node_task(graph: Graph, node: Node, target: Target) -> Any:
    """The tuning task of ``node`` alone on ``target``, or None when no template computes it."""
    workload = workload_of(graph, node, target)
    if workload is None:
        return None
    return create_task(workload[0], workload[1], target)


def has_record(graph: Graph, node: Node, target: Target, records: Any) -> bool:
    """Whether ``records`` holds a config for ``node``'s workload."""
    if records is None:
        return False
    task = node_task(graph, node, target)
    return task is not None and records.query(task) is not None


_DECISIONS: dict[tuple[str, int], bool] = {}
_DECISIONS_LOCK = threading.Lock()


def use_record(graph: Graph, node: Node, target: Target, records: Any) -> bool:
    """Whether ``node`` should be compiled from its tuning record: a record exists and its measured cost is below
    the default schedule's (``default_cost``). A context that reports no costs is trusted. Blocked convolutions
    never are, nor products from panels: their records give the tile of the fused kernel instead
    (``nchwc_tile_chooser``, ``panel_tile_chooser``)."""
    if node.op in ("conv2d_nchwc", "panel_matmul"):
        return False
    if node.op == "conv2d" and backend_for(target).graph.blocked_convolutions and hasattr(records, "best_record"):
        task = node_task(graph, node, target)  # without an NCHW record it is blocked and tuned by its tile: no miss
        if task is None or records.best_record(task) is None:
            return False
    if not has_record(graph, node, target, records):
        return False
    task = node_task(graph, node, target)
    best = records.best_record(task) if hasattr(records, "best_record") else None
    if best is None:
        return True
    key = (task.key, id(records))
    with _DECISIONS_LOCK:
        decision = _DECISIONS.get(key)
    if decision is None:
        decision = best.result.cost < default_cost(graph, node, target)
        with _DECISIONS_LOCK:
            _DECISIONS[key] = decision
    return decision


def tuned_product(graph: Graph, node: Node, target: Target, records: Any) -> bool:
    """Whether the matrix product ``node`` is compiled from a ``matmul`` or ``dense`` record of its own (``use_record``)
    rather than tuned as the packed GEMM the graph makes of it (a product without such a record is not counted as
    missing one: its ``panel_matmul`` workload is the one asked for)."""
    if node.op != "matmul":
        return False
    if hasattr(records, "best_record"):
        task = node_task(graph, node, target)
        if task is None or records.best_record(task) is None:
            return False
    return use_record(graph, node, target, records)


def default_cost(graph: Graph, node: Node, target: Target) -> float:
    """Seconds per call of ``node``'s default kernel as the graph compiles it (blocked layout and packed weights
    for a convolution; layout transforms of the activations not counted), the best of a few timed repeats."""
    rng = np.random.default_rng(0)
    source = node.inputs[0]
    params = {}
    for name in node.inputs[1:]:
        t = graph.type_of(name)
        params[name] = graph.params.get(name, rng.standard_normal(t.shape).astype(dt.to_numpy(t.dtype)))
    probe_node = replace(node, outputs=("probe_out",))
    probe = infer_types(Graph("probe", (source,), ("probe_out",), (probe_node,), params,
                              {source: graph.type_of(source)}))
    if backend_for(target).graph.blocked_convolutions:
        probe = alter_layout(probe, target)
    probe = fold_constants(probe, target)
    anchor = next(n for n in probe.nodes if n.op not in ("layout_transform",))
    kernel = compile_node(probe, anchor, target)
    arrays = []
    for name in kernel.args:
        if name in probe.params:
            arrays.append(np.require(probe.params[name], requirements="C"))
        else:
            t = probe.type_of(name)
            arrays.append(rng.standard_normal(t.shape).astype(dt.to_numpy(t.dtype)))
    return kernel.module.time_evaluator(number=3, repeat=5)(*arrays).min


def tuned_schedule(graph: Graph, node: Node, target: Target,
                   records: Any) -> tuple[Schedule, list[Tensor]] | None:
    """The template schedule with the best recorded config for ``node`` (a single tunable operator), else None."""
    if records is None or node.op == "fused" or not use_record(graph, node, target, records):
        return None
    task = node_task(graph, node, target)
    if task is None:
        return None
    config = records.query(task)
    if config is None:
        return None
    schedule, tensors = task.instantiate(config)
    return schedule, list(tensors)


def kernel_tuning(records: Any) -> KernelTuning | None:
    """What ``compile_node`` needs from ``records`` (a dispatch context, or None): each node's tuned schedule, and
    the tile choosers of blocked convolutions and of products from panels."""
    if records is None:
        return None

    @contextmanager
    def recorded_tiles(graph: Graph, node: Node, target: Target, chosen: list[bool]) -> Iterator[None]:
        options = backend_for(target).graph
        with ExitStack() as stack:
            if options.blocked_convolutions:
                stack.enter_context(nchwc_tiles(nchwc_tile_chooser(node, target, records, chosen)))
            if options.gemm_panels:
                stack.enter_context(panel_tiles(panel_tile_chooser(target, records, chosen)))
            yield

    return KernelTuning(records, lambda graph, node, target: tuned_schedule(graph, node, target, records),
                        recorded_tiles)
