"""CUDA C code generation: kernels printed from the loop IR, with what the host needs to launch them.

``build_cuda(schedule, args)`` lowers a GPU schedule, splits it into kernels, prints CUDA C and returns a module that
runs on a GPU when one is available (through CuPy) and in CPU emulation otherwise (the same CUDA C compiled by the
host C++ compiler with OpenMP). ``codegen_cuda`` is the code generator alone; it returns a ``CudaArtifact``
(``tcomp.runtime.cuda_artifact``).
"""

from tcomp.codegen.cuda.build import CudaRuntime, build_cuda, lower_cuda
from tcomp.codegen.cuda.codegen import codegen_cuda
from tcomp.codegen.cuda.exprs import CudaCodegenError
from tcomp.transform.gpu import GPUError

__all__ = ["CudaCodegenError", "CudaRuntime", "GPUError", "build_cuda", "codegen_cuda", "lower_cuda"]
