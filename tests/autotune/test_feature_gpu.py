"""GPU features of configs (``tcomp.autotune.feature_gpu``): tile kernels and shared-memory schedules that differ in
their tiles get different vectors; the figures are the kernels' own; registers from ptxas on request; zeros for
CPU functions."""

from __future__ import annotations

import math

import numpy as np
import pytest

import tcomp
from tcomp import autotune, te
from tcomp.autotune.feature import LOOP_IR_LENGTH, FeatureExtractor
from tcomp.autotune.feature_gpu import GPU_WIDTH, gpu_features
from tcomp.backend import compile_artifact
from tcomp.ops.cuda.gemm_choice import matmul_problem, parse_tile_name
from tcomp.ops.cuda.gemm_tile import shared_bytes
from tcomp.runtime.nvcc import nvcc_available
from tcomp.target import Precision


def _sample(task: autotune.Task, count: int) -> list[int]:
    size = len(task.config_space)
    return sorted({int(i) for i in np.linspace(0, size - 1, count)})


def test_tile_configs_with_different_tiles_get_different_features() -> None:
    task = autotune.create_task("matmul_cuda", (512, 384, 256), target="cuda -arch=sm_90")
    indices = _sample(task, 24)
    rows = FeatureExtractor(task).get(indices)
    assert rows.shape == (len(indices), LOOP_IR_LENGTH)
    gpu = rows[:, -GPU_WIDTH:]
    tiles = [task.config_space.get(i)["tile"].val for i in indices]
    for a in range(len(indices)):
        for b in range(a + 1, len(indices)):
            if tiles[a] != tiles[b]:
                assert not np.array_equal(gpu[a], gpu[b]), (tiles[a], tiles[b])


def test_tile_kernel_figures() -> None:
    task = autotune.create_task("matmul_cuda", (512, 384, 256), target="cuda")
    config = task.config_space.fallback
    tile = parse_tile_name(config["tile"].val, k_outer=config["k_outer"].val, min_blocks=config["min_blocks"].val)
    schedule, tensors = task.instantiate(config)
    values = gpu_features(tcomp.lower(schedule, tensors, simple_mode=True))
    problem = matmul_problem(512, 384, 256, "float32", Precision.FP32)
    blocks = math.ceil(512 / tile.block_m) * math.ceil(384 / tile.block_n)
    assert values[0] == pytest.approx(math.log2(1 + tile.threads))
    assert values[1] == pytest.approx(math.log2(1 + blocks))
    assert values[2] == pytest.approx(math.log2(1 + shared_bytes(tile, problem)))
    assert 0 < values[5] <= 1  # occupancy
    assert values[11] == 0.0 and values[15] == pytest.approx(math.log2(1 + tile.block_k))  # float32, block depth


def test_shared_memory_schedules_with_different_tiles_get_different_features() -> None:
    task = autotune.create_task("conv2d_nchw_cuda", (1, 16, 14, 14, 32, 3, 3, 1, 1), target="cuda")
    indices = _sample(task, 12)
    gpu = FeatureExtractor(task).get(indices)[:, -GPU_WIDTH:]
    assert len({row.tobytes() for row in gpu}) > len(indices) // 2
    assert np.all(gpu[:, 0] > 0) and np.all(gpu[:, 2] > 0)  # threads and shared memory seen


def test_cpu_functions_have_no_gpu_features() -> None:
    a = te.placeholder((8, 8), name="a")
    b = te.compute((8, 8), lambda i, j: a[i, j] * 2.0, name="b")
    func = tcomp.lower(tcomp.create_schedule(b), [a, b], simple_mode=True)
    assert gpu_features(func) == [0.0] * GPU_WIDTH


@pytest.mark.skipif(not nvcc_available(), reason="needs nvcc")
def test_registers_from_ptxas() -> None:
    from tcomp.runtime.nvcc import kernel_resources

    task = autotune.create_task("matmul_cuda", (256, 256, 256), target="cuda")
    config = task.config_space.fallback
    row = FeatureExtractor(task, ptxas=True).of_config(config)
    schedule, tensors = task.instantiate(config)
    source = compile_artifact(schedule, tensors, task.target).artifact.source
    (resources,) = kernel_resources(source, task.target.arch).values()
    assert row[LOOP_IR_LENGTH - GPU_WIDTH + 4] == pytest.approx(min(1.0, resources.registers / 255.0))
