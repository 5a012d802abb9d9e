"""Executors for a model compiled once for its symbolic dimensions (``tcomp.graph.dynamic`` probes it).

``DynamicModel.executor(binding)`` gives an executor for the dimensions ``binding``, from kernels compiled once:

- the kernels that depend on the dimensions compile with them as arguments (``size_vars``), from the template's
  symbolic graph, except those whose tiles are chosen for their extents (matrix products, convolutions, pooling
  windows; a product of a constant weight in panels, float or 8-bit, takes a symbolic number of rows, a product
  whose columns and depth are numbers symbolic rows and batch, and a 2-d convolution or pooling window a symbolic
  batch) and those whose lowering needs numbers;
- where every kernel that depends on the dimensions takes them as arguments, one ``ResizingExecutor`` serves
  every binding up to a capacity (each dimension rounded up to a power of two, at least 64 for one dimension, 8
  each for two: a batch of prompts is not planned for 64 of them): its memory is planned at the
  capacity, and a run at other dimensions only sets the kernels' arguments and the shapes of the inputs and
  outputs. A plan made at the capacity serves a smaller binding when every size grows with the dimensions, no
  concatenation written in place has a part before its last whose size depends on them (the parts after it would
  move), and every output that takes over its input's storage has the input's byte size for all dimensions
  (``serves_smaller``);
- otherwise each binding gets an executor of its own, with its own memory plan, and every kernel that depends on
  the dimensions compiles for its exact shapes (a kernel compiled for symbolic dimensions runs a little slower than
  one compiled for numbers: it is worth it only where it saves every compilation). The binding still skips the
  import and the graph passes, and the kernels that do not depend on the dimensions.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from tcomp.backend import build
from tcomp.graph.dynamic import (
    LARGEST,
    PRIMES,
    SMALLEST,
    bytes_polynomial,
    instantiate,
    symbolic,
    template_fields,
    templated_dimensions,
    variables_for,
    varies,
    varying_axes,
)
from tcomp.graph.executor import ExecutorProgram, GraphExecutor, storage_view
from tcomp.graph.ir import Graph, Node
from tcomp.graph.kernels import (
    CompileFunc,
    Kernel,
    KernelTuning,
    compile_node,
    kernel_inputs,
    lower_node,
    node_signature,
)
from tcomp.graph.op import OpPattern, get_op
from tcomp.graph.passes.plan_memory import MemoryPlan, plan_memory
from tcomp.ir.stmt import PrimFunc
from tcomp.ops.utils import as_int
from tcomp.target import Target

logger = logging.getLogger(__name__)

SMALLEST_CAPACITY = 64  # the least a resizing executor's dimensions are planned for (their product, for several)
Assemble = Callable[[Graph, CompileFunc, type[GraphExecutor]], GraphExecutor]


# tiled operators whose schedule takes a symbolic number of rows (a prompt's length) at the speed of numbers
SYMBOLIC_ROWS = frozenset({"panel_matmul", "quantized_matmul"})
# tiled operators whose schedule takes a symbolic batch (the first axis of their input and output) at the speed of
# numbers: the tiles are chosen for one image, the batch's loop runs outside them
SYMBOLIC_BATCH = frozenset({"conv2d", "conv2d_nchwc", "conv2d_winograd_nchwc", "depthwise_conv2d_nchwc",
                            "max_pool2d_nchwc", "pool2d"})


def _tiled(node: Node, types: Mapping[str, Any], graph: Graph) -> bool:
    """Whether ``node`` holds a matrix product, convolution or pooling window whose tiles are chosen for its
    extents (a product of a weight in panels takes symbolic rows, a convolution or pooling window a symbolic
    batch, a product whose columns and depth are numbers symbolic rows and batch): it compiles for each binding's
    shapes. ``types``: the templates of the values' types; ``graph``: the symbolic graph that holds ``node``."""
    batch_only = all(set(varying_axes(types.get(v))) <= {0} for v in (*node.inputs, *node.outputs))
    body = node.attr("body") if node.op == "fused" else graph
    return any(get_op(m.op).pattern is OpPattern.OUT_ELEMWISE_FUSABLE and m.op not in SYMBOLIC_ROWS
               and not (batch_only and m.op in SYMBOLIC_BATCH) and not _numbers_across(m, body)
               for m in node.members())


def _numbers_across(node: Node, graph: Graph) -> bool:
    """Whether ``node`` is a ``matmul`` whose columns and depth are numbers for all values of the dimensions (B's
    columns contiguous): its blocked GEMM takes symbolic rows and batch (``dense.symbolic_rows_product``)."""
    if node.op != "matmul" or node.attr("transpose_b", False):
        return False
    a, out = graph.type_of(node.inputs[0]).shape, graph.type_of(node.outputs[0]).shape
    return len(a) >= 2 and len(out) >= 2 and as_int(a[-1]) is not None and as_int(out[-1]) is not None


