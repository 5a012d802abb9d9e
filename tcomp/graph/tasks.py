"""The tuning tasks of a model: one per distinct convolution or matrix-product workload a template can tune.

``extract_tasks(graph, target)`` lists them for a graph before fusion (``extract_task_counts`` also says how many
operators run each); ``extract_model_tasks(model)`` imports a model and runs the passes that decide the workloads
(constant folding, simplification and, where the backend compiles convolutions blocked, the blocked layout) first.
The autotuner takes these tasks; it never sees a graph.
"""

from __future__ import annotations

from typing import Any

from tcomp.autotune.task import Task
from tcomp.backend import backend_for
from tcomp.graph.compiler import compile_graph
from tcomp.graph.ir import Graph
from tcomp.graph.pipeline import PassOptions
from tcomp.graph.tuning import node_task
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
    simplification (batch norms folded into convolutions) and, where the backend compiles convolutions blocked, the
    blocked layout; before fusion."""
    return [task for task, _ in extract_model_task_counts(model, target, input_shapes)]


def extract_model_task_counts(model: Any, target: Target | str | None = None,
                              input_shapes: dict[str, list[int]] | None = None) -> list[tuple[Task, int]]:
    """``extract_model_tasks`` with how many operators of the model run each task (to weigh its kernel time)."""
    blocked = backend_for(target).graph.blocked_convolutions  # tuned in the layout the compiled model uses
    # products keep their operator (gemm_panels is skipped when compiling with records, so they are tuned as such)
    options = PassOptions(gemm_panels=False, alter_layout=blocked, fuse_ops=False, plan_memory=False)
    return extract_task_counts(compile_graph(model, target, input_shapes=input_shapes, options=options), target)
