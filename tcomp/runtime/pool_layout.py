"""The thread pool's task type and the layout of its job word, shared by the caller's side (``pool_ir``) and the
workers (``pool_workers_ir``): the job's sequence number in bits 40-63, its task count in bits 20-39 and the next
unclaimed task in bits 0-19 (see ``pool_ir``'s protocol)."""

from __future__ import annotations

import llvmlite.ir as ir

from tcomp.runtime.llvm_types import I8_PTR, I64, VOID

TASK_TYPE = ir.FunctionType(VOID, [I8_PTR, I64, I64])  # task(closure, index, count)
TASK_BITS = 20
TASK_MASK = (1 << TASK_BITS) - 1
SEQ_SHIFT = 2 * TASK_BITS
SEQ_MASK = (1 << (64 - SEQ_SHIFT)) - 1