class ResizingExecutor(GraphExecutor):
    """A ``GraphExecutor`` whose memory is planned for a capacity of the symbolic dimensions: ``resize(binding)``
    makes it run at dimensions ``binding`` (at most the capacity). ``bind`` tells it, once, the dimension of each
    size variable of each kernel (by its node's name) and the templates of the input and output types that depend
    on the dimensions."""

    def __init__(self, program: ExecutorProgram, addresses: Sequence[int], keep_alive: Any = None) -> None:
        super().__init__(program, addresses, keep_alive)
        self._sized: list[tuple[Any, tuple[str, ...]]] = []
        self._io_types: Mapping[str, Any] = {}
        self.binding: dict[str, int] = {}

    def bind(self, size_names: Mapping[str, tuple[str, ...]], io_types: Mapping[str, Any]) -> None:
        """Before the first ``resize``; the outputs' arrays get the memory of their capacity's sizes (an array a run
        returned then serves a later run, whatever its length)."""
        self._sized = [(sizes, size_names[spec.name]) for _, _, sizes, _, spec in self._calls
                       if size_names.get(spec.name)]
        self._io_types = io_types
        self._output_bytes = {name: self.program.types[name].nbytes for name in self.program.outputs}

    def resize(self, binding: Mapping[str, int]) -> None:
        if binding == self.binding:
            return
        for sizes, names in self._sized:
            for position, name in enumerate(names):
                sizes[position] = binding[name]
        program = self.program
        self._unbind((*program.inputs, *program.outputs))  # the caller's arrays had the last binding's shapes
        for name, type_template in self._io_types.items():
            t = instantiate(type_template, binding)
            program.types[name] = t
            if name in program.storage_of:
                storage = self._storage[program.storage_of[name]]
                self._place(name, storage_view(storage, t, program.offset_of.get(name, 0)))
            if name in self._bindable:
                self._bindable[name] = (self._bindable[name][0], t.shape)
        self.binding = dict(binding)


