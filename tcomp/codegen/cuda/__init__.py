"""CUDA C code generation: kernels printed from the loop IR, launch configuration, nvcc verification, building.

``build_cuda(schedule, args)`` lowers a GPU schedule, splits it into kernels, prints CUDA C and returns a module that
runs on a GPU when one is available (through CuPy) and in CPU emulation otherwise (the same CUDA C compiled by the
host C++ compiler with OpenMP). ``codegen_cuda`` is the code generator alone; ``nvcc`` holds the helpers that compile
generated source to PTX and report each kernel's registers and shared memory.
"""

from tcomp.codegen.cuda.build import CudaRuntime, build_cuda, lower_cuda
from tcomp.codegen.cuda.codegen import CudaArtifact, codegen_cuda
from tcomp.codegen.cuda.exprs import CudaCodegenError
from tcomp.codegen.cuda.launch import KernelInfo, LaunchConfig
from tcomp.transform.gpu import GPUError

__all__ = [
    "CudaArtifact", "CudaCodegenError", "CudaRuntime", "GPUError", "KernelInfo", "LaunchConfig", "build_cuda",
    "codegen_cuda", "lower_cuda",
]
