"""LLVM CPU code generation: ``codegen_llvm(func, target) -> LLVMArtifact`` (IR text, assembly, JIT address)."""

from tcomp.codegen.llvm.codegen import LLVMArtifact, codegen_llvm, entry_symbol
from tcomp.codegen.llvm.context import AssertInfo, CodegenError
from tcomp.codegen.llvm.intrinsics import SUPPORTED_OPS

__all__ = ["AssertInfo", "CodegenError", "LLVMArtifact", "SUPPORTED_OPS", "codegen_llvm", "entry_symbol"]
