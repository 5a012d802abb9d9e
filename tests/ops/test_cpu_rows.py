"""Row-wise normalizations under ``schedule_cpu`` (``tcomp/ops/cpu/rows.py``): one parallel loop over the rows with
every statistic and temporary computed inside it, against numpy on sizes the vector width does not divide."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import tcomp
from tcomp import ops, te
from tcomp.backend.testing import build_and_check
from tcomp.ir.expr import Ramp
from tcomp.ir.functor import post_order_visit
from tcomp.ir.stmt import For, ForKind
from tcomp.ops import OpError
from tcomp.ops import testing as reference
from tcomp.ops.cpu import schedule_cpu
from tcomp.ops.testing import random_data
from tcomp.schedule.relation import AttachType

RNG = np.random.default_rng(1212)
SHAPES = [(128, 768), (7, 100), (3, 5, 33), (2, 3), (4, 1030)]


def _lowered_nodes(s: Any, args: list[Any]) -> list[object]:
    nodes: list[object] = []
    post_order_visit(tcomp.lower(s, args).body, nodes.append)
    return nodes


def _check_one_pass(s: Any, out: Any, args: list[Any]) -> None:
    """Every stage but the output is computed inside the output's row loop, the only parallel loop; the columns
    are vectorized where there are at least 4 (vector expressions, or a vectorized loop with a guarded tail)."""
    for stage in s.stages:
        if stage.is_placeholder or stage is s[out] or stage.attach_type is AttachType.INLINE:
            continue
        host = stage
        while host.attach_type is AttachType.SCOPE:
            host = host.attach_stage
        assert host is s[out], f"stage {stage.name} is computed outside the row loop"
    nodes = _lowered_nodes(s, args)
    assert sum(isinstance(n, For) and n.kind is ForKind.PARALLEL for n in nodes) <= 1
    if out.shape[-1].value >= 4:
        assert any(isinstance(n, Ramp) or isinstance(n, For) and n.kind is ForKind.VECTORIZED for n in nodes)


@pytest.mark.parametrize("shape", SHAPES)
def test_softmax_and_log_softmax(shape: tuple[int, ...]) -> None:
    x_t = te.placeholder(shape, name="x")
    x = random_data(RNG, shape, low=-30, high=30)
    for op, ref in ((ops.softmax, reference.softmax_python), (ops.log_softmax, reference.log_softmax_python)):
        out = op(x_t)
        s = schedule_cpu(out)
        _check_one_pass(s, out, [x_t, out])
        build_and_check(s, [x_t, out], [x], ref(x), 2e-6, 1e-6)


@pytest.mark.parametrize("shape", SHAPES)
def test_layer_norm_and_rms_norm(shape: tuple[int, ...]) -> None:
    x_t, g_t, b_t = te.placeholder(shape, name="x"), te.placeholder(shape[-1:], name="g"), \
        te.placeholder(shape[-1:], name="b")
    x = random_data(RNG, shape, low=-3, high=5)
    g, b = random_data(RNG, shape[-1:]), random_data(RNG, shape[-1:])
    out = ops.layer_norm(x_t, g_t, b_t)
    s = schedule_cpu(out)
    _check_one_pass(s, out, [x_t, g_t, b_t, out])
    build_and_check(s, [x_t, g_t, b_t, out], [x, g, b], reference.layer_norm_python(x, g, b), 2e-5, 2e-5)
    out = ops.rms_norm(x_t, g_t)
    s = schedule_cpu(out)
    _check_one_pass(s, out, [x_t, g_t, out])
    build_and_check(s, [x_t, g_t, out], [x, g], reference.rms_norm_python(x, g), 2e-5, 2e-5)


def test_norm_over_several_trailing_axes_and_epilogue() -> None:
    """layer_norm over the last two axes with a fused elementwise epilogue (inlined into the row loop)."""
    shape = (6, 4, 24)
    x_t = te.placeholder(shape, name="x")
    out = ops.relu(ops.layer_norm(x_t, axis=(1, 2)))
    s = schedule_cpu(out)
    _check_one_pass(s, out, [x_t, out])
    x = random_data(RNG, shape)
    build_and_check(s, [x_t, out], [x], np.maximum(reference.layer_norm_python(x, None, None, (1, 2)), 0), 2e-5, 2e-5)


def test_softmax_over_a_leading_axis_keeps_the_stage_schedule() -> None:
    """A row group needs the normalized axes last; softmax over axis 0 is scheduled stage by stage."""
    x_t = te.placeholder((20, 9), name="x")
    out = ops.softmax(x_t, axis=0)
    s = schedule_cpu(out)
    assert all(st.attach_type is not AttachType.SCOPE for st in s.stages if st.name.endswith("_exp"))
    x = random_data(RNG, (20, 9), low=-5, high=5)
    build_and_check(s, [x_t, out], [x], reference.softmax_python(x, 0), 2e-6, 1e-6)


def test_rows_too_long_for_a_row_buffer_keep_the_stage_schedule() -> None:
    x_t = te.placeholder((2, 20000), name="x")
    out = ops.softmax(x_t)
    s = schedule_cpu(out)
    assert all(st.attach_type is not AttachType.SCOPE for st in s.stages if st.name.endswith("_exp"))
    x = random_data(RNG, (2, 20000), low=-5, high=5)
    build_and_check(s, [x_t, out], [x], reference.softmax_python(x), 2e-6, 1e-9)


def test_rms_norm_errors() -> None:
    x_t = te.placeholder((3, 4), name="X")
    with pytest.raises(OpError, match=r"rms_norm: gamma has shape \(3\), expected \(4\)"):
        ops.rms_norm(x_t, te.placeholder((3,), name="g"))
    with pytest.raises(OpError, match="rms_norm: epsilon must be non-negative"):
        ops.rms_norm(x_t, epsilon=-1.0)
    with pytest.raises(OpError, match="rms_norm: argument x must be a float tensor"):
        ops.rms_norm(te.placeholder((3, 4), "int32", name="I"))
