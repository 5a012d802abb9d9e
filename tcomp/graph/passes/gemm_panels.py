"""``gemm_panels``: a matrix product with a constant weight reads it from the GEMM's panels, packed once (CPU).

Rewrite: ``matmul(x, W)`` with ``W`` a ``[K, N]`` float32 parameter (or ``[N, K]`` with ``transpose_b``), more than
``MATVEC_ROWS`` rows in ``x`` and a shape the packed GEMM takes at ``TYPICAL_ROWS`` rows, whatever the count of rows
(``tcomp.ops.cpu.dense.panels_plan``: enough work, little padding; a product of fewer rows, a short prompt or a
symbolic prompt length at its probe value, runs on the same panels) becomes ``panel_matmul(x, P)`` with
``P = pack_panels(W, nr, Kp)``, a new ``[ceil(N / nr), Kp, nr]`` parameter in the plan's tiles, and the attribute
``columns = N`` (``tcomp.ops.panels``). The packed GEMM then skips
its copy of B into panels on every call (for a transformer's projections at a sequence of 128 to 200 tokens, that
copy is several percent of the product's time).

With bfloat16 products (``Precision.BF16``, the target's ``-precision=bf16``) every such product becomes a
``panel_matmul`` whatever its work and padding (as with ``any_work``), its weight rounded to bfloat16 in the pairs of
``tcomp.ops.panels.pack_grouped_panels``, in the tiles of ``tcomp.ops.cpu.bf16_matmul.bf16_plan``.

Assumes a typed graph before fusion; the pipeline runs it after ``matvec_weights`` and ``fuse_attention`` for CPU
targets. ``keep(node)``: products that stay as they are (compiled from a ``matmul`` or ``dense`` record of their
own); the others are tuned as ``panel_matmul`` workloads, whose records give the fused kernel its tile. Guarantees
the same values and types; returns the same graph when nothing applies (a computed weight, few rows, a shape the
packed GEMM leaves).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial

import ml_dtypes
import numpy as np

from tcomp.graph.edit import with_nodes
from tcomp.graph.ir import FreshNames, Graph, Node, make_node
from tcomp.graph.passes.matvec_weights import MATVEC_ROWS
from tcomp.graph.shared_constants import SharedConstants, derive
from tcomp.ops.cpu.bf16_matmul import bf16_plan
from tcomp.ops.cpu.common import CpuTarget
from tcomp.ops.cpu.dense import TYPICAL_ROWS, panels_in_place_plan, panels_plan
from tcomp.ops.panels import PAIRS, pack_grouped_panels, pack_panels
from tcomp.target import Precision, Target


def _plan_of(graph: Graph, node: Node, cpu: CpuTarget, params: dict, any_work: bool,
             bf16: bool) -> tuple[int, int] | None:
    """``(nr, Kp)`` of the panels for ``node`` (of bfloat16 panels with ``bf16``), or ``None`` when it stays a
    matmul."""
    if node.op != "matmul" or node.inputs[1] not in params:
        return None
    x, w = graph.type_of(node.inputs[0]), graph.type_of(node.inputs[1])
    if w.ndim != 2 or x.ndim < 2 or x.dtype != "float32" or w.dtype != "float32":
        return None
    rows = math.prod(x.shape[:-1])
    k, n = (w.shape[1], w.shape[0]) if node.attr("transpose_b", False) else w.shape
    if rows <= MATVEC_ROWS or x.shape[-1] != k:
        return None
    # judged at TYPICAL_ROWS rows whatever the count: packed once, the panels serve a product of a few rows too (a
    # short prompt: on the packed GEMM rather than plain loops), and a symbolic number of rows (a batch of prompts'
    # batch*seq) gets the same choice at every probe; a narrow product of many rows packs its weight per call
    if bf16:
        plan = bf16_plan(TYPICAL_ROWS, n, k, cpu)
    elif any_work:
        plan = panels_in_place_plan(TYPICAL_ROWS, n, k, cpu)
    else:
        plan = panels_plan(TYPICAL_ROWS, n, k, cpu)
    return None if plan is None else (plan.blocking.nr, plan.Kp)


def pack_bf16_panels(weight: np.ndarray, cpu: CpuTarget) -> np.ndarray:
    """The constant weight ``[K, N]`` of a product of rows, rounded to bfloat16 in the pairs of steps and the
    panels of ``bf16_plan`` (the same whatever the number of rows)."""
    k, n = weight.shape
    plan = bf16_plan(TYPICAL_ROWS, n, k, cpu)
    return pack_grouped_panels(weight, plan.blocking.nr, plan.Kp, PAIRS, ml_dtypes.bfloat16)


def gemm_panels(graph: Graph, target: Target, keep: Callable[[Node], bool] | None = None,
                constants: SharedConstants | None = None, any_work: bool = False) -> Graph:
    """See the module docstring; ``constants``: where the weights packed by earlier specializations are kept
    (``tcomp.graph.shared_constants``); ``any_work``: every product of more than ``MATVEC_ROWS`` rows reads panels,
    whatever its work and padding (a model compiled for a symbolic number of rows: plain loops would compile for
    each number)."""
    cpu = CpuTarget.of(target)
    bf16 = target.precision is Precision.BF16
    params = dict(graph.params)
    names = FreshNames.of(graph)
    nodes: list[Node] = []
    changed = False
    for node in graph.nodes:
        found = _plan_of(graph, node, cpu, params, any_work, bf16)
        if found is not None and keep is not None and keep(node):
            found = None
        if found is not None:
            nr, depth = found
            stored_weight = params[node.inputs[1]]
            transposed = bool(node.attr("transpose_b", False))
            weight = stored_weight.T if transposed else stored_weight
            stored = names.fresh(f"{node.inputs[1]}/panels{nr}" + ("_bf16" if bf16 else ""))
            pack = partial(pack_bf16_panels, weight, cpu) if bf16 else partial(pack_panels, weight, nr, depth)
            params[stored] = derive(constants, ("panels", nr, depth, transposed, bf16), (stored_weight,), pack)
            node = make_node("panel_matmul", node.name, (node.inputs[0], stored), node.outputs,
                             columns=int(weight.shape[1]))
            changed = True
        nodes.append(node)
    return with_nodes(graph, nodes, params) if changed else graph
