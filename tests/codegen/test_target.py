"""Target strings: parsing, canonical printing, errors naming the bad option."""

from __future__ import annotations

import pytest

from tcomp.target import Precision, Target, TargetError, as_target, host_cpu_name, host_num_cores


def test_host_defaults() -> None:
    target = Target("llvm")
    assert target.kind == "llvm"
    assert target.mcpu == host_cpu_name()
    assert target.num_cores == host_num_cores() >= 1
    assert target == Target.current_host() == Target("llvm -mcpu=native")
    assert "+" in target.features  # the host's own feature flags


def test_options_and_canonical_string() -> None:
    target = Target("llvm -mcpu=znver3 -num-cores=2 -mattr=+avx2,+fma")
    assert (target.mcpu, target.num_cores, target.mattr) == ("znver3", 2, ("+avx2", "+fma"))
    assert str(target) == "llvm -mcpu=znver3 -mattr=+avx2,+fma -num-cores=2"
    assert Target.parse(str(target)) == target
    assert Target(kind="llvm", mcpu="znver3", mattr=("+avx2", "+fma"), num_cores=2) == target
    assert target.features == "+avx2,+fma"
    assert str(Target("cuda -arch=sm_80")) in ("cuda", "cuda -arch=sm_80")  # the latter on another GPU's machine
    assert as_target("llvm -num-cores=3").num_cores == 3
    assert as_target(None) == Target("llvm")
    assert as_target(target) is target


@pytest.mark.parametrize("text,pattern", [
    ("opencl", "unknown target kind 'opencl'"),
    ("llvm -mcpux=znver3", "unknown target option '-mcpux'"),
    ("llvm -num-cores=zero", "-num-cores: expected a positive integer, got 'zero'"),
    ("llvm -num-cores=0", "-num-cores: expected a positive integer, got '0'"),
    ("llvm -mcpu", "target option '-mcpu' needs a value"),
    ("llvm -mattr=avx2", "feature 'avx2' must start with"),
    ("cuda -mcpu=sm_80", "'-mcpu' does not apply to kind 'cuda'"),
    ("cuda -precision=fp8", "unknown precision 'fp8'; expected one of fp32, tf32, fp16, bf16"),
    ("cuda -arch=sm_75 -precision=fp16", "tensor cores with fp16 need compute capability 8.0"),
    ("llvm -precision=fp16", "precision fp16 applies to cuda targets; an llvm target takes fp32 or bf16"),
])
def test_errors_name_the_bad_option(text: str, pattern: str) -> None:
    with pytest.raises(TargetError, match=pattern):
        Target(text)
    assert issubclass(TargetError, ValueError)


def test_cuda_precision_option() -> None:
    target = Target("cuda -arch=sm_90 -precision=bf16")
    assert target.precision is Precision.BF16 and target.compute_capability == 90
    assert str(target) == "cuda -arch=sm_90 -precision=bf16" and Target(str(target)) == target
    assert Target("cuda").precision is Precision.FP32 and str(Target("cuda -precision=fp32")) == "cuda"
    assert Target("cuda").with_precision("float16") == Target("cuda -precision=fp16")
    assert Target("cuda").with_precision(None) == Target("cuda")
    with pytest.raises(TargetError, match="precision fp16 applies to cuda targets"):
        Target("llvm").with_precision("fp16")
    assert Target("llvm").with_precision("fp32") == Target("llvm")
    assert [p.uses_tensor_cores for p in Precision] == [False, True, True, True]
    assert Precision.BF16.tolerance(64) > Precision.FP16.tolerance(64) > Precision.FP32.tolerance(64)


def test_a_feature_counts_only_with_the_one_it_builds_on() -> None:
    """LLVM turns every AVX-512 extension off with AVX512F (and AVX512F with AVX2): ``-mattr=-avx512f`` leaves no
    AVX-512 dot product, so no kernel asks LLVM for an instruction it would abort on."""
    target = Target("llvm -mattr=-avx512f")
    assert target.vector_bits <= 256 and not target.bf16_dots
    assert not target.has_feature("avx512vnni") and not target.has_feature("avx512bf16")
    assert target.byte_dots == target.has_feature("avxvnni")
    assert not Target("llvm -mattr=-avx2").has_feature("avx512f")
