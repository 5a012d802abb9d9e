"""Calls of extern functions and tensor intrinsics, and the registry of functions tcomp defines itself.

``Call(op=name, kind="extern")`` calls the C-ABI function ``name`` with arguments typed by their dtypes
(``handle`` is ``i8*``). When a definer is registered for ``name`` (or for a prefix of it), the function's body is
generated into the same LLVM module, so the optimizer sees and may inline it (``microkernels.py`` registers its
definers when the package loads); otherwise the symbol is resolved in the process (libm, libc, or a loaded
library). ``Call(op="address_of", args=(BufferLoad,))`` is the address of a buffer element as a ``handle``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import llvmlite.ir as ir

from tcomp.codegen.llvm import types as T
from tcomp.codegen.llvm.context import CodegenError
from tcomp.ir import dtype as dt
from tcomp.ir import expr as E

if TYPE_CHECKING:
    from tcomp.codegen.llvm.exprs import ExprEmitter

Definer = Callable[[ir.Module, str], ir.Function]
_DEFINERS: dict[str, Definer] = {}


def register_extern(prefix: str) -> Callable[[Definer], Definer]:
    """Register ``definer(module, name)`` to generate every extern function whose name starts with ``prefix``."""

    def wrap(definer: Definer) -> Definer:
        _DEFINERS[prefix] = definer
        return definer

    return wrap


def _definer_for(name: str) -> Definer | None:
    matches = [p for p in _DEFINERS if name.startswith(p)]
    return _DEFINERS[max(matches, key=len)] if matches else None


def emit_extern_call(emitter: ExprEmitter, call: E.Call) -> ir.Value:
    if call.op == "tcomp.prefetch":
        return _emit_prefetch(emitter, call)
    module = emitter.ctx.module
    args = [emitter.emit(a) for a in call.args]
    function = module.globals.get(call.op)
    if not isinstance(function, ir.Function):
        definer = _definer_for(call.op)
        if definer is not None:
            function = definer(module, call.op)
        else:
            ret = T.VOID if call.dtype == "void" else T.llvm_type(call.dtype)
            function = emitter.ctx.declare(call.op, ret, [a.type for a in args])
    expected = function.function_type.args
    if len(expected) != len(args):
        raise CodegenError(f"extern {call.op} takes {len(expected)} arguments, got {len(args)} in {call}")
    for position, (value, ty) in enumerate(zip(args, expected)):
        if value.type != ty:
            raise CodegenError(f"extern {call.op}: argument {position} has type {value.type}, expected {ty}")
    result = emitter.builder.call(function, args)
    if call.dtype == "void" or isinstance(function.function_type.return_type, ir.VoidType):
        return T.I32(0)
    return result


def emit_address_of(emitter: ExprEmitter, call: E.Call, inbounds: bool = True) -> ir.Value:
    (load,) = call.args
    if not isinstance(load, E.BufferLoad) or len(load.indices) != 1:
        raise CodegenError(f"address_of needs a flattened buffer element, got {load}")
    index = emitter.index_i64(load.indices[0])
    pointer = emitter.builder.gep(emitter.buffer_pointer(load.buffer), [index], inbounds=inbounds)
    return emitter.builder.bitcast(pointer, T.I8_PTR)


def _emit_prefetch(emitter: ExprEmitter, call: E.Call) -> ir.Value:
    """``llvm.prefetch`` of a read with high temporal locality into the data cache; never faults."""
    (address,) = call.args
    if not isinstance(address, E.Call) or address.op != "address_of":
        raise CodegenError(f"tcomp.prefetch needs an address_of argument, got {address}")
    pointer = emit_address_of(emitter, address, inbounds=False)
    function = emitter.ctx.declare("llvm.prefetch.p0", T.VOID, [T.I8_PTR, T.I32, T.I32, T.I32])
    emitter.builder.call(function, [pointer, T.I32(0), T.I32(3), T.I32(1)])
    return T.I32(0)


def handle_dtype_ok(dtype: str) -> bool:
    return dt.is_handle(dtype)
