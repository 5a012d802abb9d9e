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
    M, N, K = 48, 64, 40
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
