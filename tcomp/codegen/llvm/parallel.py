"""Parallel loops: outline the body, pack what it uses into a closure, hand it to the thread pool.

For ``for i in parallel(min, extent): body`` in function ``f`` this emits

- ``f.parallel.body(T* noalias bufs..., vars..., i64* err, iN lo, iN hi) -> i32``: ``for i in [lo, hi): body`` as an
  ordinary function (``noalias`` buffer arguments let the optimizer vectorize it, except for the parameters of
  ``f``'s ``may_alias`` attribute, which may share memory; its allocations are per thread);
- ``f.parallel(i8* closure, i64 k, i64 count)``: unpacks the closure and calls the body function on task ``k`` of
  ``count`` equal tasks: ``[min + k * extent / count, min + (k + 1) * extent / count)``;
- in ``f``: a stack closure ``{buffer pointers, variable values, err, min, extent}``, the call
  ``tcomp_parallel_for(f.parallel, &closure, extent, num_cores)`` (``tcomp/runtime/pool_ir.py``: it picks the task
  count and runs the tasks on the pool, the calling thread included), then a check of the error area: if a task
  failed an assertion (it stopped its own iterations), ``f`` frees its heap buffers and returns.

The closure holds every variable and buffer the loop uses but does not define: size variables, outer loop
variables, let variables and buffers allocated outside the loop.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import llvmlite.ir as ir

from tcomp.codegen.llvm import types as T
from tcomp.codegen.llvm.context import argument_names
from tcomp.ir import expr as E
from tcomp.ir import stmt as S
from tcomp.ir.buffer import Buffer
from tcomp.ir.functor import Visitor
from tcomp.runtime.pool_ir import declare_entry
from tcomp.runtime.pool_layout import TASK_TYPE

if TYPE_CHECKING:
    from tcomp.codegen.llvm.stmts import FunctionEmitter


class _Uses(Visitor):
    """Variables and buffers a statement uses, and those it defines itself (in first-use order)."""

    def __init__(self) -> None:
        self.vars: dict[E.Var, None] = {}
        self.buffers: dict[Buffer, None] = {}
        self.defined_vars: set[E.Var] = set()
        self.defined_buffers: set[Buffer] = set()

    def visit_Var(self, node: E.Var) -> None:
        self.vars.setdefault(node, None)

    def visit_BufferLoad(self, node: E.BufferLoad) -> None:
        self.buffers.setdefault(node.buffer, None)
        self.generic_visit(node)

    def visit_BufferStore(self, node: S.BufferStore) -> None:
        self.buffers.setdefault(node.buffer, None)
        self.generic_visit(node)

    def visit_Allocate(self, node: S.Allocate) -> None:
        self.defined_buffers.add(node.buffer)
        for dim in node.buffer.shape:
            self.visit(dim)
        self.generic_visit(node)

    def visit_For(self, node: S.For) -> None:
        self.defined_vars.add(node.loop_var)
        self.generic_visit(node)

    def visit_LetStmt(self, node: S.LetStmt) -> None:
        self.defined_vars.add(node.var)
        self.generic_visit(node)

    def visit_Let(self, node: E.Let) -> None:
        self.defined_vars.add(node.var)
        self.generic_visit(node)


def captures(loop: S.For) -> tuple[list[Buffer], list[E.Var]]:
    """The buffers and variables ``loop`` uses from outside itself."""
    uses = _Uses()
    uses.visit(loop)
    buffers = [b for b in uses.buffers if b not in uses.defined_buffers]
    variables = [v for v in uses.vars if v not in uses.defined_vars]
    return buffers, variables


def emit_parallel_for(parent: FunctionEmitter, loop: S.For) -> None:
    """Emit ``loop`` (kind PARALLEL) at the parent's builder position as an outlined, thread-pool launched body."""
    ctx = parent.ctx
    buffers, variables = captures(loop)
    buffer_types = [T.storage_type(b.dtype).as_pointer() for b in buffers]
    var_types = [T.llvm_type(v.dtype) for v in variables]
    index_type = T.llvm_type(loop.loop_var.dtype)
    base_name = ctx.unique_name(f"{parent.function.name}.parallel")

    body_fn = _emit_body_function(parent, loop, base_name + ".body", buffers, variables, buffer_types, var_types)
    closure_type = ir.LiteralStructType([*buffer_types, *var_types, T.I64.as_pointer(), T.I64, T.I64])
    launcher = _emit_launcher(parent, base_name, body_fn, closure_type, len(buffers) + len(variables), index_type)

    bld = parent.builder
    begin = parent.emit_as(loop.min, "int64")
    extent = parent.emit_as(loop.extent, "int64")
    run_block = parent.new_block(f"parallel.{loop.loop_var.name}.launch")
    done_block = parent.new_block(f"parallel.{loop.loop_var.name}.end")
    bld.cbranch(bld.icmp_signed(">", extent, T.I64(0)), run_block, done_block)
    bld.position_at_end(run_block)

    closure = parent.alloca(closure_type, 8)
    field_values = [parent.buffer_pointer(b) for b in buffers]
    field_values += [parent.emit(v) for v in variables]
    field_values += [parent.err_ptr, begin, extent]
    for position, value in enumerate(field_values):
        bld.store(value, bld.gep(closure, [T.I32(0), T.I32(position)], inbounds=True))
    cores = T.I32(max(1, ctx.target.num_cores))
    bld.call(declare_entry(ctx.module), [launcher, bld.bitcast(closure, T.I8_PTR), extent, cores])

    status = bld.load(parent.err_ptr, align=8)
    fail_block = parent.new_block("parallel.fail")
    bld.cbranch(bld.icmp_signed("!=", status, T.I64(0)), fail_block, done_block)
    bld.position_at_end(fail_block)
    parent.return_status(bld.trunc(status, T.I32))
    bld.position_at_end(done_block)


