"""``fold_constants``: replace nodes whose inputs are all constants by the constants they compute.

Rewrite, node by node in order (so whole constant subgraphs fold):

- a node whose outputs type inference already knows (small integer values: ``shape_of`` and shape arithmetic) is
  replaced by those values;
- a node whose inputs are all parameters (or that has no inputs, as ``constant_of_shape``) is compiled with its
  default schedule, run once, and replaced by its outputs as new parameters. The values are computed by
  generated code, exactly as the node would compute them at run time: an integer division by zero is a
  ``GraphError`` naming the node, as onnxruntime refuses such a model. Where numpy gives those very bits
  (``NUMPY_MOVES``: reshapes, transposes and layout transforms of any type; ``NUMPY_FLOAT_OPS``: negations,
  additions, subtractions, products, quotients and square roots of floats, which IEEE 754 rounds correctly in both,
  one operation per node), the operator's numpy evaluation
  (``OpDef.evaluate``) computes them instead, with no kernel to compile (ResNet-50's batch norms folded into its
  convolutions, and their weights' layouts: folding 2.8 -> 0.9 s, the whole compile 8.4 -> 5.9 s).

Assumes: a typed graph before fusion. Never folds a stateful node (random numbers: new ones every run). Does not
fold a node whose outputs would exceed ``MAX_FOLD_BYTES`` (it stays a kernel). The limit is 1 GiB: exports that build
their weights at run time (``ConstantOfShape`` of VGG-19's 392 MiB classifier weight in the onnx package's light
models) fold them once, as onnxruntime does, instead of writing them at every inference. Dead nodes and unused
parameters are dropped. Returns the same graph when nothing folds.

With ``constants`` (``tcomp.graph.shared_constants``), a node computed before from the same parameter arrays (a
weight transposed or changed in layout, in another specialization of the model) takes the arrays computed then.

The nodes producing the values named in ``run_time`` stay nodes even where their values are known: those values
come from dimensions that vary from run to run (``tcomp.graph.dynamic``), so the kernels compute them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from functools import partial

import numpy as np

from tcomp import config
from tcomp.backend import build, lower
from tcomp.graph.edit import with_nodes
from tcomp.graph.ir import Graph, GraphError, Node
from tcomp.graph.kernels import compile_node, node_tensors
from tcomp.graph.op import get_op, is_stateful
from tcomp.graph.shared_constants import SharedConstants, derive
from tcomp.ir import dtype as dt
from tcomp.ir.stmt import CHECK_DIVISION
from tcomp.runtime import llvm_pool
from tcomp.runtime.errors import KernelError
from tcomp.schedule.schedule import create_schedule
from tcomp.target import Target, as_target

MAX_FOLD_BYTES = 1 << 30
# operators whose numpy evaluation gives the generated code's values bit for bit (module docstring): moves of any
# type, and float arithmetic
NUMPY_MOVES = frozenset({"reshape", "transpose", "layout_transform"})
NUMPY_FLOAT_OPS = frozenset({"negative", "add", "subtract", "multiply", "divide", "sqrt"})
_FLOATS = frozenset({"float32", "float64"})


def evaluate_node(graph: Graph, node: Node, params: dict[str, np.ndarray], target: Target,
                  plain: bool = False) -> list[np.ndarray]:
    """Compile ``node`` (whose inputs are all in ``params``) and return its outputs. ``plain``: with a schedule of
    plain loop nests (no tiling), which every shape takes, zero extents included."""
    scope = replace(graph, params=params)
    if plain:
        computed = node_tensors(scope, node)
        schedule = create_schedule([t.op for t in computed.outputs])
        func = lower(schedule, [*computed.inputs, *computed.outputs], target=target)
        module = build(func.with_attr(CHECK_DIVISION, True), target=target)
        names = computed.input_names
    else:
        kernel = compile_node(scope, node, target)
        module, names = kernel.module, kernel.args[: kernel.num_inputs]
    arrays = [np.require(params[name], requirements="C") for name in names]
    outputs = [np.empty(graph.type_of(o).shape, dtype=dt.to_numpy(graph.type_of(o).dtype)) for o in node.outputs]
    try:
        module(*arrays, *outputs)
    except KernelError as exc:  # a failed check of the generated code (an integer division by zero ...)
        raise GraphError(f"node {node.name} ({node.op}): evaluating its value failed: {exc}") from None
    return outputs


def _in_numpy(graph: Graph, node: Node) -> bool:
    """Whether numpy computes ``node``'s values as its kernel would (``NUMPY_MOVES``, ``NUMPY_FLOAT_OPS``)."""
    if get_op(node.op).evaluate is None:
        return False
    if node.op in NUMPY_MOVES:
        return True
    return node.op in NUMPY_FLOAT_OPS and all(graph.type_of(v).dtype in _FLOATS for v in (*node.inputs, *node.outputs)
                                              if v)


