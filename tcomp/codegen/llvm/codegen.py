"""``codegen_llvm``: a lowered ``PrimFunc`` to an optimized LLVM module: an ``LLVMArtifact`` (``tcomp.runtime``).

The entry function has the ABI described in ``tcomp/runtime/artifact.py``. It unpacks its arguments and calls
``@<entry>.impl``, which takes typed ``noalias`` pointers so the optimizer knows the buffers do not overlap (the
caller guarantees that written buffers share no memory with any other argument), except the parameters listed in
``func.attr("may_alias")``, which may share memory with each other (in-place operators). On a failed check, heap
buffers of the failing function and its callers are freed; nothing leaks.
"""

from __future__ import annotations

import re

import llvmlite.ir as ir

from tcomp.codegen.llvm import types as T
from tcomp.codegen.llvm.context import CodegenError, ModuleContext, argument_names
from tcomp.codegen.llvm.intrinsics import LIBM_FUNCTIONS
from tcomp.codegen.llvm.stmts import FunctionEmitter
from tcomp.ir.stmt import CHECK_DIVISION, PrimFunc
from tcomp.runtime import llvm_toolchain as toolchain
from tcomp.runtime.artifact import LLVMArtifact
from tcomp.runtime.pool_ir import CONFIGURE as POOL_CONFIGURE
from tcomp.runtime.pool_ir import ENTRY as POOL_ENTRY
from tcomp.runtime.pool_ir import LIBC_FUNCTIONS as POOL_LIBC
from tcomp.runtime.thread_pool import parallel_runtime_available
from tcomp.target import Target, TargetKind, as_target

# External symbols a module may declare; an entry function never takes one of these names.
_RESERVED = {"free", "aligned_alloc", "malloc", POOL_ENTRY, POOL_CONFIGURE, *POOL_LIBC}
_RESERVED |= {name for name, _ in LIBM_FUNCTIONS.values()} | {name + "f" for name, _ in LIBM_FUNCTIONS.values()}
_RESERVED |= {"exp", "expf", "log", "logf", "sqrt", "sqrtf", "sin", "sinf", "cos", "cosf", "pow", "powf", "fma",
              "fmaf", "floor", "floorf", "ceil", "ceilf", "exp2", "exp2f", "log2", "log2f", "log10", "log10f",
              "roundeven", "roundevenf", "trunc", "truncf", "fabs", "fabsf", "main"}


def entry_symbol(name: str) -> str:
    """The exported symbol for a function called ``name``: ``name`` with characters outside ``[A-Za-z0-9_]``
    replaced by ``_``, suffixed by ``_kernel`` if it would collide with a C library function."""
    symbol = re.sub(r"[^A-Za-z0-9_]", "_", name) or "kernel"
    if symbol[0].isdigit():
        symbol = "_" + symbol
    if symbol in _RESERVED:
        symbol += "_kernel"
    return symbol


def codegen_llvm(func: PrimFunc, target: Target | str | None = None) -> LLVMArtifact:
    """Translate ``func`` (flattened loop IR: one index per load and store) for an LLVM CPU target.

    Raises ``CodegenError`` naming the construct the backend cannot translate.
    """
    target = as_target(target)
    if target.kind is not TargetKind.LLVM:
        raise CodegenError(f"codegen_llvm needs an llvm target, got {target}")
    use_threads = parallel_runtime_available()
    entry = entry_symbol(func.name)
    ctx = ModuleContext(entry, target, use_threads)
    try:
        _emit_functions(ctx, func, entry)
    except CodegenError as exc:
        raise CodegenError(f"function {func.name!r}: {exc}") from None
    ctx.module.triple = toolchain.process_triple()
    ctx.module.data_layout = toolchain.data_layout(toolchain.target_machine(target))
    ll_unopt = str(ctx.module)
    compiled = toolchain.compile_ir(ll_unopt, target)  # the assembly is emitted on request (``assembly()``)
    return LLVMArtifact(func.name, entry, target, ll_unopt, compiled, "", tuple(ctx.asserts), use_threads)


def _emit_functions(ctx: ModuleContext, func: PrimFunc, entry: str) -> None:
    pointer_types = [T.storage_type(b.dtype).as_pointer() for b in func.params]
    var_types = [T.llvm_type(v.dtype) for v in func.size_vars]
    impl_type = ir.FunctionType(T.I32, [*pointer_types, *var_types, T.I64.as_pointer()])
    impl = ir.Function(ctx.module, impl_type, name=entry + ".impl")
    impl.linkage = "internal"
    args = list(impl.args)
    names = argument_names([b.name for b in func.params] + [v.name for v in func.size_vars] + ["err"])
    for arg, name in zip(args, names):
        arg.name = name
    may_alias = {int(i) for i in func.attr("may_alias", ())}  # in-place pairs (a graph executor's memory plan)
    ctx.may_alias = frozenset(b for position, b in enumerate(func.params) if position in may_alias)
    ctx.check_division = bool(func.attr(CHECK_DIVISION, False))
    for buffer, arg in zip(func.params, args):
        if buffer not in ctx.may_alias:
            arg.add_attribute("noalias")
    emitter = FunctionEmitter(ctx, impl, args[-1], in_parallel=False)
    emitter.buffers.update(zip(func.params, args))
    emitter.vars.update(zip(func.size_vars, args[len(func.params): -1]))
    emitter.emit_body(func.body)

    wrapper_type = ir.FunctionType(T.I32, [T.I8_PTR.as_pointer(), T.I64.as_pointer(), T.I64.as_pointer()])
    wrapper = ir.Function(ctx.module, wrapper_type, name=entry)
    buffers_arg, sizes_arg, err_arg = wrapper.args
    buffers_arg.name, sizes_arg.name, err_arg.name = "buffers", "size_vars", "error_area"
    bld = ir.IRBuilder(wrapper.append_basic_block("entry"))
    call_args: list[ir.Value] = []
    for position, ptr_type in enumerate(pointer_types):
        raw = bld.load(bld.gep(buffers_arg, [T.I64(position)], inbounds=True), align=8)
        call_args.append(bld.bitcast(raw, ptr_type))
    for position, var_type in enumerate(var_types):
        value = bld.load(bld.gep(sizes_arg, [T.I64(position)], inbounds=True), align=8)
        call_args.append(value if var_type == T.I64 else bld.trunc(value, var_type))
    call_args.append(err_arg)
    bld.ret(bld.call(impl, call_args))


