"""Lowering graph nodes to compiled kernels: one kernel per top-level node (a fused group or a single operator).

``node_tensors(graph, node)`` builds the tensor expressions of a node: a placeholder per input value, the operator
lowerings of the group's members in order, and the tensors of the values the node outputs. Parameters of one
element are baked into the code as constants. ``compile_node`` schedules them (the target's default schedule, or a
tuned template config, see ``tuning.py``) and builds a ``Module``.

Kernels are named ``<ops>_<structural hash>`` so that identical groups get identical functions (and share one
compiled artifact through ``tcomp.build``'s cache), while different functions never share a name. A per-process
cache keyed by the group's canonical signature skips lowering for groups seen before.
"""

from __future__ import annotations

import dataclasses
import threading
import weakref
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import numpy as np

from tcomp import config, te
from tcomp.backend import backend_for, build, lower
from tcomp.graph.ir import Graph, GraphError, Node, TensorType
from tcomp.graph.op import LowerContext, compiled_in, get_op
from tcomp.graph.opdefs.common import fill, safe_name
from tcomp.ir import dtype as dt
from tcomp.ir.stmt import CHECK_DIVISION, PrimFunc
from tcomp.ir.structural import structural_digest
from tcomp.lru import LRUCache
from tcomp.ops.utils import as_int, same_dim
from tcomp.runtime.module import Module
from tcomp.schedule.schedule import Schedule
from tcomp.target import Target
from tcomp.te.tensor import PlaceholderOp, Tensor


@dataclass(frozen=True)
class NodeTensors:
    """The tensor expressions of one node: ``inputs`` (placeholders, one per kernel input value, in
    ``input_names`` order) and ``outputs`` (one per value in ``output_names``)."""

    input_names: tuple[str, ...]
    inputs: tuple[Tensor, ...]
    output_names: tuple[str, ...]
    outputs: tuple[Tensor, ...]


@dataclass(frozen=True)
class Kernel:
    """A compiled node: call ``module`` with the arrays of ``args`` (inputs, then outputs)."""

    name: str
    node_name: str
    args: tuple[str, ...]
    num_inputs: int
    module: Module
    tuned: bool = False
    sizes: tuple[int, ...] = ()  # the values of the function's size_vars (symbolic dimensions), in order


@dataclass(frozen=True)
class KernelTuning:
    """What tuning records change in ``compile_node`` (``tuning.kernel_tuning`` makes it): ``tuned_schedule(graph,
    node, target)`` gives a node's template schedule when its record is used, else None; ``recorded_tiles(graph,
    node, target, chosen)`` is a context in which the default schedule of ``node`` takes the tiles the records give
    (appending to ``chosen`` for each). Kernels are cached per ``records`` object."""

    records: Any
    tuned_schedule: Callable[[Graph, Node, Target], tuple[Schedule, list[Tensor]] | None]
    recorded_tiles: Callable[[Graph, Node, Target, list[bool]], AbstractContextManager[Any]]


CompileFunc = Callable[[Graph, Node, Target, "KernelTuning | None", Sequence[int]], Kernel]


def body_of(node: Node) -> tuple[Node, ...]:
    """The operator nodes a top-level node stands for (the members of a fused group, or the node itself)."""
    if node.op == "fused":
        body: Graph = node.attr("body")
        return body.nodes
    return (node,)


def kernel_inputs(graph: Graph, node: Node) -> tuple[str, ...]:
    """The values a node's kernel takes as arguments: its inputs without the one-element parameters baked in."""
    return tuple(name for name in dict.fromkeys(i for i in node.inputs if i) if not _baked(graph, node, name))


def baked_params(graph: Graph, node: Node) -> tuple[str, ...]:
    """The one-element parameters that a node's kernel has compiled in as constants."""
    names = dict.fromkeys(name for member in body_of(node) for name in member.inputs if name)
    return tuple(name for name in names if _baked(graph, node, name))


def _baked(graph: Graph, node: Node, name: str) -> bool:
    value = _param(graph, node, name)
    return value is not None and compiled_in(value, body_of(node))


def _param(graph: Graph, node: Node, name: str) -> np.ndarray | None:
    if name in graph.params:
        return graph.params[name]
    if node.op == "fused":
        body: Graph = node.attr("body")
        return body.params.get(name)
    return None


