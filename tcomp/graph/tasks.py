"""The tuning tasks of a model: one per distinct convolution or matrix-product workload a template can tune.

``extract_tasks(graph, target)`` lists them for a graph before fusion (``extract_task_counts`` also says how many
operators run each); ``extract_model_tasks(model)`` imports a model and runs the passes that decide the workloads
(constant folding, simplification, the packed GEMM's panels and, where the backend compiles convolutions blocked,
the blocked layout) first.
The autotuner takes these tasks; it never sees a graph.
"""

from __future__ import annotations

from typing import Any

from tcomp.autotune.task import Task, create_task
from tcomp.backend import backend_for
from tcomp.graph.compiler import compile_graph
from tcomp.graph.ir import Graph
from tcomp.graph.passes.fuse_ops import fuse_ops
from tcomp.graph.pipeline import PassOptions
from tcomp.graph.tuning import node_task, panel_workloads
from tcomp.target import Target, as_target


def extract_tasks(graph: Graph, target: Target | str | None = None) -> list[Task]:
    """One tuning task per distinct conv / matmul workload of ``graph`` (a graph before fusion), in graph order."""
    return [task for task, _ in extract_task_counts(graph, target)]


def extract_task_counts(graph: Graph, target: Target | str | None = None) -> list[tuple[Task, int]]:
    """Each distinct tunable workload of ``graph`` as a task, with how many nodes of the graph run it."""
    resolved = as_target(target)
    counts: dict[str, list[Any]] = {}
    for node in graph.nodes:
        task = node_task(graph, node, resolved)
        if task is not None:
            counts.setdefault(task.key, [task, 0])[1] += 1
    return [(task, count) for task, count in counts.values()]


def extract_model_tasks(model: Any, target: Target | str | None = None,
                        input_shapes: dict[str, list[int]] | None = None) -> list[Task]:
    """The tuning tasks of a model file (``tcomp tune model.onnx``): the graph after constant folding and
    simplification (batch norms folded into convolutions), products with constant weights in the packed GEMM's
    panels (``panel_matmul`` workloads, where the backend stores them so) and, where the backend compiles
    convolutions blocked, the blocked layout; before fusion."""
    return [task for task, _ in extract_model_task_counts(model, target, input_shapes)]


def extract_model_task_counts(model: Any, target: Target | str | None = None,
                              input_shapes: dict[str, list[int]] | None = None) -> list[tuple[Task, int]]:
    """``extract_model_tasks`` with how many kernels of the model run each task (to weigh its kernel time).
    Blocked convolutions and products from panels are read off the fused kernels that compute them, after the
    other tasks: a blocked convolution's task holds its epilogue (``tuning.conv_epilogue``), and the views fused in
    front of a product decide whether its rows are read in place."""
    resolved = as_target(target)
    backend = backend_for(resolved).graph
    # tuned in the layout the compiled model uses; products as compiled: from their panels where gemm_panels
    # stores them so (their records give the fused kernel its tile), else as matmul / dense
    options = PassOptions(alter_layout=backend.blocked_convolutions, fuse_ops=False, plan_memory=False)
    graph = compile_graph(model, resolved, input_shapes=input_shapes, options=options)
    counted = [(task, count) for task, count in extract_task_counts(graph, resolved) if task.name not in _FUSED]
    if not any(node.op in ("panel_matmul", "conv2d_nchwc") for node in graph.nodes):
        return counted
    fused = fuse_ops(graph, absorb_views=backend.views)  # as the pipeline fuses it (``pipeline.default_passes``)
    kernels: dict[str, list[Any]] = {}
    for node in fused.nodes:
        convolution = node_task(fused, node, resolved)
        tasks = [convolution] if convolution is not None and convolution.name in _FUSED else []
        tasks += [create_task("panel_matmul", w, resolved) for w in panel_workloads(fused, node, resolved)]
        for task in tasks:
            kernels.setdefault(task.key, [task, 0])[1] += 1
    return counted + [(task, count) for task, count in kernels.values()]


# the tasks of operators tuned as the fused kernel that runs them
_FUSED = ("conv2d_nchwc_blocked", "panel_matmul")
