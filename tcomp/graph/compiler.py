"""``compile``: a model (ONNX path, bytes, ``ModelProto`` or graph) to a ready-to-run ``GraphExecutor``.

    ex = tcomp.graph.compile("resnet.onnx", target="llvm", input_shapes={"data": [1, 3, 224, 224]},
                             tuning_records="tuning.jsonl")

Steps: import (``frontend.onnx``), the pass pipeline (``pipeline.py``), then one kernel per top-level node
(``kernels.compile_node``), storage from the memory plan. ``tuning_records``: a records file or a dispatch context
(see ``tuning.py``); when given, operators with a record are compiled from their template's best config.
``compile_graph`` stops after the passes (for inspection); ``build_executor`` compiles a graph that has been
through them. Each kernel gets its target backend's default schedule (``tcomp.backend``); the executor is the one
that fits the modules (``cuda_executor.make_executor``): for ``target="cuda"`` they run on a GPU or, with an
``EmulationWarning``, in CPU emulation.

A model whose shapes are decided at run time (symbolic dimensions, inputs that set shapes) compiles as it runs:
``compile`` gives a ``SpecializingExecutor`` (``specialize.py``) unless ``input_shapes`` / ``input_values`` fix
everything.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from tcomp.backend import EmulationWarning, backend_for
from tcomp.graph.cuda_executor import make_executor
from tcomp.graph.dim_expr import dimension_symbols, shapes_at
from tcomp.graph.dynamic import probe
from tcomp.graph.dynamic_executor import DynamicModel
from tcomp.graph.executor import ExecutorProgram, GraphExecutor, KernelSpec
from tcomp.graph.ir import Graph, GraphError
from tcomp.graph.kernels import CompileFunc, Kernel, baked_params, compile_node, kernel_inputs
from tcomp.graph.op import is_stateful
from tcomp.graph.passes.plan_memory import MemoryPlan, no_plan
from tcomp.graph.pipeline import DumpFunc, PassOptions, run_pipeline
from tcomp.graph.shared_constants import SharedConstants
from tcomp.graph.specialize import SpecializingExecutor, compile_or_defer
from tcomp.graph.tuning import as_dispatch_context, kernel_tuning
from tcomp.target import Precision, Target, as_target

if TYPE_CHECKING:
    from typing import TypeAlias

    import onnx

    from tcomp.graph.frontend.onnx_inputs import InputDecl

    ModelLike: TypeAlias = str | os.PathLike[str] | bytes | onnx.ModelProto | Graph


def compile_graph(model: ModelLike, target: Target | str | None = None, *,
                  input_shapes: Mapping[str, Sequence[int]] | None = None, tuning_records: Any = None,
                  options: PassOptions | None = None, dump: DumpFunc | None = None,
                  timings: dict[str, float] | None = None, input_values: Mapping[str, Any] | None = None) -> Graph:
    """Import ``model`` and run the pass pipeline; the result is ready for ``build_executor``. Every shape must
    be static once ``input_shapes`` and ``input_values`` are bound."""
    start = time.perf_counter()
    if isinstance(model, Graph):
        graph = model
    else:
        from tcomp.graph.frontend.onnx import from_onnx

        graph = from_onnx(model, input_shapes, input_values=input_values)
    if timings is not None:
        timings["import"] = time.perf_counter() - start
    records = as_dispatch_context(tuning_records)
    return run_pipeline(graph, options, dump, target, records, timings)


def build_executor(graph: Graph, target: Target | str | None = None, tuning_records: Any = None,
                   progress: Callable[[int, int, str], None] | None = None,
                   compile_kernel: CompileFunc = compile_node,
                   executor_type: type[GraphExecutor] = GraphExecutor) -> GraphExecutor:
    """Compile every top-level node of ``graph`` (with ``compile_kernel``) and bind storage and parameters (in an
    ``executor_type``, on CPU targets)."""
    resolved = as_target(target)
    records = as_dispatch_context(tuning_records)
    tuning = kernel_tuning(records)
    emulated = backend_for(resolved).emulation_reason(resolved)
    if emulated is not None:
        warnings.warn(f"model {graph.name}: {emulated}", EmulationWarning, stacklevel=2)
    plan: MemoryPlan = graph.meta.get("memory_plan") or no_plan(graph)
    kernels: list[Kernel] = []
    elided = set(plan.elided) | set(plan.views)  # concats written in place by their parts, views: no kernel
    for position, node in enumerate(graph.nodes):
        if progress is not None:
            progress(position, len(graph.nodes), node.name)
        if node.name in elided:
            continue
        args = kernel_inputs(graph, node) + node.outputs
        aliased = {value for pair in plan.inplace.get(node.name, ()) for value in pair}
        inplace = [i for i, a in enumerate(args) if a in aliased]
        kernels.append(compile_kernel(graph, node, resolved, tuning, inplace))
    if progress is not None:
        progress(len(graph.nodes), len(graph.nodes), "")
    if records is not None and hasattr(records, "report_missing"):
        records.report_missing()
    arguments = {a for k in kernels for a in k.args}
    baked = {name for node in graph.nodes if node.name not in elided
             for name in baked_params(graph, node) if name not in arguments}
    program = ExecutorProgram(
        name=graph.name,
        inputs=graph.inputs,
        outputs=graph.outputs,
        types=dict(graph.types),
        storage_of=dict(plan.storage_of),
        storage_bytes=plan.storage_bytes,
        offset_of=dict(plan.offset_of),
        params={k: v for k, v in graph.params.items() if any(k in n.inputs for n in graph.nodes)
                or k in graph.outputs},
        kernels=[_spec(k) for k in kernels],
        target=str(resolved),
        stats={"unplanned_bytes": plan.unplanned_bytes, "planned_bytes": plan.planned_bytes,
               "tuned_kernels": sum(k.tuned for k in kernels)},
        constants=tuple(sorted(baked)),
        random_states=tuple(sorted({node.inputs[0] for node in graph.nodes if is_stateful(node)})),
    )
    return make_executor(program, [k.module for k in kernels], executor_type=executor_type)


def _spec(kernel: Kernel) -> KernelSpec:
    module = kernel.module
    return KernelSpec(
        name=kernel.node_name,
        entry=module.entry_name,
        args=kernel.args,
        num_inputs=kernel.num_inputs,
        asserts=tuple((a.message, a.num_values) for a in module.asserts),
        error_slots=module.error_slots,
        sizes=kernel.sizes,
    )


def compile(model: ModelLike, target: Target | str | None = None, *,  # noqa: A001
            input_shapes: Mapping[str, Sequence[int]] | None = None,
            input_values: Mapping[str, Any] | None = None, tuning_records: Any = None,
            options: PassOptions | None = None, dump: DumpFunc | None = None,
            timings: dict[str, float] | None = None,
            progress: Callable[[int, int, str], None] | None = None,
            precision: Precision | str | None = None,
            symbolic_dimensions: bool = True) -> GraphExecutor | SpecializingExecutor:
    """Import, optimize and compile ``model`` for ``target`` (default: this machine's CPU). ``precision``
    (``"fp32"``, ``"tf32"``, ``"fp16"``, ``"bf16"``) sets the arithmetic of matrix products and convolutions on a
    cuda target, and (``"bf16"``) of products with a constant weight on an llvm target, as the target option
    ``-precision=`` does (``tcomp.target.Precision``).

    ``input_shapes`` binds the shapes of inputs with symbolic dimensions; ``input_values`` fixes inputs to values
    (they become constants and are no longer inputs). A model whose shapes are still decided at run time (symbolic
    dimensions left, or inputs that decide shapes) gives a ``SpecializingExecutor`` that compiles as it runs, once
    per input shapes and shape-deciding values (see ``specialize.py``); with ``symbolic_dimensions`` (on CPU
    targets, without tuning records), once its symbolic dimensions have taken a second value, it compiles for
    all their values at once where it can (``dynamic.py``), and a new value then costs no code generation."""
    records = as_dispatch_context(tuning_records)
    target = as_target(target).with_precision(precision)
    if isinstance(model, Graph):
        if input_values:
            raise GraphError("input_values applies to ONNX models; a graph's constants are its params")
        return _compile_imported(model, target, records, options, dump, timings, progress, None)
    from tcomp.graph.frontend.onnx import import_model, load_model
    from tcomp.graph.frontend.onnx_inputs import check_model

    proto, base_dir = load_model(model)
    decls, values = check_model(proto, input_shapes or {}, input_values or {})

    def build(shapes: Mapping[str, Sequence[int]], values: Mapping[str, Any],
              constants: SharedConstants | None) -> GraphExecutor:
        start = time.perf_counter()
        graph = import_model(proto, base_dir, shapes, None, values, constants)
        if timings is not None:
            timings["import"] = time.perf_counter() - start
        return _compile_imported(graph, target, records, options, dump, timings, progress, constants)

    def dynamic(decls: Sequence[InputDecl], fixed: Mapping[str, Sequence[int]], values: Mapping[str, Any],
                constants: SharedConstants, actual: Mapping[str, int]) -> DynamicModel:
        symbols = dimension_symbols(decls, fixed)
        _, template = probe(
            symbols, lambda binding: import_model(proto, base_dir, shapes_at(decls, fixed, binding), None, values,
                                                  constants),
            lambda graph, run_time: run_pipeline(graph, options, None, target, None, None, constants, run_time,
                                                 symbolic=True), actual)
        return DynamicModel(symbols, template, target, lambda graph, compile_kernel, executor_type: build_executor(
            graph, target, None, None, compile_kernel, executor_type))

    dynamic_ok = symbolic_dimensions and records is None and backend_for(target).graph.symbolic_dimensions
    return compile_or_defer(decls, input_shapes or {}, values, build, proto.graph.name or "model",
                            dynamic=dynamic if dynamic_ok else None)


def _compile_imported(graph: Graph, target: Target | str | None, records: Any, options: PassOptions | None,
                      dump: DumpFunc | None, timings: dict[str, float] | None,
                      progress: Callable[[int, int, str], None] | None,
                      constants: SharedConstants | None) -> GraphExecutor:
    graph = run_pipeline(graph, options, dump, target, records, timings, constants)
    start = time.perf_counter()
    executor = build_executor(graph, target, records, progress)
    if timings is not None:
        timings["codegen"] = time.perf_counter() - start
    executor.graph = graph
    return executor
