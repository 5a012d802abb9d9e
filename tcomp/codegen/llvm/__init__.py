"""LLVM CPU code generation: ``codegen_llvm(func, target) -> LLVMArtifact`` (IR text, assembly, JIT address; the
artifact type is the runtime's, ``tcomp.runtime.artifact``)."""

from tcomp.codegen.llvm import microkernels  # noqa: F401  (registers the micro-kernels' definers with extern.py)
from tcomp.codegen.llvm.codegen import codegen_llvm, entry_symbol
from tcomp.codegen.llvm.context import CodegenError
from tcomp.codegen.llvm.intrinsics import SUPPORTED_OPS

__all__ = ["CodegenError", "SUPPORTED_OPS", "codegen_llvm", "entry_symbol"]
