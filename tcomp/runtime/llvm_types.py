"""LLVM IR type aliases, shared by the code generator (``tcomp.codegen.llvm.types``) and the IR the runtime emits
itself (the thread pool, ``pool_ir``)."""

from __future__ import annotations

import llvmlite.ir as ir

I1 = ir.IntType(1)
I8 = ir.IntType(8)
I32 = ir.IntType(32)
I64 = ir.IntType(64)
VOID = ir.VoidType()
I8_PTR = I8.as_pointer()
