"""The build driver and the backends: named stages per target kind, dumping any stage, timing each, the cache, and
builds that start from an optimized loop function or cross a process boundary."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

import tcomp
from tcomp import config, te
from tcomp.backend import BACKENDS, backend_for, build_cache, compile_artifact
from tcomp.backend.base import MODULE_STAGE, SOURCE_STAGE
from tcomp.ops.cuda import bind_blocks_threads
from tcomp.target import Target, TargetKind


def _vector_add(n: int = 37) -> tuple[tcomp.schedule.Schedule, list[te.Tensor]]:
    a = te.placeholder((n,), name="a")
    b = te.placeholder((n,), name="b")
    c = te.compute((n,), lambda i: a[i] + b[i], name="c")
    s = tcomp.create_schedule(c)
    outer, inner = s[c].split(c.op.axis[0], factor=8)
    s[c].vectorize(inner)
    return s, [a, b, c]


def _gpu_vector_add(n: int = 37) -> tuple[tcomp.schedule.Schedule, list[te.Tensor]]:
    a = te.placeholder((n,), name="a")
    b = te.placeholder((n,), name="b")
    c = te.compute((n,), lambda i: a[i] * b[i], name="c")
    s = tcomp.create_schedule(c)
    bind_blocks_threads(s[c], c.op.axis[0], 16)
    return s, [a, b, c]


def test_every_target_kind_has_a_backend_whose_stages_run_from_the_schedule_to_a_module() -> None:
    assert set(BACKENDS) == set(TargetKind)
    for kind, backend in BACKENDS.items():
        names = backend.stage_names()
        assert backend.kind is kind and backend_for(kind) is backend and backend_for(kind.value) is backend
        assert names[0] == SOURCE_STAGE and names[-1] == MODULE_STAGE and names[1:3] == ["tir", "tir.opt"]
        assert backend.cache_key_stage in names
    assert backend_for("llvm").stage_names() == ["te", "tir", "tir.opt", "ll", "module"]
    assert backend_for("cuda").stage_names() == ["te", "tir", "tir.opt", "kernels", "cu", "module"]


def test_dumping_a_stage_prints_what_that_stage_made(capsys: pytest.CaptureFixture[str]) -> None:
    s, args = _vector_add()
    build_cache.clear()
    module = tcomp.build(s, args, name="vadd", dump=("tir", "tir.opt", "ll"))
    out = capsys.readouterr().out
    tir, rest = out.split("// stage tir.opt: vadd")
    assert tir.startswith("// stage tir: vadd for llvm") and str(tcomp.lower(s, args, "vadd", simple_mode=True)) in tir
    assert str(tcomp.lower(s, args, "vadd")) in rest
    assert "// stage ll: vadd" in rest and module.get_source("ll").strip() in rest
    a, b = np.arange(37, dtype="float32"), np.ones(37, dtype="float32")
    c = np.empty_like(a)
    module(a, b, c)
    np.testing.assert_allclose(c, a + b)


def test_a_cached_build_still_dumps_and_a_setting_dumps_every_build(capsys: pytest.CaptureFixture[str]) -> None:
    s, args = _vector_add(41)
    tcomp.build(s, args, name="cached")
    capsys.readouterr()
    with config.override(dump_stages=("asm", "ll_unopt")):
        module = tcomp.build(s, args, name="cached")
    out = capsys.readouterr().out
    assert "// stage asm: cached" in out and module.get_source("asm").strip() in out
    assert "// stage ll_unopt: cached" in out and module.get_source("ll_unopt").strip() in out


def test_an_unknown_stage_name_is_refused_with_the_names_there_are() -> None:
    s, args = _vector_add()
    with pytest.raises(ValueError, match="unknown stage ptx for target kind llvm; stages: te, tir, tir.opt, ll"):
        tcomp.build(s, args, dump="ptx")
    with pytest.raises(ValueError, match="stages: te, tir, tir.opt, kernels, cu, module"):
        compile_artifact(*_gpu_vector_add(), "cuda", dump="asm")


def test_each_stage_is_timed() -> None:
    s, args = _vector_add(43)
    timings: dict[str, float] = {}
    with config.override(build_cache=False):
        tcomp.build(s, args, timings=timings)
    assert list(timings) == ["te", "tir", "tir.opt", "ll", "module"] and all(v >= 0 for v in timings.values())


def test_cuda_stages_print_the_kernels_and_their_cuda_c(capsys: pytest.CaptureFixture[str]) -> None:
    s, args = _gpu_vector_add()
    compiled = compile_artifact(s, args, "cuda", "gmul", dump=("kernels", "cu"))
    out = capsys.readouterr().out
    kernels, source = out.split("// stage cu: gmul")
    assert "gmul_kernel0" in kernels and "threadIdx.x" in kernels
    assert compiled.artifact.source.strip() in source and '__global__' in source


def test_a_loop_function_enters_at_tir_opt_and_shares_the_cached_code_of_its_schedule() -> None:
    s, args = _vector_add(45)
    build_cache.clear()
    first = compile_artifact(s, args, name="same")
    again = compile_artifact(tcomp.lower(s, args, "same"))
    assert again.artifact is first.artifact and build_cache.hits == 1
    gpu = _gpu_vector_add(45)
    func = tcomp.lower(*gpu, name="gpu_same", target="cuda")
    assert compile_artifact(func, target="cuda").artifact is compile_artifact(*gpu, "cuda", "gpu_same").artifact


def test_an_artifact_crosses_a_process_boundary_and_its_backend_makes_the_module() -> None:
    s, args = _vector_add(47)
    compiled = compile_artifact(s, args, Target("llvm"), "moved")
    artifact = pickle.loads(pickle.dumps(compiled.artifact))
    module = backend_for(compiled.target).make_module(compiled.func, artifact, compiled.target)
    a, b = np.full(47, 2, dtype="float32"), np.arange(47, dtype="float32")
    c = np.empty_like(a)
    module(a, b, c)
    np.testing.assert_allclose(c, a + b)
