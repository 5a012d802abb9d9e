"""The matmul and dense templates (``tcomp/autotune/templates/cpu/gemm.py``) against numpy, with the GEMM micro-kernel
and with plain loops, for random configs; and where the micro-kernel does not apply."""

from __future__ import annotations

import numpy as np
import pytest

import tcomp
from tcomp.autotune import create_task
from tcomp.autotune.space import ConfigEntity, ConfigSpace

RNG = np.random.default_rng(5)


def configs_with_micro_kernel(space: ConfigSpace, value: int, count: int) -> list[ConfigEntity]:
    found = []
    for index in [space.fallback.index, *space.sample(np.random.default_rng(1), 40)]:
        config = space.get(index)
        if config["micro_kernel"].val == value:
            found.append(config)
        if len(found) == count:
            break
    return found


@pytest.mark.parametrize("name", ["matmul", "dense"])
@pytest.mark.parametrize("micro_kernel", [1, 0])
def test_gemm_template_configs_match_numpy(name: str, micro_kernel: int) -> None:
    # dense on fewer rows runs dot products (below); this one is large enough for the packed GEMM
    M, N, K = (48, 64, 40) if name == "matmul" else (128, 512, 256)
    task = create_task(name, (M, N, K), "llvm -num-cores=2")
    a = RNG.random((M, K), dtype=np.float32)
    b = RNG.random((N, K) if name == "dense" else (K, N), dtype=np.float32)
    expected = a @ (b.T if name == "dense" else b)
    configs = configs_with_micro_kernel(task.config_space, micro_kernel, 3)
    assert configs
    for config in configs:
        schedule, tensors = task.instantiate(config)
        module = tcomp.build(schedule, tensors, target=task.target)
        out = np.full((M, N), np.nan, dtype=np.float32)
        module(a, b, out)
        np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-5)
        uses_kernel = "tcomp_sgemm_f32" in str(tcomp.lower(schedule, tensors))
        nr = config["tile_j"].size[1]
        assert uses_kernel == (micro_kernel == 1 and N % nr == 0)


def test_fallback_uses_the_micro_kernel_only_where_panels_divide_n() -> None:
    whole = create_task("matmul", (64, 64, 64), "llvm -num-cores=2")
    schedule, tensors = whole.instantiate(None)
    assert "tcomp_sgemm_f32" in str(tcomp.lower(schedule, tensors))
    ragged = create_task("matmul", (64, 21, 64), "llvm -num-cores=2")
    schedule, tensors = ragged.instantiate(None)
    assert "tcomp_sgemm_f32" not in str(tcomp.lower(schedule, tensors))


def test_a_config_recorded_before_the_micro_kernel_knob_keeps_its_loops() -> None:
    task = create_task("matmul", (64, 64, 64), "llvm -num-cores=2")
    record = task.config_space.fallback.to_json()
    record["knobs"] = [knob for knob in record["knobs"] if knob[0] != "micro_kernel"]
    schedule, tensors = task.instantiate(ConfigEntity.from_json(record))
    assert "tcomp_sgemm_f32" not in str(tcomp.lower(schedule, tensors))
    module = tcomp.build(schedule, tensors, target=task.target)
    a = RNG.random((64, 64), dtype=np.float32)
    b = RNG.random((64, 64), dtype=np.float32)
    out = np.zeros((64, 64), dtype=np.float32)
    module(a, b, out)
    np.testing.assert_allclose(out, a @ b, rtol=1e-4)


def test_dense_row_vectors_tune_the_default_dot_products() -> None:
    """A dense product with a row or a few (the default schedule's dot products) keeps them: its knobs are the dot
    tile's, its fallback is the default's tile, and every config of an odd shape matches numpy."""
    from tcomp.ops.cpu.common import CpuTarget
    from tcomp.ops.cpu.dense import default_dot_tile

    M, N, K = 3, 10, 24
    task = create_task("dense", (M, N, K), "llvm -num-cores=2")
    space = task.config_space
    assert {knob[0] for knob in space.fallback.to_json()["knobs"]} == {"dot_lanes", "dot_rows", "dot_cols",
                                                                         "dot_unroll"}
    default = default_dot_tile(M, N, K, CpuTarget.of(task.target).lanes("float32"))
    assert default is not None
    fallback = space.fallback
    assert (fallback["dot_lanes"].val, fallback["dot_rows"].val, fallback["dot_cols"].val) == (
        default.lanes, default.rows, default.cols)
    x = RNG.standard_normal((M, K), dtype=np.float32)
    w = RNG.standard_normal((N, K), dtype=np.float32)
    built = 0
    for index in range(len(space)):
        try:
            schedule, tensors = task.instantiate(space.get(index))
        except ValueError:
            continue
        out = np.full((M, N), np.nan, dtype=np.float32)
        tcomp.build(schedule, tensors, target=task.target)(x, w, out)
        np.testing.assert_allclose(out, x @ w.T, rtol=1e-5, atol=1e-5)
        built += 1
    assert built >= len(space) // 2


def test_dense_dot_tiles_that_spill_are_outside_the_space() -> None:
    task = create_task("dense", (4, 64, 256), "llvm -mcpu=x86-64-v3 -num-cores=2")  # AVX2: 16 vector registers
    space = task.config_space
    big = [space.get(i) for i in range(len(space))
           if space.get(i)["dot_rows"].val == 4 and space.get(i)["dot_cols"].val == 16]
    assert big
    for config in big:
        with pytest.raises(ValueError, match="vector registers"):
            task.instantiate(config)
    task.instantiate(space.fallback)  # the default tile stays in the space


@pytest.mark.parametrize("shape", [(256, 256, 256), (64, 1024, 1024), (100, 200, 300)])
def test_the_default_config_gives_every_core_a_block_of_rows(shape: tuple[int, int, int]) -> None:
    """The row blocks (tile_i's first factor) run in parallel: the default has one per core at least where M holds
    two register tiles (256^3 ran at 104 GFLOP/s on one block and 186 on two, 2-core AVX-512)."""
    task = create_task("matmul", shape, "llvm -num-cores=2")
    assert task.config_space.fallback["tile_i"].size[0] >= 2
