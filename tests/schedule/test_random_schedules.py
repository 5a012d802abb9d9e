"""Property-based tests: random legal schedules of matmul, conv2d and every operator of ``op_cases`` give numpy's
result.

A drawn schedule applies, to the consumer stage, a random sequence of splits (factors or part counts that need not
divide the extent of a root axis), fuses of adjacent axes of the same kind and reorders (arbitrary permutations,
which are all legal, or permutations that keep each split's outer loop before its inner loop); then loop
annotations: vectorize the innermost leaf when it is data-parallel, parallel the outermost leaf when it is
data-parallel, unroll a leaf. For conv2d the pad stage is left at the root (with its own random loop structure),
inlined, or computed at a random leaf of the convolution. For the other operators every non-output stage is placed
at random (root, inline, or computed at a leaf of its reader) and every stage gets a random loop structure.
Examples are derandomized so the suite is reproducible; raise ``max_examples`` locally to search further.
"""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

import tcomp
from tcomp import ops, te
from tcomp.backend.common import schedule_text
from tcomp.backend.testing import build_and_check
from tcomp.ir.expr import IterKind, IterVar, const_int_value
from tcomp.ops import testing as reference
from tcomp.schedule.relation import Split
from tcomp.schedule.stage import Stage
from tests.ops.op_cases import CASES

SETTINGS = settings(max_examples=30, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow])


def _index(data: st.DataObject, count: int, label: str) -> int:
    return data.draw(st.integers(0, count - 1), label=label)


# Lowering guards only the root axes, so a split that leaves a tail on an axis made by an earlier split or fuse runs
# some iterations twice (see test_split_of_a_split_inner_axis_with_a_tail). Until that is fixed, non-root axes are
# split only by amounts that divide their extent; root axes get any factor.
ALLOW_NESTED_TAILS = True


