"""Running a sequence of kernel entry points in one call from Python.

A graph executor calls its kernels in order, each through the entry-point ABI of ``artifact.py``
(``int32 entry(void** buffers, int64* size_vars, int64* error_area)``). Called one by one through ``ctypes`` that
costs about 2 us of Python and ``ctypes`` work per kernel (measured on znver1: 87 calls of an empty entry point, 186
us), as much as a small kernel's own work. ``SequenceRunner`` instead compiles, once per process, the loop

    int32 tcomp_run_sequence(int64* table, int64 count, int64* failed):
      for k in range(count):
        status = table[4k](table[4k + 1], table[4k + 2], table[4k + 3])   # entry, buffers, size_vars, error_area
        if status != 0: *failed = k; return status
      return 0

so one ``ctypes`` call runs every kernel; ``run(table)`` returns ``(status, k)`` of the first kernel that failed, or
``(0, -1)``. The table holds addresses, so the caller keeps the entry points and the arrays they point to alive.
"""

from __future__ import annotations

import ctypes
import functools
import threading
from collections.abc import Sequence

import llvmlite.ir as ir

from tcomp.runtime import llvm_toolchain
from tcomp.target import Target

RUN_SEQUENCE = "tcomp_run_sequence"
FIELDS = 4  # entry, buffers, size_vars, error_area

_I32 = ir.IntType(32)
_I64 = ir.IntType(64)
_I8_PTR = ir.IntType(8).as_pointer()
_ENTRY_TYPE = ir.FunctionType(_I32, [_I8_PTR.as_pointer(), _I64.as_pointer(), _I64.as_pointer()])


def sequence_module(triple: str) -> str:
    """The LLVM assembly of ``tcomp_run_sequence`` (see the module docstring)."""
    module = ir.Module(name="tcomp_sequence")
    module.triple = triple
    function = ir.Function(module, ir.FunctionType(_I32, [_I64.as_pointer(), _I64, _I64.as_pointer()]),
                           name=RUN_SEQUENCE)
    table, count, failed = function.args
    table.name, count.name, failed.name = "table", "count", "failed"
    entry, loop, body, fail, done = (function.append_basic_block(name)
                                     for name in ("entry", "loop", "body", "fail", "done"))
    bld = ir.IRBuilder(entry)
    bld.branch(loop)
    bld.position_at_end(loop)
    index = bld.phi(_I64, name="k")
    index.add_incoming(_I64(0), entry)
    bld.cbranch(bld.icmp_signed("<", index, count), body, done)
    bld.position_at_end(body)
    base = bld.mul(index, _I64(FIELDS))

    def field(offset: int, typ: ir.Type) -> ir.Value:
        value = bld.load(bld.gep(table, [bld.add(base, _I64(offset))]))
        return bld.inttoptr(value, typ)

    callee = field(0, _ENTRY_TYPE.as_pointer())
    status = bld.call(callee, [field(1, _I8_PTR.as_pointer()), field(2, _I64.as_pointer()),
                               field(3, _I64.as_pointer())])
    index.add_incoming(bld.add(index, _I64(1)), body)
    bld.cbranch(bld.icmp_signed("!=", status, _I32(0)), fail, loop)
    bld.position_at_end(fail)
    bld.store(index, failed)
    bld.ret(status)
    bld.position_at_end(done)
    bld.ret(_I32(0))
    return str(module)


_LOCK = threading.Lock()


@functools.cache
def _compiled() -> tuple[llvm_toolchain.JITFunction, ctypes._CFuncPtr]:
    with _LOCK:
        jit = llvm_toolchain.JITFunction(sequence_module(llvm_toolchain.process_triple()), RUN_SEQUENCE,
                                         Target.current_host())
    prototype = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.POINTER(ctypes.c_int64), ctypes.c_int64,
                                 ctypes.POINTER(ctypes.c_int64))
    return jit, prototype(jit.address)


class SequenceRunner:
    """Runs the entry points of ``calls`` (``(entry address, buffers, size_vars, error_area)``, the last three
    ``ctypes`` arrays) in order with one call (see the module docstring)."""

    def __init__(self, calls: Sequence[tuple[int, ctypes.Array, ctypes.Array, ctypes.Array]]) -> None:
        values: list[int] = []
        for address, buffers, sizes, errors in calls:
            if not address:
                raise ValueError("a kernel of the sequence has no code (address 0)")
            values += [address, ctypes.addressof(buffers), ctypes.addressof(sizes), ctypes.addressof(errors)]
        self._arrays = [tuple(call[1:]) for call in calls]  # the table points into them
        self._count = len(calls)
        self._table = (ctypes.c_int64 * max(1, len(values)))(*values)
        self._failed = ctypes.c_int64(-1)
        self._jit, self._run = _compiled()

    def __len__(self) -> int:
        return self._count

    def run(self) -> tuple[int, int]:
        """``(status, k)``: the status of kernel ``k``, the first that failed, or ``(0, -1)``."""
        status = self._run(self._table, self._count, ctypes.byref(self._failed))
        if status == 0:
            return 0, -1
        return int(status), int(self._failed.value)
