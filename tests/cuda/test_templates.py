"""The CUDA templates of ``tcomp.autotune.templates.cuda``: their spaces, their fallbacks (the graph compiler's
default schedules), configs run in CPU emulation against numpy on odd shapes, and a short tuning run of each."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import tcomp
from tcomp import autotune, ops, te
from tcomp.autotune import MeasureOptions, MeasureStatus, create_task
from tcomp.autotune.space import ConfigEntity, ConfigSpace
from tcomp.autotune.template import get_template
from tcomp.autotune.templates.cuda.conv2d import conv2d_knobs_of
from tcomp.backend import compile_artifact
from tcomp.ops.cuda.conv2d import Conv2dKnobs
from tcomp.ops.cuda.dispatch import schedule_cuda
from tcomp.ops.cuda.elemwise import bind_elementwise
from tcomp.target import Target

CONV_PAD = (1, 5, 9, 7, 6, 3, 3, 1, 1)  # N, CI, H, W, CO, KH, KW, stride, padding: output 9 x 7
CONV_STRIDE = (1, 3, 11, 7, 5, 3, 3, 2, 0)  # output 5 x 3, no padding stage
TASKS = {
    "conv2d_nchw_cuda": CONV_PAD,
    "reduce_cuda": (5, 100),
    "softmax_cuda": (3, 75),
    "elemwise_cuda": (7, 45),
}


def _space(name: str, args: tuple[Any, ...]) -> ConfigSpace:
    return get_template(name).space(*args, target=Target("cuda"))


def _source(schedule: tcomp.schedule.Schedule, tensors: list[te.Tensor]) -> str:
    return compile_artifact(schedule, tensors, Target("cuda"), "kernel").artifact.source


def _config(space: ConfigSpace, **choices: Any) -> ConfigEntity:
    """The config of ``space`` that differs from the fallback in ``choices`` (split sizes or knob values)."""
    fallback = space.fallback
    digits = []
    for name, knob in space.knobs.items():
        if name not in choices:
            digits.append(knob.position(fallback.choices[name]))
            continue
        wanted = choices[name]
        matches = [k for k, e in enumerate(knob.entities) if getattr(e, "size", getattr(e, "val", None)) == wanted]
        assert matches, f"{name}={wanted} is not in the space"
        digits.append(matches[0])
    return space.get(space.index_from_digits(digits))


def _run_config(name: str, args: tuple[Any, ...], config: ConfigEntity | None) -> None:
    """Instantiate ``config`` (None: the fallback), build it for cuda (emulated here) and compare with numpy."""
    template = get_template(name)
    cfg = config if config is not None else _space(name, args).fallback
    schedule, tensors = template(cfg, *args)
    module = tcomp.build(schedule, tensors, target="cuda")
    rng = np.random.default_rng(1)
    shapes = [tuple(int(d) for d in t.shape) for t in tensors]
    inputs = [rng.uniform(-1, 1, shape).astype(np.float32) for shape in shapes[:-1]]
    out = np.full(shapes[-1], np.nan, np.float32)
    module(*inputs, out)
    assert template.reference is not None
    (expected,) = template.reference(inputs, *args)
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-5, err_msg=f"{name} {cfg}")


# ---------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(TASKS))
def test_space_is_non_trivial(name: str) -> None:
    space = _space(name, TASKS[name])
    assert len(space) >= 3
    assert max(space.dims) >= 3


@pytest.mark.parametrize("name", sorted(TASKS))
def test_other_targets_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match=f"{name} is a cuda template; target llvm.* is not cuda"):
        get_template(name).space(*TASKS[name], target=Target("llvm"))


def test_conv2d_fallback_is_the_graph_default() -> None:
    """The fallback's kernel is the one ``schedule_cuda`` (the graph compiler's default) generates, CUDA C alike."""
    n, ci, h, w, co, kh, kw, stride, padding = CONV_PAD
    space = _space("conv2d_nchw_cuda", CONV_PAD)
    assert conv2d_knobs_of(space.fallback) == Conv2dKnobs(tile_f=2, thread_f=2, tile_y=3, tile_x=7, tile_rc=1)
    data = te.placeholder((n, ci, h, w), name="data")
    kernel = te.placeholder((co, ci, kh, kw), name="kernel")
    out = ops.conv2d_nchw(data, kernel, stride, padding)
    schedule, tensors = get_template("conv2d_nchw_cuda")(space.fallback, *CONV_PAD)
    assert _source(schedule, tensors) == _source(schedule_cuda(out), [data, kernel, out])


def test_reduce_fallback_is_the_graph_default() -> None:
    space = _space("reduce_cuda", TASKS["reduce_cuda"])
    x = te.placeholder(TASKS["reduce_cuda"], name="x")
    out = ops.sum(x, axis=1)
    schedule, tensors = get_template("reduce_cuda")(space.fallback, *TASKS["reduce_cuda"])
    assert _source(schedule, tensors) == _source(schedule_cuda(out), [x, out])


def test_softmax_fallback_is_the_graph_default() -> None:
    space = _space("softmax_cuda", TASKS["softmax_cuda"])
    x = te.placeholder(TASKS["softmax_cuda"], name="x")
    out = ops.softmax(x)
    schedule, tensors = get_template("softmax_cuda")(space.fallback, *TASKS["softmax_cuda"])
    assert _source(schedule, tensors) == _source(schedule_cuda(out), [x, out])


def test_elemwise_fallback_is_the_graph_default() -> None:
    m, n = TASKS["elemwise_cuda"]
    space = _space("elemwise_cuda", (m, n))
    a, b = te.placeholder((m, n), name="a"), te.placeholder((m, n), name="b")
    c = te.placeholder((n,), name="c")
    out = ops.relu(ops.add(ops.multiply(a, b), c))
    schedule, tensors = get_template("elemwise_cuda")(space.fallback, m, n)
    assert _source(schedule, tensors) == _source(schedule_cuda(out), [a, b, c, out])


def test_conv2d_tiles_divide_the_shape_or_are_powers_of_two() -> None:
    space = _space("conv2d_nchw_cuda", CONV_PAD)
    tiles = {name: sorted(e.size[1] for e in space.knobs[name].entities) for name in ("tile_y", "tile_x", "tile_rc")}
    assert tiles == {"tile_y": [1, 2, 3, 4, 8], "tile_x": [1, 2, 4, 7], "tile_rc": [1, 2, 4, 5]}
    for entity in space.knobs["tile_f"].entities:
        _, threads, per_thread = entity.size
        assert 6 % (threads * per_thread) == 0


def test_bind_elementwise_refuses_non_positive_knobs() -> None:
    x = te.placeholder((10,), name="x")
    y = te.compute((10,), lambda i: x[i] * 2.0, name="y")
    s = tcomp.create_schedule(y)
    with pytest.raises(ValueError, match=r"vector \(0\) and unroll \(1\) must be positive"):
        bind_elementwise(s[y], y.op.axis[0], 32, vector=0)


# ---------------------------------------------------------------------------------------------------------------------
CONFIGS = [
    ("conv2d_nchw_cuda", CONV_PAD, {}),
    ("conv2d_nchw_cuda", CONV_PAD, {"tile_f": (2, 3, 1), "tile_y": (3, 4), "tile_x": (4, 2), "tile_rc": (3, 2)}),
    ("conv2d_nchw_cuda", CONV_STRIDE, {}),
    ("conv2d_nchw_cuda", CONV_STRIDE, {"tile_f": (1, 5, 1), "tile_y": (3, 2), "tile_x": (2, 2), "tile_rc": (2, 2)}),
    ("reduce_cuda", (5, 100), {"threads": 128, "rows_per_block": 2}),
    ("reduce_cuda", (5, 100), {"threads": 64, "rows_per_block": 8}),
    ("softmax_cuda", (3, 75), {"threads": 64}),
    ("softmax_cuda", (3, 75), {"threads": 128}),
    ("elemwise_cuda", (7, 45), {"threads": 32, "vector": 4, "unroll": 2}),
    ("elemwise_cuda", (7, 45), {"threads": 128, "vector": 2, "unroll": 4}),
]


@pytest.mark.parametrize(("name", "args", "choices"), CONFIGS,
                         ids=[f"{name}-{k}" for k, (name, _, _) in enumerate(CONFIGS)])
def test_configs_match_numpy_in_emulation(name: str, args: tuple[Any, ...], choices: dict[str, Any]) -> None:
    _run_config(name, args, _config(_space(name, args), **choices))


# ---------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(TASKS))
def test_tuning_measures_every_candidate(name: str) -> None:
    task = create_task(name, TASKS[name], target="cuda")
    result = autotune.RandomTuner(task, seed=5).tune(n_trial=3, measure_option=MeasureOptions(n_parallel=2))
    assert result.statuses == {MeasureStatus.OK: 3}
    assert result.best_cost > 0 and result.default_cost > 0