def leaf_extents(stage: Stage) -> dict[IterVar, int]:
    """Constant extent of every axis of ``stage`` (root extents passed through its split and fuse relations)."""
    extents: dict[IterVar, int] = {}
    for root in stage.root_iter_vars:
        assert root.dom is not None
        extents[root] = int(const_int_value(root.dom.extent))  # type: ignore[arg-type]
    for rel in stage.relations:
        if isinstance(rel, Split):
            parent = extents[rel.parent]
            if rel.factor is not None:
                factor = int(const_int_value(rel.factor))  # type: ignore[arg-type]
                extents[rel.outer], extents[rel.inner] = -(-parent // factor), factor
            else:
                parts = int(const_int_value(rel.nparts))  # type: ignore[arg-type]
                extents[rel.outer], extents[rel.inner] = parts, -(-parent // parts)
        else:
            extents[rel.fused] = extents[rel.outer] * extents[rel.inner]
    return extents


def _split(data: st.DataObject, stage: Stage) -> None:
    leaf = stage.leaf_iter_vars[_index(data, len(stage.leaf_iter_vars), "split leaf")]
    is_root = any(leaf is root for root in stage.root_iter_vars)
    if is_root or ALLOW_NESTED_TAILS:
        amount = data.draw(st.integers(1, 8), label="split amount")
    else:
        extent = leaf_extents(stage)[leaf]
        divisors = [d for d in range(1, min(extent, 8) + 1) if extent % d == 0]
        amount = data.draw(st.sampled_from(divisors), label="split amount (divisor)")
    if data.draw(st.booleans(), label="split by nparts"):
        stage.split(leaf, nparts=amount)
    else:
        stage.split(leaf, factor=amount)


def _fuse(data: st.DataObject, stage: Stage) -> None:
    leaves = stage.leaf_iter_vars
    candidates = [i for i in range(len(leaves) - 1) if (leaves[i].kind is IterKind.REDUCE) ==
                  (leaves[i + 1].kind is IterKind.REDUCE)]
    if candidates:
        position = candidates[_index(data, len(candidates), "fuse position")]
        stage.fuse(leaves[position], leaves[position + 1])


def _outer_before_inner(stage: Stage, order: list[IterVar]) -> list[IterVar]:
    """``order`` with every split whose outer and inner parts are both leaves put outer-first."""
    result = list(order)
    changed = True
    while changed:
        changed = False
        for rel in stage.relations:
            if isinstance(rel, Split) and rel.outer in result and rel.inner in result:
                i, o = result.index(rel.inner), result.index(rel.outer)
                if i < o:
                    result[i], result[o] = result[o], result[i]
                    changed = True
    return result


def _reorder(data: st.DataObject, stage: Stage) -> None:
    order = data.draw(st.permutations(range(len(stage.leaf_iter_vars))), label="reorder permutation")
    leaves = [stage.leaf_iter_vars[i] for i in order]
    if data.draw(st.booleans(), label="keep outer before inner"):
        leaves = _outer_before_inner(stage, leaves)
    stage.reorder(*leaves)


def random_loop_structure(data: st.DataObject, stage: Stage, max_steps: int = 5) -> None:
    """A random sequence of splits, fuses and reorders on ``stage``."""
    actions = {"split": _split, "fuse": _fuse, "reorder": _reorder}
    for _ in range(data.draw(st.integers(0, max_steps), label=f"{stage.name} steps")):
        action = data.draw(st.sampled_from(["split", "split", "fuse", "reorder"]), label="action")
        actions[action](data, stage)


def random_annotations(data: st.DataObject, stage: Stage) -> None:
    """Vectorize the innermost data-parallel leaf, parallelize the outermost one, unroll a leaf (each maybe)."""
    leaves = stage.leaf_iter_vars
    annotated: set[int] = set()
    if leaves[-1].kind is not IterKind.REDUCE and data.draw(st.booleans(), label="vectorize innermost"):
        stage.vectorize(leaves[-1])
        annotated.add(len(leaves) - 1)
    if 0 not in annotated and leaves[0].kind is not IterKind.REDUCE and data.draw(st.booleans(), label="parallel"):
        stage.parallel(leaves[0])
        annotated.add(0)
    if data.draw(st.booleans(), label="unroll"):
        position = _index(data, len(leaves), "unroll leaf")
        if position not in annotated:
            stage.unroll(leaves[position])


def _describe(s: tcomp.schedule.Schedule, args: list[te.Tensor]) -> None:
    note(schedule_text(s))
    note(str(tcomp.lower(s, args)))


# ---------------------------------------------------------------------------------------------------------------------
# matmul
@SETTINGS
@given(m=st.integers(1, 13), k=st.integers(1, 11), n=st.integers(1, 13), data=st.data())
def test_random_matmul_schedules(m: int, k: int, n: int, data: st.DataObject) -> None:
    a_tensor, b_tensor = te.placeholder((m, k), name="A"), te.placeholder((k, n), name="B")
    out = ops.matmul(a_tensor, b_tensor)
    s = tcomp.create_schedule(out)
    random_loop_structure(data, s[out], max_steps=6)
    random_annotations(data, s[out])
    args = [a_tensor, b_tensor, out]
    _describe(s, args)
    rng = np.random.default_rng(m * 10_000 + k * 100 + n)
    a, b = reference.random_data(rng, (m, k)), reference.random_data(rng, (k, n))
    build_and_check(s, args, [a, b], a.astype(np.float64) @ b, rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------------------------------------------------------------
# conv2d
conv_shapes = st.fixed_dictionaries({
    "batch": st.integers(1, 2),
    "groups": st.sampled_from([1, 1, 2]),
    "group_in": st.integers(1, 2),
    "group_out": st.integers(1, 2),
    "height": st.integers(4, 9),
    "width": st.integers(4, 9),
    "kernel": st.tuples(st.integers(1, 3), st.integers(1, 3)),
    "stride": st.tuples(st.integers(1, 2), st.integers(1, 2)),
    "padding": st.tuples(st.integers(0, 2), st.integers(1, 2), st.integers(0, 2), st.integers(0, 1)),
    "dilation": st.tuples(st.integers(1, 2), st.integers(1, 2)),
})


@SETTINGS
@given(shape=conv_shapes, data=st.data())
def test_random_conv2d_schedules(shape: dict, data: st.DataObject) -> None:
    groups = shape["groups"]
    channels, out_channels = shape["group_in"] * groups, shape["group_out"] * groups
    data_shape = (shape["batch"], channels, shape["height"], shape["width"])
    kernel_shape = (out_channels, shape["group_in"], *shape["kernel"])
    x_tensor, w_tensor = te.placeholder(data_shape, name="data"), te.placeholder(kernel_shape, name="kernel")
    out = ops.conv2d_nchw(x_tensor, w_tensor, shape["stride"], shape["padding"], shape["dilation"], groups)
    padded = out.op.input_tensors()[0]
    assert padded.op.name == "pad_data"
    s = tcomp.create_schedule(out)
    random_loop_structure(data, s[out], max_steps=6)
    random_annotations(data, s[out])
    placement = data.draw(st.sampled_from(["root", "inline", "compute_at"]), label="pad placement")
    if placement == "inline":
        s[padded].compute_inline()
    else:
        random_loop_structure(data, s[padded], max_steps=3)
        if placement == "compute_at":
            leaves = s[out].leaf_iter_vars
            s[padded].compute_at(s[out], leaves[_index(data, len(leaves), "attach leaf")])
        if data.draw(st.booleans(), label="annotate pad"):
            random_annotations(data, s[padded])
    args = [x_tensor, w_tensor, out]
    _describe(s, args)
    rng = np.random.default_rng(7)
    x, w = reference.random_data(rng, data_shape), reference.random_data(rng, kernel_shape)
    expected = reference.conv2d_nchw_python(x, w, shape["stride"], shape["padding"], shape["dilation"], groups)
    build_and_check(s, args, [x, w], expected, rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------------------------------------------------------------
# every operator of op_cases, every stage scheduled at random
def random_graph_schedule(data: st.DataObject, s: tcomp.schedule.Schedule) -> None:
    """Consumers first: each non-output stage is inlined (when it is not a reduction), computed at a random leaf of
    its only reader, or left at the root; every stage that keeps its loops gets a random structure and
    annotations."""
    for stage in reversed(s.stages):
        if stage.is_placeholder:
            continue
        if not stage.is_output:
            readers = s.readers(stage)
            choices = ["root"]
            if not stage.is_reduction:
                choices.append("inline")
            if len(readers) == 1:
                choices.append("compute_at")
            placement = data.draw(st.sampled_from(choices), label=f"{stage.name} placement")
            if placement == "inline":
                stage.compute_inline()
                continue
            if placement == "compute_at":
                leaves = readers[0].leaf_iter_vars
                stage.compute_at(readers[0], leaves[_index(data, len(leaves), "attach leaf")])
        random_loop_structure(data, stage, max_steps=3)
        random_annotations(data, stage)


@SETTINGS
@given(case_name=st.sampled_from(sorted(name for name in CASES if not name.endswith("float64"))), data=st.data())
def test_random_schedules_of_every_operator(case_name: str, data: st.DataObject) -> None:
    problem = CASES[case_name]()
    s = tcomp.create_schedule(problem.output)
    random_graph_schedule(data, s)
    _describe(s, problem.args)
    build_and_check(s, problem.args, problem.arrays, problem.expected, problem.rtol, problem.atol)
