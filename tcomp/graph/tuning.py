"""Tuning records at graph compile time, and the tuning tasks of a graph.

``tuning_records`` (an argument of ``tcomp.graph.compile``) is a path to a records file (JSON lines written by
``tcomp.autotune``), or any object with ``query(task) -> config | None`` (a ``tcomp.autotune`` dispatch context
such as ``ApplyHistoryBest``). For every convolution or matrix product whose workload matches a tunable template
(``workload_of``) and has a record that beats the default schedule (``use_record``: the record's measured cost
against the default kernel of the operator as the graph compiles it, timed once at compile time), the operator is
compiled alone from the template with the best config (``tuned_schedule``), in NCHW; its elementwise consumers then
form their own group (``fuse_ops`` and ``alter_layout`` leave tuned anchors alone). Otherwise the operator keeps the
default schedule, its blocked layout and its fusion.

For ``target="cuda"`` the templates are the CUDA ones (``CUDA_TEMPLATES``: ``conv2d_nchw_cuda``, ``matmul_cuda``)
and the default kernel is the one ``tcomp.ops.cuda.dispatch`` schedules, in NCHW.

On CPUs, convolutions compile in the blocked layout NCHW[x]c, fused with their epilogues; their tasks are
``conv2d_nchwc_blocked`` workloads (``extract_model_tasks`` reads them after ``alter_layout``), and a record gives
the tile of the fused kernel (``nchwc_tile_chooser``, used by ``kernels.compile_node``) rather than a kernel of its own.

``extract_tasks(graph, target)`` lists one task per distinct tunable workload, for ``tcomp tune``;
``extract_task_counts`` also says how many operators run each one.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import numpy as np

from tcomp.graph.ir import Graph, Node
from tcomp.schedule import Schedule
from tcomp.target import Target
from tcomp.te.tensor import Tensor

# The CUDA template of each CPU template a graph node can map to.
CUDA_TEMPLATES = {"conv2d_nchw": "conv2d_nchw_cuda", "matmul": "matmul_cuda"}


def workload_of(graph: Graph, node: Node, target_kind: str = "llvm") -> tuple[str, tuple[Any, ...]] | None:
    """The template name and arguments computing ``node`` alone on a target of ``target_kind`` (``llvm`` or
    ``cuda``), or None when no template matches it."""
    workload = _cpu_workload(graph, node)
    if workload is None or target_kind != "cuda":
        return workload
    name = CUDA_TEMPLATES.get(workload[0])
    return (name, workload[1]) if name is not None else None


def _cpu_workload(graph: Graph, node: Node) -> tuple[str, tuple[Any, ...]] | None:
    if node.op == "conv2d_nchwc":
        return _nchwc_workload(graph, node)
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
    """A blocked convolution's ``conv2d_nchwc_blocked`` workload (as the CPU schedule reads it off the compute)."""
    from tcomp.ops.cpu.conv2d import blocked_conv_workload

    x, w = graph.type_of(node.inputs[0]), graph.type_of(node.inputs[1])
    args = blocked_conv_workload(x.shape, w.shape, node.attr("strides"), node.attr("pads"), node.attr("dilations"),
                                 x.dtype)
    return ("conv2d_nchwc_blocked", args) if args is not None else None


def nchwc_tile_chooser(target: Target, records: Any, chosen: list[bool]) -> Any:
    """The tile chooser (``tcomp.ops.cpu.conv2d.nchwc_tiles``) that gives each blocked convolution the tile of its
    best ``conv2d_nchwc_blocked`` record; appends True to ``chosen`` for each one it gives."""
    from tcomp.autotune.task import create_task
    from tcomp.autotune.templates.cpu.conv2d import nchwc_tile_of

    def choose(op: Any, workload: tuple[Any, ...]) -> Any:
        config = records.query(create_task("conv2d_nchwc_blocked", workload, target))
        if config is None:
            return None
        chosen.append(True)
        return nchwc_tile_of(config)

    return choose


def as_dispatch_context(records: Any) -> Any:
    """A dispatch context from a records path (or the object itself when it already answers ``query``)."""
    if records is None or hasattr(records, "query"):
        return records
    if isinstance(records, (str, os.PathLike)):
        from tcomp.autotune.dispatch import ApplyHistoryBest

        return ApplyHistoryBest(records)
    raise TypeError(f"tuning_records must be a path or a dispatch context, got {type(records).__name__}")


