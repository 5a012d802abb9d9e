"""The graph pass pipeline: a plain ordered list of named passes, each switchable, the graph printable after each.

    ONNX -> infer types -> remove empty -> bfloat16 arithmetic -> float16 products -> integer products
         -> quantized matvec -> fold constants -> simplify -> gemm panels
         -> fold constants -> channel shuffle -> alter layout -> winograd -> fold constants
         -> quantized depthwise -> quantized pooling -> concat in place -> fuse ops -> plan memory

Where the target has no float16 arithmetic (CPUs), products of float16 tensors compute in float32 between casts
(``float16_products``). On CPUs, products of 8-bit integers then run on the integer GEMM (``integer_products``:
the float products of dequantized operands in QDQ models become integer products, then ``quantized_weights`` packs
the 8-bit weights of integer products, before folding takes the weights' dequantization away or widens them to
int32); small-batch products by weights quantized by blocks (4-bit language models) stream the weights as
int8 (``quantized_matvec``). The ``simplify``
step also runs the rewrites a target kind asks for (``GraphOptions`` of its backend): small-batch weights stored by
rows (``matvec_weights``) and attention fused into one node (``fuse_attention``). Then, where the backend asks,
products of one input by several constant weights become one product and a split (``merge_projections``: attention's
query, key and value) and ``gemm_panels`` stores the weights of larger products in the packed GEMM's panels; with
tuning records, a product compiled from a ``matmul`` or ``dense`` record of its own stays as it is
(``tuning.tuned_product``).

Every pass keeps the graph's input and output names (the model's own): the runner checks it after each pass.
``remove_empty`` (zero-size tensors are computed by no kernel) and ``bfloat16_arithmetic`` (bfloat16 values are
computed on in float32, each node's result rounded once) always run, right after type inference: they are rules of
execution, not optimizations. ``PassOptions`` switches the other passes off by name
(``PassOptions(fuse_ops=False)``); the CLI and ``compile`` take the same names. ``run_pipeline(graph, options,
dump=print)`` calls ``dump(name, graph)`` after every pass that ran.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

from tcomp.backend import backend_for
from tcomp.graph.infer import infer_types
from tcomp.graph.ir import Graph, GraphError, verify_graph
from tcomp.graph.passes.alter_layout import alter_layout
from tcomp.graph.passes.channel_shuffle import fold_channel_shuffle
from tcomp.graph.passes.concat_in_place import concat_in_place
from tcomp.graph.passes.float_widening import bfloat16_arithmetic, float16_products
from tcomp.graph.passes.fold_constants import fold_constants
from tcomp.graph.passes.fuse_attention import fuse_attention
from tcomp.graph.passes.fuse_ops import fuse_ops
from tcomp.graph.passes.gemm_panels import gemm_panels
from tcomp.graph.passes.integer_products import integer_products
from tcomp.graph.passes.matvec_weights import matvec_weights
from tcomp.graph.passes.merge_projections import merge_projections
from tcomp.graph.passes.plan_memory import plan_memory
from tcomp.graph.passes.quantized_depthwise import quantized_depthwise
from tcomp.graph.passes.quantized_matvec import quantized_matvec
from tcomp.graph.passes.quantized_pooling import quantized_pooling
from tcomp.graph.passes.quantized_weights import quantized_weights
from tcomp.graph.passes.recognize_norms import recognize_norms
from tcomp.graph.passes.remove_empty import remove_empty
from tcomp.graph.passes.simplify import simplify
from tcomp.graph.passes.winograd import winograd
from tcomp.graph.shared_constants import SharedConstants
from tcomp.graph.tuning import tuned_product, use_record
from tcomp.target import Precision, Target, as_target

GraphPass = Callable[[Graph], Graph]
DumpFunc = Callable[[str, Graph], None]


@dataclass(frozen=True)
class PassOptions:
    """Which passes run (all by default)."""

    float16_products: bool = True
    integer_products: bool = True
    quantized_matvec: bool = True
    fold_constants: bool = True
    simplify: bool = True
    gemm_panels: bool = True
    channel_shuffle: bool = True
    alter_layout: bool = True
    winograd: bool = True
    quantized_depthwise: bool = True
    quantized_pooling: bool = True
    concat_in_place: bool = True
    fuse_ops: bool = True
    plan_memory: bool = True

    @staticmethod
    def names() -> list[str]:
        return [f.name for f in fields(PassOptions)]

    @staticmethod
    def without(disabled: list[str] | tuple[str, ...]) -> PassOptions:
        unknown = sorted(set(disabled) - set(PassOptions.names()))
        if unknown:
            raise ValueError(f"unknown passes {unknown}; passes: {PassOptions.names()}")
        return PassOptions(**{name: False for name in disabled})


def default_passes(target: Target | str | None = None, tuning_records: Any = None,
                   constants: SharedConstants | None = None,
                   run_time: frozenset[str] = frozenset(), symbolic: bool = False) -> list[tuple[str, GraphPass]]:
    """``(option name, pass)`` in order; the option name decides whether the pass runs. ``constants``: the
    constants that the compilations of one model share (``tcomp.graph.shared_constants``). ``run_time``: values
    constant folding leaves to the kernels (they vary with symbolic dimensions, ``tcomp.graph.dynamic``).
    ``symbolic``: the graph is a probe of a model compiled once for its symbolic dimensions (every product of a
    constant weight reads panels: the packed GEMM takes a symbolic number of rows, plain loops do not)."""
    resolved = as_target(target)
    options = backend_for(resolved).graph
    keep_apart = _per_node(use_record, resolved, tuning_records)
    keep_products = _per_node(tuned_product, resolved, tuning_records)
    host = as_target(None) if options.fold_on_host else resolved

    def fold(graph: Graph) -> Graph:
        return fold_constants(graph, host, constants, run_time)

    def layout(graph: Graph) -> Graph:
        if not options.blocked_convolutions:  # NCHW[x]c is a CPU layout: GPU convolutions stay in NCHW
            return graph
        return alter_layout(graph, resolved, keep_apart(graph) if keep_apart else None, constants)

    def simplify_for_target(graph: Graph) -> Graph:
        graph = simplify(graph)
        if options.row_norms:
            graph = recognize_norms(graph)
        if options.matvec_weights:
            graph = matvec_weights(graph, constants, resolved.precision is Precision.BF16)
        return fuse_attention(graph, resolved) if options.fused_attention else graph

    def panels(graph: Graph) -> Graph:
        if not options.gemm_panels:
            return graph
        if keep_products is None:
            return gemm_panels(merge_projections(graph, constants=constants), resolved, constants=constants,
                               any_work=symbolic)
        # a product with its own record keeps its operator
        merged = merge_projections(graph, keep_products(graph), constants)
        return gemm_panels(merged, resolved, keep_products(merged), constants, symbolic)

    def half_products(graph: Graph) -> Graph:
        return graph if options.float16_arithmetic else float16_products(graph)

    def products_of_integers(graph: Graph) -> Graph:
        if not options.gemm_panels:  # the backend's GEMMs take no packed weights (GPUs)
            return graph
        return quantized_weights(integer_products(graph, resolved, constants), resolved, constants)

    def matvec_of_integers(graph: Graph) -> Graph:
        return quantized_matvec(graph, constants) if options.matvec_weights else graph

    def fast_convolutions(graph: Graph) -> Graph:
        return winograd(graph) if options.blocked_convolutions else graph

    def depthwise_bytes(graph: Graph) -> Graph:
        return quantized_depthwise(graph) if options.blocked_convolutions else graph

    def pooled_bytes(graph: Graph) -> Graph:
        return quantized_pooling(graph) if options.blocked_convolutions else graph

    def concats(graph: Graph) -> Graph:
        return concat_in_place(graph) if options.concat_in_place else graph

    def fuse(graph: Graph) -> Graph:
        return fuse_ops(graph, keep_apart=keep_apart(graph) if keep_apart else None,
                        absorb_views=options.views)

    return [
        ("float16_products", half_products),
        ("integer_products", products_of_integers),
        ("quantized_matvec", matvec_of_integers),
        ("fold_constants", fold),
        ("simplify", simplify_for_target),
        ("gemm_panels", panels),
        ("fold_constants", fold),
        ("channel_shuffle", fold_channel_shuffle),
        ("alter_layout", layout),
        ("winograd", fast_convolutions),
        ("fold_constants", fold),
        ("quantized_depthwise", depthwise_bytes),
        ("quantized_pooling", pooled_bytes),
        ("concat_in_place", concats),
        ("fuse_ops", fuse),
        ("plan_memory", plan_memory),
    ]


def _per_node(check: Callable[[Graph, Any, Target, Any], bool], target: Target,
              records: Any) -> Callable[[Graph], Callable[[Any], bool]] | None:
    """``graph -> (node -> check(graph, node, target, records))``, or None without records."""
    if records is None:
        return None

    def for_graph(graph: Graph) -> Callable[[Any], bool]:
        return lambda node: check(graph, node, target, records)

    return for_graph


def run_pipeline(graph: Graph, options: PassOptions | None = None, dump: DumpFunc | None = None,
                 target: Target | str | None = None, tuning_records: Any = None,
                 timings: dict[str, float] | None = None, constants: SharedConstants | None = None,
                 run_time: frozenset[str] = frozenset(), symbolic: bool = False) -> Graph:
    """Run the default passes enabled in ``options`` on ``graph`` (type inference first); ``constants``,
    ``run_time`` and ``symbolic``: see ``default_passes``."""
    options = options or PassOptions()
    graph = infer_types(graph)
    verify_graph(graph)
    if dump is not None:
        dump("import", graph)
    for name, rule in (("remove_empty", remove_empty), ("bfloat16_arithmetic", bfloat16_arithmetic)):
        ruled = rule(graph)
        if ruled is not graph:
            check_interface(name, graph, ruled)
            graph = ruled
            verify_graph(graph)
            if dump is not None:
                dump(name, graph)
    for name, graph_pass in default_passes(target, tuning_records, constants, run_time, symbolic):
        if not getattr(options, name):
            continue
        start = time.perf_counter()
        before = graph
        graph = graph_pass(graph)
        check_interface(name, before, graph)
        if timings is not None:
            timings[name] = timings.get(name, 0.0) + time.perf_counter() - start
        verify_graph(graph)
        if dump is not None:
            dump(name, graph)
    return graph


def check_interface(name: str, before: Graph, after: Graph) -> None:
    """A pass keeps the graph's input and output names: they are the model's, which callers feed and read."""
    if after.inputs != before.inputs or after.outputs != before.outputs:
        raise GraphError(f"graph pass {name} changed the graph's inputs {list(before.inputs)} -> {list(after.inputs)}"
                         f" or outputs {list(before.outputs)} -> {list(after.outputs)}")


def print_dump(name: str, graph: Graph) -> None:
    print(f"// after {name}")
    print(graph)
    plan = graph.meta.get("memory_plan")
    if plan is not None:
        print(f"// {plan.summary()}")
