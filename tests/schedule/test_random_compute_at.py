"""Property-based tests: multi-stage compute_at chains over symbolic (and constant) shapes give numpy's result.

Two small graphs whose stages have several readers, reductions over a symbolic axis, broadcasts and reversed
reads: the chain of issue 10 (``P -> C = sum(P * B) -> D``) widened by a second reader, and a row pipeline
(``P -> Q, V -> R = sum(Q) -> T = P - R + V -> U = max(T) -> out = T * U + R``). Consumers first, every non-output
stage is left at the root, inlined (when it is not a reduction), or computed at a loop of a stage that reads it
(directly or through others) whose loops hold all of its readers, chosen at random among every legal (host, loop)
pair; every stage gets a random loop structure and annotations. Built in checked mode, so a region too small for
its readers fails as an out-of-bounds access, not as a wrong number.

Examples are derandomized; ``CHAIN_EXAMPLES`` stays small for CI. To search further, wrap ``check_random_chain`` in
``given(**CHAIN_STRATEGIES)`` under your own ``settings`` (2,000 random examples were run so, with no failure).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

import tcomp
from tcomp import te
from tcomp.backend.common import schedule_text
from tcomp.backend.testing import build_and_check
from tcomp.ir.expr import IterKind
from tcomp.ops import testing as reference
from tcomp.schedule.relation import AttachType, Split
from tcomp.schedule.stage import Stage
from tests.schedule.test_random_schedules import random_loop_structure

CHAIN_EXAMPLES = 40
SETTINGS = settings(max_examples=CHAIN_EXAMPLES, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

Graph = tuple[list[te.Tensor], te.Tensor, Callable[[np.ndarray, np.ndarray], np.ndarray]]


def issue_chain(n: object, m: object) -> Graph:
    """Issue 10's two-level chain, with ``P`` read by ``C`` and by the output."""
    a, b = te.placeholder((n, m), name="A"), te.placeholder((m,), name="B")
    p = te.compute((n, m), lambda i, j: a[i, j] * 2.0 + 1.0, name="P")
    r = te.reduce_axis((0, m), name="r")
    c = te.compute((n,), lambda i: te.sum(p[i, r] * b[r], axis=r), name="C")
    d = te.compute((n, m), lambda i, j: c[i] - 3.0 + p[i, j], name="D")

    def expected(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        pp = x.astype(np.float64) * 2 + 1
        return (pp @ y)[:, None] - 3 + pp

    return [a, b, d], d, expected


def row_pipeline(n: object, m: object) -> Graph:
    a, b = te.placeholder((n, m), name="A"), te.placeholder((m,), name="B")
    p = te.compute((n, m), lambda i, j: a[i, j] * 0.5 + b[j], name="P")
    q = te.compute((n, m), lambda i, j: p[i, j] * b[j], name="Q")
    v = te.compute((n, m), lambda i, j: p[i, m - 1 - j] - 1.0, name="V")  # reversed read
    r = te.reduce_axis((0, m), name="r")
    rs = te.compute((n,), lambda i: te.sum(q[i, r], axis=r), name="R")
    t = te.compute((n, m), lambda i, j: p[i, j] - rs[i] + v[i, j], name="T")
    r2 = te.reduce_axis((0, m), name="r2")
    u = te.compute((n,), lambda i: te.max(t[i, r2], axis=r2), name="U")
    out = te.compute((n, m), lambda i, j: t[i, j] * u[i] + rs[i], name="out")

    def expected(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        pp = x.astype(np.float64) * 0.5 + y
        qs = (pp * y).sum(axis=1, keepdims=True)
        tt = pp - qs + (pp[:, ::-1] - 1.0)
        return tt * tt.max(axis=1, keepdims=True) + qs

    return [a, b, out], out, expected


GRAPHS = {"issue_chain": issue_chain, "row_pipeline": row_pipeline}


def _attach_position(reader: Stage, host: Stage) -> int | None:
    """The position among ``host``'s leaves of the loop ``reader`` runs in (``reader`` itself: None), or -1 when
    ``reader`` does not run inside ``host`` at all."""
    current = reader
    while current is not host:
        if current.attach_type is not AttachType.SCOPE or current.attach_stage is None:
            return -1
        if current.attach_stage is host:
            return host.leaf_iter_vars.index(current.attach_ivar)
        current = current.attach_stage
    return None


def legal_attach_points(s: tcomp.schedule.Schedule, stage: Stage) -> list[tuple[Stage, int]]:
    """Every (host, leaf position) at which all readers of ``stage`` run inside the host's loop."""
    readers = s.readers(stage)
    points = []
    later = s.stages[s.stages.index(stage) + 1:]
    for host in later:
        if host.is_placeholder or host.attach_type is AttachType.INLINE:
            continue
        positions = [_attach_position(reader, host) for reader in readers]
        if any(p == -1 for p in positions):
            continue
        limit = min((p for p in positions if p is not None), default=len(host.leaf_iter_vars) - 1)
        points += [(host, index) for index in range(limit + 1)]
    return points


def _constant_extent(stage: Stage, leaf: object) -> bool:
    """Whether ``leaf`` is the inner axis of a split by a factor (its extent is that constant)."""
    return any(isinstance(rel, Split) and rel.inner is leaf and rel.factor is not None for rel in stage.relations)


def random_annotations(data: st.DataObject, stage: Stage) -> None:
    leaves = stage.leaf_iter_vars
    innermost = leaves[-1]
    vectorized = False
    if innermost.kind is not IterKind.REDUCE and _constant_extent(stage, innermost):
        vectorized = data.draw(st.booleans(), label=f"{stage.name} vectorize")
        if vectorized:
            stage.vectorize(innermost)
    if leaves[0].kind is not IterKind.REDUCE and not (vectorized and len(leaves) == 1):
        if data.draw(st.booleans(), label=f"{stage.name} parallel"):
            stage.parallel(leaves[0])
    free = leaves[1:-1] if vectorized else leaves[1:]
    if free and data.draw(st.booleans(), label=f"{stage.name} unroll"):
        stage.unroll(free[data.draw(st.integers(0, len(free) - 1), label="unroll leaf")])


def random_placement(data: st.DataObject, s: tcomp.schedule.Schedule) -> None:
    for stage in reversed(s.stages):
        if stage.is_placeholder:
            continue
        if not stage.is_output:
            choices = ["root"] + ([] if stage.is_reduction else ["inline"])
            points = legal_attach_points(s, stage)
            if points:
                choices += ["compute_at", "compute_at"]
            placement = data.draw(st.sampled_from(choices), label=f"{stage.name} placement")
            if placement == "inline":
                stage.compute_inline()
                continue
            if placement == "compute_at":
                host, position = data.draw(st.sampled_from(points), label=f"{stage.name} attach point")
                stage.compute_at(host, host.leaf_iter_vars[position])
        random_loop_structure(data, stage, max_steps=3)
        random_annotations(data, stage)


@pytest.mark.parametrize("symbolic", [True, False])
def test_two_level_chain_over_a_symbolic_dimension(symbolic: bool) -> None:
    """Issue 10's schedule: ``P`` computed at ``C``'s reduction loop, ``C`` at ``D``'s row loop. With a symbolic
    row count the region of ``P`` came out as row 0 instead of the current row (errors up to 1e20)."""
    m = te.var("m") if symbolic else 7
    a, b = te.placeholder((m, 10), name="A"), te.placeholder((10,), name="B")
    p = te.compute((m, 10), lambda i, j: a[i, j] * 2.0 + 1.0, name="P")
    r = te.reduce_axis((0, 10), name="r")
    c = te.compute((m,), lambda i: te.sum(p[i, r] * b[r], axis=r), name="C")
    d = te.compute((m,), lambda i: c[i] - 3.0, name="D")
    s = tcomp.create_schedule(d)
    s[c].compute_at(s[d], d.op.axis[0])
    s[p].compute_at(s[c], c.op.reduce_axis[0])
    rng = np.random.default_rng(0)
    x, y = reference.random_data(rng, (7, 10)), reference.random_data(rng, (10,))
    with tcomp.config.override(check_bounds=True):
        build_and_check(s, [a, b, d], [x, y], (x * 2.0 + 1.0) @ y - 3.0, rtol=1e-5, atol=1e-5)


def _found_schedules() -> dict[str, Callable[[tcomp.schedule.Schedule, dict[str, Stage]], None]]:
    """Schedules of the issue chain the property test found wrong, each reduced to its steps."""

    def split_reordered(s: tcomp.schedule.Schedule, st: dict[str, Stage]) -> None:
        i, j = st["D"].op.axis
        outer, inner = st["D"].split(j, factor=5)
        st["D"].reorder(inner, outer, i)
        st["C"].compute_at(st["D"], inner)  # the region of P: max(m - 1, j.inner + ...) wide
        st["P"].compute_at(st["D"], inner)

    def column_loop(s: tcomp.schedule.Schedule, st: dict[str, Stage]) -> None:
        i, j = st["D"].op.axis
        st["D"].reorder(j, i)
        outer, _ = st["D"].split(j, factor=1)
        st["C"].compute_at(st["D"], outer)  # P held 2^31 columns per row (the extent's constant bound)
        st["P"].compute_at(st["D"], outer)

    def fused_columns(s: tcomp.schedule.Schedule, st: dict[str, Stage]) -> None:
        i, j = st["D"].op.axis
        st["D"].reorder(j, i)
        fused = st["D"].fuse(j, i)
        st["C"].compute_at(st["D"], fused)  # an extent with no bound free of the fused loop: the whole row
        st["P"].compute_at(st["D"], fused)

    def fused_split(s: tcomp.schedule.Schedule, st: dict[str, Stage]) -> None:
        outer, inner = st["D"].split(st["D"].fuse(*st["D"].op.axis), factor=8)
        st["D"].vectorize(inner)
        st["C"].compute_at(st["D"], inner)
        st["P"].compute_at(st["D"], outer)  # rows (o * 8 + [0, 8)) // m: a division by a symbolic extent

    return {f.__name__: f for f in (split_reordered, column_loop, fused_columns, fused_split)}


@pytest.mark.parametrize("name", sorted(_found_schedules()))
def test_schedules_the_property_test_found(name: str) -> None:
    args, out, expected = issue_chain(te.var("n"), te.var("m"))
    s = tcomp.create_schedule(out)
    _found_schedules()[name](s, {stage.name: stage for stage in s.stages})
    for rows, cols in [(1, 1), (5, 6), (3, 17)]:
        rng = np.random.default_rng(rows + cols)
        x, y = reference.random_data(rng, (rows, cols)), reference.random_data(rng, (cols,))
        with tcomp.config.override(check_bounds=True):
            build_and_check(s, args, [x, y], expected(x, y), rtol=1e-4, atol=1e-4)


def check_random_chain(graph: str, symbolic: bool, rows: int, cols: int, data: st.DataObject) -> None:
    n, m = (te.var("n"), te.var("m")) if symbolic else (rows, cols)
    args, out, expected = GRAPHS[graph](n, m)
    s = tcomp.create_schedule(out)
    random_placement(data, s)
    note(schedule_text(s))
    note(str(tcomp.lower(s, args, check_bounds=True)))
    rng = np.random.default_rng(rows * 100 + cols)
    x, y = reference.random_data(rng, (rows, cols)), reference.random_data(rng, (cols,))
    with tcomp.config.override(check_bounds=True):
        build_and_check(s, args, [x, y], expected(x, y), rtol=1e-4, atol=1e-4)


CHAIN_STRATEGIES = {"graph": st.sampled_from(sorted(GRAPHS)), "symbolic": st.sampled_from([True, True, False]),
                    "rows": st.integers(1, 7), "cols": st.integers(1, 9), "data": st.data()}
test_random_compute_at_chains = SETTINGS(given(**CHAIN_STRATEGIES)(check_random_chain))
