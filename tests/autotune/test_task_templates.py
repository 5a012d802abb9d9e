"""Tasks (keys, FLOPs) and the built-in templates: every template lowers for its fallback and random configs."""

from __future__ import annotations

import numpy as np
import pytest

import tcomp
from tcomp import autotune
from tcomp.autotune import Task, TemplateError, create_task
from tcomp.autotune.template import get_template
from tcomp.autotune.templates.cuda.knobs import define_thread_split

TEMPLATE_CASES = [
    ("matmul", (64, 48, 32)),
    ("dense", (32, 40, 24)),
    ("batch_matmul", (2, 16, 32, 16)),
    ("conv2d_nchw", (1, 8, 10, 10, 16, 3, 3, 1, 1)),
    ("depthwise_conv2d_nchw", (1, 8, 10, 10, 2, 3, 3, 2, 1)),
    ("conv2d_nchwc", (1, 8, 9, 9, 16, 3, 3, 1, 0)),
]


def test_task_key_is_stable_json_and_flop_counts_multiply_adds() -> None:
    task = create_task("matmul", [64, 48, 32], "llvm -num-cores=2")
    again = Task.from_json(task.to_json())
    assert again == task and again.key == task.key
    assert task.key.startswith('["matmul",[64,48,32,"float32"],"llvm ')  # defaults filled in
    assert create_task("matmul", (64, 48, 32, "float32"), "llvm -num-cores=2") == task
    assert task.flop == 2 * 64 * 48 * 32
    conv = create_task("conv2d_nchw", (1, 8, 10, 10, 16, 3, 3, 1, 1))
    assert conv.flop == 2 * 16 * 10 * 10 * 8 * 9


def test_unknown_template_raises() -> None:
    with pytest.raises(TemplateError, match="unknown template 'nope'"):
        create_task("nope", (1,))


def test_template_arguments_must_be_json() -> None:
    with pytest.raises(TypeError, match="JSON values"):
        create_task("matmul", (64, 64, object()))


def test_list_templates_has_the_builtins() -> None:
    names = autotune.list_templates()
    for name, _ in TEMPLATE_CASES:
        assert name in names
    assert "matmul_cuda" in names


@pytest.mark.parametrize("name, args", TEMPLATE_CASES, ids=[c[0] for c in TEMPLATE_CASES])
def test_template_lowers_fallback_and_random_configs(name: str, args: tuple) -> None:
    task = create_task(name, args)
    space = task.config_space
    assert len(space) > 1
    indices = [space.fallback.index] + space.sample(np.random.default_rng(0), 3)
    for index in indices:
        schedule, tensors = task.instantiate(space.get(index))
        func = tcomp.lower(schedule, tensors)
        assert len(func.params) == 3


def test_template_fallback_builds_and_matches_numpy() -> None:
    task = create_task("dense", (16, 40, 24))
    schedule, tensors = task.instantiate()
    module = tcomp.build(schedule, tensors)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 24), dtype=np.float32)
    w = rng.standard_normal((40, 24), dtype=np.float32)
    out = np.zeros((16, 40), dtype=np.float32)
    module(x, w, out)
    np.testing.assert_allclose(out, x @ w.T, rtol=1e-4, atol=1e-4)


def test_every_builtin_template_has_an_independent_reference() -> None:
    """Candidates are checked against numpy, not against tcomp's own naive schedule (which shares their lowering
    and code generation)."""
    for name in autotune.list_templates():
        if get_template(name).module.startswith("tcomp.autotune.templates."):
            assert get_template(name).reference is not None, name


REFERENCE_CASES = [
    ("conv2d_nchw", (2, 5, 9, 7, 6, 3, 3, 2, 1)),
    ("conv2d_nchw", (1, 3, 8, 8, 4, 1, 1, 1, 0)),
    ("depthwise_conv2d_nchw", (1, 6, 11, 13, 2, 3, 3, 2, 1)),
    ("conv2d_nchwc", (1, 8, 7, 5, 8, 3, 3, 1, 1)),
    ("conv2d_nchwc_blocked", (1, 16, 9, 11, 16, 3, 3, 1, 1, 8, 8)),
    ("conv2d_nchwc_blocked", (2, 8, 10, 10, 16, 3, 3, 2, 1, 4, 8)),
    # with the epilogues models fuse behind their convolutions: bias, residual, scalar, activations
    ("conv2d_nchwc_blocked", (1, 16, 9, 11, 16, 3, 3, 1, 1, 8, 8, "float32", "add:c,add:t,relu")),
    ("conv2d_nchwc_blocked", (1, 32, 5, 7, 16, 1, 1, 1, 0, 8, 8, "float32", "multiply:c,subtract:s,clip")),
]


@pytest.mark.parametrize("name, args", REFERENCE_CASES, ids=[f"{c[0]}-{k}" for k, c in enumerate(REFERENCE_CASES)])
def test_convolution_references_agree_with_built_configs(name: str, args: tuple) -> None:
    """The numpy reference of each CPU convolution template against the fallback and a random config, built (odd
    sizes, strides, padding, a 1x1 kernel, batches of 2)."""
    task = create_task(name, args)
    space = task.config_space
    rng = np.random.default_rng(1)
    for index in [space.fallback.index] + space.sample(rng, 1):
        schedule, tensors = task.instantiate(space.get(index))
        module = tcomp.build(schedule, tensors)
        inputs = [rng.standard_normal(tuple(int(d) for d in t.shape)).astype(np.float32) for t in tensors[:-1]]
        out = np.full(tuple(int(d) for d in tensors[-1].shape), np.nan, dtype=np.float32)
        module(*inputs, out)
        [expected] = task.template.reference(inputs, *task.args)
        assert expected.shape == out.shape and expected.dtype == np.float32
        np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4, err_msg=f"{name}{args} config {index}")


def test_blocked_conv_epilogue_members_are_checked() -> None:
    from tcomp.autotune.templates.cpu.conv2d import epilogue_steps

    assert epilogue_steps("add:c,add:t,relu") == [("add", "c"), ("add", "t"), ("relu", None)]
    assert epilogue_steps("") == []
    for bad in ("sigmoid", "add", "add:x", "relu:c"):
        with pytest.raises(ValueError, match="unknown epilogue member"):
            epilogue_steps(bad)


def test_cuda_matmul_space_holds_fitting_tiles_and_lowers() -> None:
    from tcomp.ops.cuda.gemm_choice import fits, matmul_problem, parse_tile_name
    from tcomp.target import Precision, Target

    task = create_task("matmul_cuda", (64, 64, 32), target="cuda")
    space = task.config_space
    problem = matmul_problem(64, 64, 32, "float32", Precision.FP32)
    for entity in space.knobs["tile"].entities:
        tile = parse_tile_name(entity.val)
        assert 64 <= tile.threads <= 512 and fits(tile, problem, Target("cuda"))
    schedule, tensors = task.instantiate(space.get(len(space) - 1))
    text = str(tcomp.lower(schedule, tensors, simple_mode=True))
    assert "threadIdx.x" in text and "blockIdx.y" in text and "shared" in text


def test_cuda_template_refuses_llvm() -> None:
    task = create_task("matmul_cuda", (64, 64, 32), target="llvm")
    with pytest.raises(ValueError, match="cuda template"):
        task.instantiate(None)


def test_define_thread_split_caps_threads() -> None:
    space = autotune.ConfigSpace()
    define_thread_split(space, "t", 256, max_threads=16, max_vthreads=2)
    assert all(e.size[2] <= 16 and e.size[1] <= 2 for e in space.knobs["t"].entities)