def node_tensors(graph: Graph, node: Node) -> NodeTensors:
    members = body_of(node)
    scope: Graph = node.attr("body") if node.op == "fused" else graph
    tensors: dict[str, Tensor] = {}
    input_names = kernel_inputs(graph, node)
    placeholders = []
    for position, name in enumerate(input_names):
        t = graph.type_of(name)
        placeholder = te.placeholder(t.shape, t.dtype, name=f"in{position}_{safe_name(name)[:24]}")
        tensors[name] = placeholder
        placeholders.append(placeholder)
    for member in members:
        for name in member.inputs:
            if name and name not in tensors:
                value = _param(graph, node, name)
                if value is None or not compiled_in(value, members):
                    raise GraphError(f"node {node.name}: value {name!r} is neither an input nor a constant")
                tensors[name] = fill(value.shape, value.reshape(-1)[0].item(), dt.normalize(value.dtype),
                                     f"const_{safe_name(name)[:24]}")
        ctx = LowerContext(
            node=member,
            tensors=[tensors[i] if i else None for i in member.inputs],
            types=[scope.types.get(i) if i else None for i in member.inputs],
            out_types=[scope.type_of(o) for o in member.outputs],
            values=[_known(scope, i) for i in member.inputs],
        )
        outs = get_op(member.op).lower(ctx)
        if len(outs) != len(member.outputs):
            raise GraphError(f"node {member.name} ({member.op}): lowering made {len(outs)} outputs, "
                             f"expected {len(member.outputs)}")
        for name, tensor, t in zip(member.outputs, outs, ctx.out_types):
            _check_lowered(member, tensor, t)
            tensors[name] = tensor
    outputs = []
    for name in node.outputs:
        tensor = tensors[name]
        if isinstance(tensor.op, PlaceholderOp) or any(tensor is o for o in outputs):
            source = tensor
            tensor = te.compute(source.shape, lambda *i, s=source: s[i], name=f"copy_{safe_name(name)[:24]}",
                                      tag="elemwise")
        outputs.append(tensor)
    return NodeTensors(input_names, tuple(placeholders), node.outputs, tuple(outputs))


def _known(graph: Graph, name: str) -> np.ndarray | None:
    if not name:
        return None
    if name in graph.params:
        return graph.params[name]
    return graph.values.get(name)


def _check_lowered(node: Node, tensor: Tensor, expected: TensorType) -> None:
    same = len(tensor.shape) == len(expected.shape) and all(same_dim(a, b) for a, b in zip(tensor.shape,
                                                                                           expected.shape))
    if not same or tensor.dtype != expected.dtype:
        shape = [d if as_int(d) is None else as_int(d) for d in tensor.shape]
        raise GraphError(f"node {node.name} ({node.op}): lowering made {tensor.dtype}{shape}, type inference "
                         f"said {expected}")


# ---------------------------------------------------------------------------------------------------------------------
# signatures and compilation
def node_signature(graph: Graph, node: Node) -> str:
    """A canonical text of what a node computes: member operators, attributes, types and baked-in constants, with
    value names replaced by their order of appearance. Equal signatures compute the same function."""
    numbering: dict[str, str] = {}

    def ref(name: str) -> str:
        if not name:
            return "_"
        if name not in numbering:
            numbering[name] = f"v{len(numbering)}"
        return numbering[name]

    scope: Graph = node.attr("body") if node.op == "fused" else graph
    parts = []
    for name in kernel_inputs(graph, node):
        parts.append(f"in {ref(name)}:{graph.type_of(name)}")
    for member in body_of(node):
        args = []
        for name in member.inputs:
            value = _param(graph, node, name) if name and _baked(graph, node, name) else None
            if value is not None:
                args.append(f"const({value.dtype}:{value.reshape(-1)[0].item()!r}:{value.shape})")
            else:
                args.append(ref(name))
        attrs = [(k, v) for k, v in member.attrs if k != "body"]
        outs = [f"{ref(o)}:{scope.type_of(o)}" for o in member.outputs]
        parts.append(f"{','.join(outs)}={member.op}({','.join(args)};{attrs!r})")
    parts.append("out " + ",".join(ref(o) for o in node.outputs))
    return "\n".join(parts)


_KERNEL_CACHE: LRUCache[tuple[str, str, bool, int], tuple[PrimFunc, Module, tuple[int, ...], bool]] = LRUCache(
    lambda: config.current().build_cache_size)
_CACHE_LOCK = threading.Lock()
_WATCHED: set[int] = set()  # ids of tuning-record contexts whose kernels are cached