def _numpy_values(graph: Graph, node: Node, params: dict[str, np.ndarray]) -> list[np.ndarray] | None:
    """``node``'s outputs by its numpy evaluation, where ``_in_numpy``; None where it does not apply or its arrays
    are not of the outputs' types."""
    if not _in_numpy(graph, node):
        return None
    with np.errstate(all="ignore"):  # infinities and NaNs are values here, as in the kernels
        values = get_op(node.op).evaluate(node, [params[i] for i in node.inputs if i])  # type: ignore[misc]
    outputs = []
    for name, value in zip(node.outputs, values, strict=True):
        want = graph.type_of(name)
        value = np.asarray(value)
        if value.shape != tuple(want.shape) or value.dtype != dt.to_numpy(want.dtype):
            return None
        outputs.append(np.asarray(value, order="C"))  # (ascontiguousarray would make a scalar 1-D)
    return outputs


def _evaluated(graph: Graph, node: Node, params: dict[str, np.ndarray], target: Target) -> tuple[np.ndarray, ...]:
    values = _numpy_values(graph, node, params)
    return tuple(values if values is not None else evaluate_node(graph, node, params, target))


def _key(graph: Graph, node: Node) -> tuple:
    return ("fold", node.op, node.attrs, tuple(graph.type_of(o) for o in node.outputs),
            tuple(bool(i) for i in node.inputs))


def _stays(node: Node, run_time: frozenset[str]) -> bool:
    """A fused group, or a node whose values vary from run to run: never folded."""
    return node.op == "fused" or not run_time.isdisjoint(node.outputs)


def _known(graph: Graph, node: Node) -> bool:
    """Type inference knows the node's outputs (shape arithmetic): they are taken, not computed."""
    return bool(node.outputs) and all(o in graph.values for o in node.outputs)


def _foldable(graph: Graph, node: Node, params: Mapping[str, np.ndarray]) -> bool:
    return (all(i in params for i in node.inputs if i) and not is_stateful(node)
            and sum(graph.type_of(o).nbytes for o in node.outputs) <= MAX_FOLD_BYTES)


def _start_compiling(graph: Graph, target: Target, constants: SharedConstants | None,
                     run_time: frozenset[str]) -> None:
    """Compile the kernels of the nodes that fold from the graph's own parameters before any runs: their LLVM
    work goes to the compile processes together (``tcomp.runtime.llvm_pool``), and folding finds them built. A
    kernel that fails to build here fails again where the node folds, and says so there."""
    if llvm_pool.pool() is None:
        return  # compiled where they fold, one after the other
    ready = [node for node in graph.nodes
             if not _stays(node, run_time) and not _known(graph, node) and not _in_numpy(graph, node)
             and _foldable(graph, node, graph.params)
             and not (constants is not None and constants.holds(
                 _key(graph, node), [graph.params[i] for i in node.inputs if i]))]
    for node in ready[: config.current().build_cache_size // 2]:  # the kernel cache keeps them until they fold
        try:
            compile_node(graph, node, target)
        except Exception:  # noqa: BLE001 - reported where the node folds
            continue


def fold_constants(graph: Graph, target: Target | str | None = None,
                   constants: SharedConstants | None = None, run_time: frozenset[str] = frozenset()) -> Graph:
    resolved = as_target(target)
    params = dict(graph.params)
    _start_compiling(graph, resolved, constants, run_time)
    kept: list[Node] = []
    changed = False
    for node in graph.nodes:
        if _stays(node, run_time):
            kept.append(node)
            continue
        if _known(graph, node):
            for o in node.outputs:
                params[o] = graph.values[o]
            changed = True
            continue
        if _foldable(graph, node, params):
            sources = [params[i] for i in node.inputs if i]
            for name, value in zip(node.outputs, derive(constants, _key(graph, node), sources, partial(
                    _evaluated, graph, node, params, resolved))):
                params[name] = value
            changed = True
            continue
        kept.append(node)
    if not changed:
        return graph
    return with_nodes(graph, kept, params)
