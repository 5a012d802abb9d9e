"""CUDA tests: the ``nvcc`` marker, and one nvcc compile of every case's kernels shared by all tests."""

from __future__ import annotations

import pytest

from tcomp.runtime.nvcc import KernelResources, kernel_resources, nvcc_available


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "nvcc: needs nvcc and ptxas on the PATH (skipped where they are missing)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if nvcc_available():
        return
    skip = pytest.mark.skip(reason="nvcc and ptxas are not on the PATH")
    for item in items:
        if item.get_closest_marker("nvcc") is not None:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def all_case_sources() -> dict[str, str]:
    """The CUDA C of every case in ``cases.CASES``, by case name."""
    from tests.cuda.cases import CASES, artifact

    return {case.name: artifact(case).source for case in CASES}


@pytest.fixture(scope="session")
def all_case_resources(all_case_sources: dict[str, str]) -> dict[str, KernelResources]:
    """ptxas resources of every kernel of every case, from one nvcc compile of all sources concatenated."""
    return kernel_resources("\n".join(all_case_sources.values()), "sm_80")