def _records_key(tuning: Any) -> int:
    """The cache's key for a tuning-record context (0 for none): its id, with its kernels dropped from the cache when
    it is collected (so a later object with the same id never meets them)."""
    if tuning is None:
        return 0
    key = id(tuning)
    with _CACHE_LOCK:
        if key in _WATCHED:
            return key
        _WATCHED.add(key)
    try:
        weakref.finalize(tuning, _forget_records, key)
    except TypeError:  # not weakly referenceable: do not cache its kernels
        with _CACHE_LOCK:
            _WATCHED.discard(key)
        return -1
    return key


def _forget_records(key: int) -> None:
    with _CACHE_LOCK:
        _WATCHED.discard(key)
        _KERNEL_CACHE.remove_if(lambda cached: cached[3] == key)


def kernel_base_name(node: Node) -> str:
    ops = [m.op for m in body_of(node)]
    unique = list(dict.fromkeys(ops))
    text = "_".join(unique[:4]) + ("_etc" if len(unique) > 4 else "")
    return "fused_" + text if node.op == "fused" else text


def lower_node(graph: Graph, node: Node, target: Target, tuning: KernelTuning | None = None,
               inplace: Sequence[int] = ()) -> tuple[PrimFunc, tuple[str, ...], bool]:
    """The optimized loop function of ``node`` for ``target`` (its default schedule, or the tuned template config),
    the kernel's argument values (inputs, then outputs), and whether tuning records chose its schedule. The function
    is what ``compile_node`` builds (``tcomp.backend.compile_artifact(func, target=target)`` gives the artifact
    without making a module)."""
    tuned = tuning.tuned_schedule(graph, node, target) if tuning is not None else None
    return _lower(graph, node, target, tuning, inplace, tuned)


def _lower(graph: Graph, node: Node, target: Target, tuning: KernelTuning | None, inplace: Sequence[int],
           tuned: tuple[Schedule, list[Tensor]] | None) -> tuple[PrimFunc, tuple[str, ...], bool]:
    may_alias = tuple(sorted(set(inplace)))
    tiled = False
    backend = backend_for(target)
    if tuned is not None:
        schedule, tensors = tuned
        args = kernel_inputs(graph, node) + node.outputs
    else:
        computed = node_tensors(graph, node)
        if tuning is not None:
            chosen: list[bool] = []
            with tuning.recorded_tiles(graph, node, target, chosen):
                schedule = backend.default_schedule(computed.outputs, target)
            tiled = bool(chosen)
        else:
            schedule = backend.default_schedule(computed.outputs, target)
        tensors = [*computed.inputs, *computed.outputs]
        args = computed.input_names + computed.output_names
    base = safe_name(kernel_base_name(node))[:48]
    func = lower(schedule, tensors, name=base, target=target)
    if may_alias:
        func = func.with_attr("may_alias", may_alias)
    func = func.with_attr(CHECK_DIVISION, True)  # ONNX: an integer division by zero is an error, as in onnxruntime
    func = dataclasses.replace(func, name=f"{base}_{structural_digest(func)[:8]}")
    return func, args, tuned is not None or tiled


def compile_node(graph: Graph, node: Node, target: Target, tuning: KernelTuning | None = None,
                 inplace: Sequence[int] = ()) -> Kernel:
    """Compile ``node`` for ``target`` (with its default schedule, or as ``tuning`` says). ``inplace`` lists
    kernel-argument positions that may share memory with another argument (in-place outputs and the inputs they
    overwrite): they are compiled without ``noalias``."""
    signature = node_signature(graph, node)
    may_alias = tuple(sorted(set(inplace)))
    tuned = tuning.tuned_schedule(graph, node, target) if tuning is not None else None
    records = _records_key(tuning.records if tuning is not None else None)  # records can choose conv tiles
    key = (signature + f"|alias={may_alias}", str(target), tuned is not None, records)
    with _CACHE_LOCK:
        cached = _KERNEL_CACHE.get(key) if tuned is None and records >= 0 else None
    if cached is not None:
        func, module, _, tiled = cached
        args = kernel_inputs(graph, node) + node.outputs
        return Kernel(func.name, node.name, args, len(args) - len(node.outputs), module, tiled)
    func, args, chosen = _lower(graph, node, target, tuning, inplace, tuned)
    module = build(func, target=target)
    with _CACHE_LOCK:
        if tuned is None and records >= 0:
            _KERNEL_CACHE.put(key, (func, module, may_alias, chosen))
    return Kernel(func.name, node.name, args, len(args) - len(node.outputs), module, chosen)


def clear_kernel_cache() -> None:
    with _CACHE_LOCK:
        _KERNEL_CACHE.clear()
