"""CUDA C code generation: kernels printed from the loop IR, with what the host needs to launch them.

``split_kernels`` splits a lowered, flattened function into kernels and runs the kernel passes (the ``kernels``
stage of a CUDA build); ``print_cuda`` prints their CUDA C (the ``cu`` stage) as a ``CudaArtifact``
(``tcomp.runtime.cuda_artifact``); ``codegen_cuda`` does both. Building, running and the stage list are the CUDA
backend's (``tcomp.backend.cuda``).
"""

from tcomp.codegen.cuda.codegen import Kernels, codegen_cuda, print_cuda, split_kernels
from tcomp.codegen.cuda.exprs import CudaCodegenError
from tcomp.ir.gpu import GPUError

__all__ = ["CudaCodegenError", "GPUError", "Kernels", "codegen_cuda", "print_cuda", "split_kernels"]