def _emit_body_function(parent: FunctionEmitter, loop: S.For, name: str, buffers: list[Buffer],
                        variables: list[E.Var], buffer_types: list[ir.Type], var_types: list[ir.Type]) -> ir.Function:
    ctx = parent.ctx
    index_type = T.llvm_type(loop.loop_var.dtype)
    fnty = ir.FunctionType(T.I32, [*buffer_types, *var_types, T.I64.as_pointer(), index_type, index_type])
    function = ir.Function(ctx.module, fnty, name=name)
    function.linkage = "internal"
    args = list(function.args)
    names = argument_names([b.name for b in buffers] + [v.name for v in variables] + ["err", "lo", "hi"])
    for arg, name in zip(args, names):
        arg.name = name
    for arg, buffer in zip(args, buffers):
        if buffer not in ctx.may_alias:
            arg.add_attribute("noalias")
    err, lo, hi = args[-3], args[-2], args[-1]
    inner = type(parent)(ctx, function, err, in_parallel=True)  # the body's emitter is of the parent's kind
    inner.buffers.update(zip(buffers, args))
    inner.vars.update(zip(variables, args[len(buffers):]))
    inner.loop(loop.loop_var, lo, hi, lambda: inner.emit_stmt(loop.body))
    inner.finish()
    return function


def _emit_launcher(parent: FunctionEmitter, name: str, body_fn: ir.Function, closure_type: ir.Type,
                   num_captured: int, index_type: ir.Type) -> ir.Function:
    ctx = parent.ctx
    function = ir.Function(ctx.module, TASK_TYPE, name=name)
    function.linkage = "internal"
    bld = ir.IRBuilder(function.append_basic_block("entry"))
    closure = bld.bitcast(function.args[0], closure_type.as_pointer())
    task, count = function.args[1], function.args[2]
    fields = [bld.load(bld.gep(closure, [T.I32(0), T.I32(k)], inbounds=True)) for k in range(num_captured + 3)]
    begin, extent = fields[-2], fields[-1]
    lo = bld.add(begin, bld.sdiv(bld.mul(task, extent), count))
    hi = bld.add(begin, bld.sdiv(bld.mul(bld.add(task, T.I64(1)), extent), count))
    run_block = function.append_basic_block("run")
    done_block = function.append_basic_block("done")
    bld.cbranch(bld.icmp_signed("<", lo, hi), run_block, done_block)
    bld.position_at_end(run_block)
    if index_type != T.I64:
        lo, hi = bld.trunc(lo, index_type), bld.trunc(hi, index_type)
    bld.call(body_fn, [*fields[:num_captured], fields[num_captured], lo, hi])
    bld.branch(done_block)
    bld.position_at_end(done_block)
    bld.ret_void()
    return function