class DynamicModel:
    """A model compiled once for its symbolic dimensions (see the module docstring). ``assemble(graph,
    compile_kernel, executor_type)`` is ``build_executor`` for the target."""

    def __init__(self, symbols: Sequence[str], graph_template: Any, target: Target, assemble: Assemble) -> None:
        self.symbols = tuple(symbols)
        self.template = graph_template
        self.target = target
        self._assemble = assemble
        self._dimensions = templated_dimensions(graph_template)
        self._variables = variables_for(symbols)
        self._symbolic_graph = symbolic(graph_template, self._variables)
        self._symbolic_nodes = {n.name: n for n in self._symbolic_graph.nodes}
        fields = template_fields(graph_template)
        self._types: dict[str, Any] = fields["types"]
        graph = instantiate(graph_template, {s: PRIMES[0] for s in self.symbols})
        self._io_types = {n: self._types[n] for n in (*graph.inputs, *graph.outputs) if varies(self._types.get(n))}
        self._varying = frozenset(node.name for node, item in zip(graph.nodes, fields["nodes"])
                                  if varies(item) or any(varies(self._types.get(v)) for v in (*node.inputs,
                                                                                               *node.outputs)))
        self._parts = {node.name: node.inputs for node in graph.nodes}  # of the concats a plan may elide
        self._kernels: dict[tuple[str, tuple[int, ...]], tuple[Kernel, tuple[str, ...]] | None] = {}
        self._functions: dict[str, tuple[PrimFunc, Any] | None] = {}  # per node signature: function, module
        self._resizing: dict[tuple[int, ...], ResizingExecutor] = {}
        # sizes grow with the dimensions, and every varying kernel may take them as arguments (checked before a
        # capacity's memory is planned: a dynamic batch of 64 images may not fit)
        self.resizable = all(c > 0 for a in self._dimensions for _, c in a.terms) and not any(
            _tiled(self._symbolic_nodes[node.name], self._types, self._symbolic_graph) for node in graph.nodes
            if node.name in self._varying)
        self.generic_kernels = 0  # kernels (of nodes) taking the dimensions as arguments
        self.exact_kernels = 0  # kernels compiled for a binding's exact shapes (cached by shape)

    def covers(self, binding: Mapping[str, int]) -> bool:
        """Whether the kernels serve the dimensions ``binding``: every tensor dimension that depends on them at
        least ``SMALLEST`` (a smaller one changes what broadcasts), every symbolic dimension from ``SMALLEST`` to
        ``LARGEST`` (the range the kernels' size variables declare)."""
        if set(binding) != set(self.symbols) or not all(SMALLEST <= v <= LARGEST for v in binding.values()):
            return False
        return all(a.at(binding) >= SMALLEST for a in self._dimensions)

    def executor(self, binding: Mapping[str, int]) -> tuple[GraphExecutor, bool]:
        """The executor for ``binding`` (``covers(binding)`` must hold), and whether it was assembled for this
        call (a resizing executor is reused: it is only resized)."""
        if self.resizable:
            least = 1 << (SMALLEST_CAPACITY.bit_length() - 1) // len(binding)  # 64 for one dimension, 8 for two
            capacity = {s: min(LARGEST, max(least, 1 << (v - 1).bit_length())) for s, v in binding.items()}
            key = tuple(capacity[s] for s in self.symbols)
            resizing = self._resizing.get(key)
            new = resizing is None
            if resizing is None:
                resizing = self._resizing_executor(capacity)
            if resizing is not None:
                self._resizing[key] = resizing
                resizing.resize(binding)
                return resizing, new
        return self._assembled(binding, GraphExecutor), True

    def _resizing_executor(self, capacity: Mapping[str, int]) -> ResizingExecutor | None:
        exact = self.exact_kernels
        executor = self._assembled(capacity, ResizingExecutor)
        assert isinstance(executor, ResizingExecutor)
        if self.exact_kernels == exact and self.serves_smaller(executor.graph.meta["memory_plan"]):
            executor.bind({name: found[1] for (name, _), found in self._kernels.items() if found is not None},
                          self._io_types)
            return executor
        logger.debug("dimensions %s: an executor per binding (%s)", list(self.symbols),
                     "kernels for exact shapes" if self.exact_kernels != exact else "its memory plan")
        self.resizable = False
        return None

    def serves_smaller(self, plan: MemoryPlan) -> bool:
        """Whether ``plan``, made at a capacity, serves every smaller binding (see the module docstring)."""
        if any(name in self._varying and any(varies(self._types.get(part)) for part in self._parts[name][:-1])
               for name in plan.elided):
            return False
        return all(bytes_polynomial(self._types[source]) == bytes_polynomial(self._types[result])
                   for pairs in plan.inplace.values() for source, result in pairs)

    def _assembled(self, binding: Mapping[str, int], executor_type: type[GraphExecutor]) -> GraphExecutor:
        graph = plan_memory(instantiate(self.template, binding))

        def compile_kernel(g: Graph, node: Node, target: Target, tuning: KernelTuning | None,
                           inplace: Sequence[int]) -> Kernel:
            return self._kernel(binding, g, node, inplace)

        executor = self._assemble(graph, compile_kernel, executor_type)
        executor.graph = graph
        return executor

    def _kernel(self, binding: Mapping[str, int], graph: Graph, node: Node, inplace: Sequence[int]) -> Kernel:
        key = (node.name, tuple(inplace))
        if node.name not in self._varying:
            if key not in self._kernels:
                self._kernels[key] = (compile_node(graph, node, self.target, None, inplace), ())
            kernel, _ = self._kernels[key]  # type: ignore[misc]
            return kernel
        if key not in self._kernels and self.resizable:
            self._kernels[key] = self._generic(node.name, inplace)
        found = self._kernels.get(key) if self.resizable else None
        if found is None:
            self.exact_kernels += 1
            return compile_node(graph, node, self.target, None, inplace)
        kernel, names = found
        return dataclasses.replace(kernel, sizes=tuple(binding[n] for n in names))

    def _generic(self, name: str, inplace: Sequence[int]) -> tuple[Kernel, tuple[str, ...]] | None:
        """The kernel of node ``name`` with the dimensions as arguments; None where an operator's lowering or
        schedule needs them as numbers. Nodes that compute the same function (the layers of a model) share one
        compiled kernel. (Only asked while the model is ``resizable``: no varying node is ``_tiled``.)"""
        graph, node = self._symbolic_graph, self._symbolic_nodes[name]
        args = kernel_inputs(graph, node) + node.outputs
        signature = node_signature(graph, node) + f"|alias={tuple(sorted(set(inplace)))}"
        if signature not in self._functions:
            try:
                func, _, _ = lower_node(graph, node, self.target, None, inplace)
                self._functions[signature] = (func, build(func, target=self.target))
            except Exception as exc:  # noqa: BLE001 - any lowering that needs numbers: compile per shape instead
                logger.debug("node %s: no kernel for symbolic dimensions (%s: %s)", name, type(exc).__name__, exc)
                self._functions[signature] = None
        found = self._functions[signature]
        if found is None:
            return None
        func, module = found
        self.generic_kernels += 1
        kernel = Kernel(func.name, node.name, args, len(args) - len(node.outputs), module)
        return kernel, tuple(v.name for v in func.size_vars)
