"""Target strings: parsing, canonical printing, errors naming the bad option."""

from __future__ import annotations

import pytest

from tcomp.target import Target, TargetError, as_target, host_cpu_name, host_num_cores


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
    assert str(Target("cuda")) == "cuda"
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
])
def test_errors_name_the_bad_option(text: str, pattern: str) -> None:
    with pytest.raises(TargetError, match=pattern):
        Target(text)
    assert issubclass(TargetError, ValueError)
