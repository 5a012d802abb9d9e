"""Every case's CUDA C compiles with ``nvcc -ptx -arch=sm_80``; ptxas reports each kernel's registers and shared
memory. All sources are compiled together, once (``all_case_resources`` in conftest.py)."""

from __future__ import annotations

import pytest

from tcomp.runtime.nvcc import KernelResources, parse_ptxas_output, resource_report
from tests.cuda.cases import CASE_IDS, CASES, Case, artifact

pytestmark = pytest.mark.nvcc


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_kernels_compile_with_nvcc(case: Case, all_case_resources: dict[str, KernelResources]) -> None:
    generated = artifact(case)
    for kernel in generated.kernels:
        assert kernel.name in all_case_resources, f"{kernel.name} missing from the PTX"
        resources = all_case_resources[kernel.name]
        assert 0 < resources.registers <= 255
        assert resources.shared_bytes == kernel.shared_bytes
        assert resources.spill_stores <= 16  # ptxas may spill a word under __launch_bounds__; never more
    print(resource_report({k.name: all_case_resources[k.name] for k in generated.kernels}))


def test_source_is_readable_cuda(all_case_sources: dict[str, str]) -> None:
    source = all_case_sources["matmul_odd"]
    assert 'extern "C" __global__ void __launch_bounds__(' in source
    assert "__shared__ __align__(16) float A_shared[" in source and "__syncthreads();" in source
    assert "(int)threadIdx.x" in source and "(int)blockIdx.y" in source


def test_parse_ptxas_output() -> None:
    text = (
        "ptxas info    : Compiling entry function 'k0' for 'sm_80'\n"
        "ptxas info    : Function properties for k0\n"
        "    8 bytes stack frame, 4 bytes spill stores, 4 bytes spill loads\n"
        "ptxas info    : Used 40 registers, 4352 bytes smem, 376 bytes cmem[0]\n"
        "ptxas info    : Compiling entry function 'k1' for 'sm_80'\n"
        "ptxas info    : Used 12 registers, 360 bytes cmem[0]\n"
    )
    parsed = parse_ptxas_output(text)
    assert parsed["k0"] == KernelResources("k0", 40, 4352, 4, 4)
    assert parsed["k1"] == KernelResources("k1", 12, 0, 0, 0)