def _task(graph: Graph, node: Node, target: Target) -> Any:
    workload = workload_of(graph, node, target.kind)
    if workload is None:
        return None
    from tcomp.autotune.task import create_task

    return create_task(workload[0], workload[1], target)


def has_record(graph: Graph, node: Node, target: Target, records: Any) -> bool:
    """Whether ``records`` holds a config for ``node``'s workload."""
    if records is None:
        return False
    task = _task(graph, node, target)
    return task is not None and records.query(task) is not None


_DECISIONS: dict[tuple[str, int], bool] = {}
_DECISIONS_LOCK = threading.Lock()


def use_record(graph: Graph, node: Node, target: Target, records: Any) -> bool:
    """Whether ``node`` should be compiled from its tuning record: a record exists and its measured cost is below
    the default schedule's (``default_cost``). A context that reports no costs is trusted. Blocked convolutions
    never are: their records give the tile of the fused kernel instead (``nchwc_tile_chooser``)."""
    if node.op == "conv2d_nchwc":
        return False
    if node.op == "conv2d" and target.kind == "llvm" and hasattr(records, "best_record"):
        task = _task(graph, node, target)  # without an NCHW record it is blocked and tuned by its tile: no miss
        if task is None or records.best_record(task) is None:
            return False
    if not has_record(graph, node, target, records):
        return False
    task = _task(graph, node, target)
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


def default_cost(graph: Graph, node: Node, target: Target) -> float:
    """Seconds per call of ``node``'s default kernel as the graph compiles it (blocked layout and packed weights
    for a convolution; layout transforms of the activations not counted), the best of a few timed repeats."""
    from dataclasses import replace

    from tcomp.graph.infer import infer_types
    from tcomp.graph.kernels import compile_node
    from tcomp.graph.passes.alter_layout import alter_layout
    from tcomp.graph.passes.fold_constants import fold_constants
    from tcomp.ir import dtype as dt

    rng = np.random.default_rng(0)
    source = node.inputs[0]
    params = {}
    for name in node.inputs[1:]:
        t = graph.type_of(name)
        params[name] = graph.params.get(name, rng.standard_normal(t.shape).astype(dt.to_numpy(t.dtype)))
    probe_node = replace(node, outputs=("probe_out",))
    probe = infer_types(Graph("probe", (source,), ("probe_out",), (probe_node,), params,
                              {source: graph.type_of(source)}))
    if target.kind == "llvm":  # cuda graphs keep NCHW
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
    task = _task(graph, node, target)
    if task is None:
        return None
    config = records.query(task)
    if config is None:
        return None
    schedule, tensors = task.instantiate(config)
    return schedule, list(tensors)


def extract_tasks(graph: Graph, target: Target | str | None = None) -> list[Any]:
    """One tuning task per distinct conv / matmul workload of ``graph`` (a graph before fusion), in graph order."""
    return [task for task, _ in extract_task_counts(graph, target)]


def extract_task_counts(graph: Graph, target: Target | str | None = None) -> list[tuple[Any, int]]:
    """Each distinct tunable workload of ``graph`` as a task, with how many nodes of the graph run it."""
    from tcomp.target import as_target

    resolved = as_target(target)
    counts: dict[str, list[Any]] = {}
    for node in graph.nodes:
        task = _task(graph, node, resolved)
        if task is not None:
            counts.setdefault(task.key, [task, 0])[1] += 1
    return [(task, count) for task, count in counts.values()]


def extract_model_tasks(model: Any, target: Target | str | None = None,
                        input_shapes: dict[str, list[int]] | None = None) -> list[Any]:
    """The tuning tasks of a model file (``tcomp tune model.onnx``): the graph after constant folding and
    simplification (batch norms folded into convolutions) and, for CPUs, the blocked layout; before fusion."""
    return [task for task, _ in extract_model_task_counts(model, target, input_shapes)]


def extract_model_task_counts(model: Any, target: Target | str | None = None,
                              input_shapes: dict[str, list[int]] | None = None) -> list[tuple[Any, int]]:
    """``extract_model_tasks`` with how many operators of the model run each task (to weigh its kernel time)."""
    from tcomp.graph.compiler import compile_graph
    from tcomp.graph.pipeline import PassOptions
    from tcomp.target import as_target

    # CPU convolutions are tuned in the blocked layout the compiled model uses
    blocked = as_target(target).kind == "llvm"
    options = PassOptions(alter_layout=blocked, fuse_ops=False, plan_memory=False)
    return extract_task_counts(compile_graph(model, target, input_shapes=input_shapes, options=options), target)
