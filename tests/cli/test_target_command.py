"""``tcomp target``: what a target string means here, for CPUs and for CUDA, and the names LLVM knows."""

from __future__ import annotations

import pytest

from tcomp.cli import main
from tcomp.target import host_cpu_name


def test_host_cpu(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["target"]) == 0
    out = capsys.readouterr().out
    assert f"cpu: {host_cpu_name()} (this machine's CPU)" in out
    assert "-bit" in out and "FMA:" in out and "threads" in out
    assert f'--resources "llvm:{host_cpu_name()}=1"' in out  # what a Dask worker declares to run its trials


def test_cuda_says_architecture_limits_and_where_it_runs(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["target", "cuda -arch=sm_90"]) == 0
    out = capsys.readouterr().out
    assert "architecture: sm_90 (compute capability 9.0)" in out
    assert "1024 threads, 227 KiB shared memory (over 48 KiB: dynamic, with the opt-in), 65536 registers" in out
    assert "nvcc:" in out and "runs on:" in out
    assert '--resources "cuda:sm_90=1"' in out
    assert "cpu:" not in out and "cores: 0" not in out


def test_bad_target_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["target", "llvm -mcpu=foo"]) == 2
    assert "tcomp target: error: target option -mcpu: LLVM knows no CPU 'foo'" in capsys.readouterr().err
    assert main(["target", "cuda -arch=80"]) == 2
    assert "expected sm_<number>" in capsys.readouterr().err


def test_list_fits_100_columns(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["target", "--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("LLVM CPUs for ") and any(line.startswith("features (") for line in lines)
    assert max(len(line) for line in lines) <= 100
