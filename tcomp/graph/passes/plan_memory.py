"""``plan_memory``: static storage assignment for the values the executor allocates, by liveness.

Rewrite: none; the graph is returned with ``meta["memory_plan"]``, a ``MemoryPlan`` mapping every graph input and
node output to a storage id and a byte offset in it, the storages' sizes, the in-place pairs and the elided
concatenations.

Assumes: each top-level node is one kernel, run in node order; a kernel reads all its inputs and writes all its
outputs (so an input's storage is free for others only after the last node reading it).

Algorithm (TVM's graph memory planner): walk the nodes in order. An output first tries to take over, in place, the
storage of an input that dies at this node, has the same byte size and element size, and which the node reads only
at the output's own flat index (``inplace_pairs``: elementwise and reshape chains, a single output). Otherwise it
takes the free storage that fits best (the smallest one at least as large, else the largest one, grown). After the
node, the storages of inputs read for the last time are released. Graph inputs and outputs own their storage
(never shared). Parameters are not planned: they are bound once.

A node that only reinterprets its input's bytes (``reshape``, ``identity``, inference ``dropout``, alone or fused)
and whose output took its input's storage in place runs no kernel (``views``): the output already holds its
bytes. A top-level ``concat`` marked ``in_place`` (``concat_in_place``) is elided: its parts are placed at their byte
offsets in its result's storage (nested in-place concats in the outermost one's), which is taken when the first of
them is produced and released when the last of them, and the result, are dead. A value in such a region is never an
in-place pair's input or output.

Guarantees: two values share bytes of a storage only if their lifetimes do not overlap, or they are an in-place
pair, or one is a part of an elided concat and the other its result. ``unplanned_bytes`` (every activation in its
own buffer) and ``planned_bytes`` (the storages' total) are reported.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from tcomp.graph.ir import Graph, Node, TensorType
from tcomp.graph.op import OpPattern, get_op
from tcomp.graph.passes.concat_in_place import contiguous_parts
from tcomp.ir import dtype as dt

_FLAT_IDENTITY_OPS = frozenset({"reshape", "identity", "dropout"})


@dataclass(frozen=True)
class MemoryPlan:
    storage_of: Mapping[str, int]
    storage_bytes: tuple[int, ...]
    inplace: Mapping[str, tuple[tuple[str, str], ...]]  # node name -> (input value, output value) sharing storage
    unplanned_bytes: int  # activations (node outputs), each in its own buffer
    planned_bytes: int  # storages holding activations after planning
    input_bytes: int  # graph inputs
    peak_live_bytes: int = 0  # the most activation bytes alive at once (a lower bound for any plan)
    offset_of: Mapping[str, int] = field(default_factory=dict)  # byte offset in its storage, where not 0
    elided: tuple[str, ...] = ()  # in-place concat nodes: their parts are written in place, no kernel runs
    views: tuple[str, ...] = ()  # nodes whose output is their input's bytes in place: no kernel runs

    def summary(self) -> str:
        ratio = self.planned_bytes / self.unplanned_bytes if self.unplanned_bytes else 1.0
        pairs = sum(len(p) for p in self.inplace.values())
        return (f"activation memory: {self.unplanned_bytes / 2**20:.2f} MiB unplanned -> "
                f"{self.planned_bytes / 2**20:.2f} MiB planned ({ratio:.1%}; peak live "
                f"{self.peak_live_bytes / 2**20:.2f} MiB), {len(self.storage_bytes)} storages, {pairs} in-place, "
                f"{len(self.elided)} concats in place, {len(self.views)} views")


def _flat_identity(scope: Graph, member: Node, value: str) -> bool:
    """Whether ``member`` reads ``value`` only at the flat index of the element it writes."""
    if member.op in _FLAT_IDENTITY_OPS:
        return True
    pattern = get_op(member.op).pattern
    if pattern > OpPattern.BROADCAST:
        return False
    out = scope.type_of(member.outputs[0])
    return len(member.outputs) == 1 and scope.type_of(value).shape == out.shape


def inplace_pairs(graph: Graph, node: Node) -> list[tuple[str, str]]:
    """(input, output) pairs of ``node`` that may share storage: the output element at flat index ``i`` depends on
    the input only through its element ``i``."""
    if len(node.outputs) != 1:
        return []
    output = node.outputs[0]
    out_type = graph.type_of(output)
    scope: Graph = node.attr("body") if node.op == "fused" else graph
    members = scope.nodes if node.op == "fused" else (node,)
    for member in members:
        if member.op not in _FLAT_IDENTITY_OPS and get_op(member.op).pattern > OpPattern.BROADCAST:
            return []
    result = []
    for candidate in dict.fromkeys(i for i in node.inputs if i):
        if candidate in graph.params or not _same_storage_size(graph.type_of(candidate), out_type):
            continue
        if _reaches_only_by_identity(scope, members, candidate, output):
            result.append((candidate, output))
    return result


def is_view(node: Node) -> bool:
    """Whether ``node``'s one output is its input's bytes reinterpreted: its members are all reshapes or copies."""
    return len(node.outputs) == 1 and all(member.op in _FLAT_IDENTITY_OPS for member in node.members())


def _same_storage_size(a: TensorType, b: TensorType) -> bool:
    return a.nbytes == b.nbytes and dt.storage_bytes(a.dtype) == dt.storage_bytes(b.dtype)


def _reaches_only_by_identity(scope: Graph, members: tuple[Node, ...] | list[Node], source: str, target: str) -> bool:
    derived = {source}
    for member in members:
        reads = [i for i in member.inputs if i in derived]
        if not reads:
            continue
        if not all(_flat_identity(scope, member, value) for value in reads):
            return False
        derived.update(member.outputs)
    return target in derived and target != source


def concat_regions(graph: Graph) -> tuple[dict[str, tuple[str, int]], tuple[str, ...]]:
    """The elided concats (top-level ``concat`` nodes marked ``in_place`` whose parts are node outputs, distinct, no
    graph output and held by no earlier one) and, for each of their parts, the outermost elided result holding it
    and its byte offset there."""
    produced = {out for node in graph.nodes for out in node.outputs}
    fixed = set(graph.inputs) | set(graph.outputs)
    parent: dict[str, tuple[str, int]] = {}
    elided: list[str] = []
    for node in graph.nodes:
        if not node.attr("in_place") or not contiguous_parts(graph, node):
            continue
        parts = node.inputs
        if len(set(parts)) != len(parts) or any(p not in produced or p in fixed or p in parent for p in parts):
            continue
        offset = 0
        for part in parts:
            parent[part] = (node.outputs[0], offset)
            offset += graph.type_of(part).nbytes
        elided.append(node.name)
    placed: dict[str, tuple[str, int]] = {}
    for part in parent:
        value, offset = part, 0
        while value in parent:
            value, step = parent[value]
            offset += step
        placed[part] = (value, offset)
    return placed, tuple(elided)


def plan_memory(graph: Graph, enable_reuse: bool = True, enable_inplace: bool = True) -> Graph:
    """Plan storage for ``graph`` (usually after ``fuse_ops``); see the module docstring. Without
    ``enable_inplace`` there are neither in-place pairs nor elided concats."""
    last_use: dict[str, int] = {}
    for index, node in enumerate(graph.nodes):
        for name in node.inputs:
            if name:
                last_use[name] = index
    pinned = set(graph.outputs) | set(graph.inputs)
    placed, elided = concat_regions(graph) if enable_inplace else ({}, ())
    in_region = set(placed) | {root for root, _ in placed.values()}
    region_storage: dict[str, int] = {}  # outermost elided result -> its storage
    storage_of: dict[str, int] = {}
    offset_of: dict[str, int] = {}
    sizes: list[int] = []
    free: list[int] = []
    holders: dict[int, int] = {}  # storage id -> number of live values in it

    def allocate(nbytes: int) -> int:
        if enable_reuse and free:
            fitting = [s for s in free if sizes[s] >= nbytes]
            chosen = min(fitting, key=lambda s: sizes[s]) if fitting else max(free, key=lambda s: sizes[s])
            free.remove(chosen)
            sizes[chosen] = max(sizes[chosen], nbytes)
            return chosen
        sizes.append(nbytes)
        return len(sizes) - 1

    def place(value: str) -> None:
        root, offset = placed.get(value, (value, 0))
        if root not in region_storage:
            nbytes = graph.type_of(root).nbytes
            storage = allocate_fresh(sizes, nbytes) if root in pinned else allocate(nbytes)
            region_storage[root] = storage
            holders[storage] = 1 if root in pinned else 0  # a graph output's storage is never released
        storage_of[value] = region_storage[root]
        holders[storage_of[value]] += 1
        if offset:
            offset_of[value] = offset

    input_bytes = 0
    for name in graph.inputs:
        nbytes = graph.type_of(name).nbytes
        storage_of[name] = allocate_fresh(sizes, nbytes)
        holders[storage_of[name]] = 1
        input_bytes += nbytes
    inplace: dict[str, tuple[tuple[str, str], ...]] = {}
    views: list[str] = []
    unplanned = 0
    for index, node in enumerate(graph.nodes):
        taken_inputs: set[str] = set()
        pairs: list[tuple[str, str]] = []
        for output in node.outputs:
            t = graph.type_of(output)
            unplanned += t.nbytes
            if output in in_region:
                place(output)
                continue
            source = None
            if enable_inplace and output not in pinned:
                for candidate, target in inplace_pairs(graph, node):
                    if (target == output and candidate not in pinned and candidate not in taken_inputs
                            and candidate not in in_region and last_use.get(candidate) == index
                            and holders.get(storage_of.get(candidate, -1)) == 1):
                        source = candidate
                        break
            if source is not None:
                storage_of[output] = storage_of[source]
                holders[storage_of[output]] += 1
                taken_inputs.add(source)
                pairs.append((source, output))
            elif output in pinned:
                storage_of[output] = allocate_fresh(sizes, t.nbytes)
                holders[storage_of[output]] = 1
            else:
                storage_of[output] = allocate(t.nbytes)
                holders[storage_of[output]] = 1
        if pairs:
            inplace[node.name] = tuple(pairs)
            if is_view(node):
                views.append(node.name)
        released = [name for name in dict.fromkeys(node.inputs) if name and last_use.get(name) == index]
        released += [name for name in node.outputs if name not in last_use]
        for name in released:
            if name in pinned or name not in storage_of:
                continue
            storage = storage_of[name]
            holders[storage] -= 1
            if holders[storage] == 0:
                free.append(storage)
    activation_storages = {storage_of[o] for node in graph.nodes for o in node.outputs}
    planned = sum(sizes[s] for s in activation_storages)
    plan = MemoryPlan(storage_of, tuple(sizes), inplace, unplanned, planned, input_bytes,
                      peak_live_bytes(graph, last_use, set(graph.outputs)), offset_of, elided, tuple(views))
    meta = dict(graph.meta)
    meta["memory_plan"] = plan
    return replace(graph, meta=meta)


def peak_live_bytes(graph: Graph, last_use: dict[str, int], pinned: set[str]) -> int:
    """The most bytes of node outputs alive at once: while a node runs, its outputs and every value produced before
    and read at or after it (graph outputs stay alive)."""
    live: dict[str, int] = {}
    peak = 0
    for index, node in enumerate(graph.nodes):
        for output in node.outputs:
            live[output] = graph.type_of(output).nbytes
        peak = max(peak, sum(live.values()))
        for name in list(live):
            if name not in pinned and last_use.get(name, index) <= index:
                del live[name]
    return peak


def allocate_fresh(sizes: list[int], nbytes: int) -> int:
    sizes.append(nbytes)
    return len(sizes) - 1


def no_plan(graph: Graph) -> MemoryPlan:
    """The plan without reuse or in-place: every value in its own storage (what the executor uses when planning is
    switched off)."""
    return plan_memory(graph, enable_reuse=False, enable_inplace=False).meta["memory_plan"]
