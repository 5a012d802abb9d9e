"""Turn vectorized loops into vector operations.

Rewrite: ``for v in vectorized(m, m + n): S(v)`` with constant ``n`` becomes ``S(ramp(m, 1, n))``: the loop variable
becomes a ramp, loop-invariant operands are broadcast, ``ramp + x`` folds to a ramp, loads and stores with vector
indices become vector accesses. Inner serial loops are kept and their bodies vectorized (the iterations of a
vectorized axis are independent, which the schedule guarantees). A body that cannot be expressed this way (a guard
or a lazily evaluated select that depends on ``v``, an allocation, a store whose index does not depend on ``v`` but
whose value does) keeps its loop, still marked vectorized, for LLVM's loop vectorizer.
Assumes flattened buffers (one index per access).
"""

from __future__ import annotations

from dataclasses import replace

from tcomp.ir import dtype as dt
from tcomp.ir import expr as E
from tcomp.ir.functor import Mutator, may_fail, uses_var
from tcomp.ir.stmt import BufferStore, For, ForKind, IfThenElse, PrimFunc, SeqStmt, Stmt


class _CannotVectorize(Exception):
    pass


def _is_vector(e: E.Expr) -> bool:
    return dt.lanes(e.dtype) > 1


class _Vectorizer(Mutator):
    def __init__(self, var: E.Var, minimum: E.Expr, lanes: int) -> None:
        self.var = var
        self.lanes = lanes
        self.ramp = E.Ramp(minimum, E.make_const(1, var.dtype), lanes, dt.with_lanes(var.dtype, lanes))

    def broadcast(self, e: E.Expr) -> E.Expr:
        if _is_vector(e):
            return e
        return E.Broadcast(e, self.lanes, dt.with_lanes(e.dtype, self.lanes))

    # -- expressions -------------------------------------------------------------------------------------------------
    def visit_Var(self, node: E.Var) -> E.Expr:
        return self.ramp if node is self.var else node

    def visit_BinaryOp(self, node: E.BinaryOp) -> E.Expr:
        a, b = self.visit(node.a), self.visit(node.b)
        if a is node.a and b is node.b:
            return node
        if not _is_vector(a) and not _is_vector(b):
            return type(node)(a, b, node.dtype)
        folded = _fold_ramp(type(node), a, b)
        if folded is not None:
            return folded
        va, vb = self.broadcast(a), self.broadcast(b)
        return type(node)(va, vb, dt.with_lanes(node.dtype, self.lanes))

    def visit_Not(self, node: E.Not) -> E.Expr:
        a = self.visit(node.a)
        return node if a is node.a else E.Not(a, a.dtype)

    def visit_Select(self, node: E.Select) -> E.Expr:
        cond = self.visit(node.condition)
        t, f = self.visit(node.true_value), self.visit(node.false_value)
        if cond is node.condition and t is node.true_value and f is node.false_value:
            return node
        if _is_vector(cond) and (may_fail(node.true_value) or may_fail(node.false_value)):
            raise _CannotVectorize("a select that guards loads or divisions depends on the vector lane")
        lanes_dtype = dt.with_lanes(node.dtype, self.lanes)
        if not _is_vector(cond):
            if not _is_vector(t) and not _is_vector(f):
                return E.Select(cond, t, f, node.dtype)
            return E.Select(cond, self.broadcast(t), self.broadcast(f), lanes_dtype)
        return E.Select(cond, self.broadcast(t), self.broadcast(f), lanes_dtype)

    def visit_Cast(self, node: E.Cast) -> E.Expr:
        value = self.visit(node.value)
        if value is node.value:
            return node
        return E.Cast(value, dt.with_lanes(node.dtype, dt.lanes(value.dtype)))

    def visit_Call(self, node: E.Call) -> E.Expr:
        args = tuple(self.visit(a) for a in node.args)
        if all(a is b for a, b in zip(args, node.args)):
            return node
        if node.kind != "pure":
            raise _CannotVectorize(f"call {node.op} is not pure")
        args = tuple(self.broadcast(a) for a in args)
        return E.Call(node.op, args, dt.with_lanes(node.dtype, self.lanes), node.kind)

    def visit_BufferLoad(self, node: E.BufferLoad) -> E.Expr:
        index = self.visit(node.indices[0])
        if index is node.indices[0]:
            return node
        return E.BufferLoad(node.buffer, (index,), dt.with_lanes(node.dtype, self.lanes))

    def visit_Let(self, node: E.Let) -> E.Expr:
        raise _CannotVectorize("let expression")

    def visit_Ramp(self, node: E.Ramp) -> E.Expr:
        if uses_var(node, [self.var]):
            raise _CannotVectorize("nested vector")
        return node

    def visit_Broadcast(self, node: E.Broadcast) -> E.Expr:
        return self.visit_Ramp(node)  # type: ignore[arg-type]

    def visit_Reduce(self, node: E.Reduce) -> E.Expr:
        raise _CannotVectorize("reduction")

    # -- statements ------------------------------------------------------------------------------------------------
    def visit_BufferStore(self, node: BufferStore) -> Stmt:
        index = self.visit(node.indices[0])
        value = self.visit(node.value)
        if index is node.indices[0] and value is node.value:
            return node
        if not _is_vector(index):
            if _is_vector(value):
                raise _CannotVectorize("a store whose index does not depend on the lane")
            return BufferStore(node.buffer, value, (index,))
        return BufferStore(node.buffer, self.broadcast(value), (index,))

    def visit_IfThenElse(self, node: IfThenElse) -> Stmt:
        if uses_var(node.condition, [self.var]):
            raise _CannotVectorize("a guard depends on the lane")
        return self.generic_visit(node)

    def visit_For(self, node: For) -> Stmt:
        if uses_var(node.min, [self.var]) or uses_var(node.extent, [self.var]):
            raise _CannotVectorize("an inner loop's bounds depend on the lane")
        if node.kind is ForKind.PARALLEL:
            raise _CannotVectorize("a parallel loop inside a vectorized loop")
        return self.generic_visit(node)

    def visit_SeqStmt(self, node: SeqStmt) -> Stmt:
        return self.generic_visit(node)

    def visit_Allocate(self, node: object) -> Stmt:
        raise _CannotVectorize("an allocation inside a vectorized loop")

    def visit_LetStmt(self, node: object) -> Stmt:
        raise _CannotVectorize("a let binding inside a vectorized loop")

    def visit_AssertStmt(self, node: object) -> Stmt:
        raise _CannotVectorize("an assertion inside a vectorized loop")

    def visit_Evaluate(self, node: object) -> Stmt:
        raise _CannotVectorize("an evaluated call inside a vectorized loop")


def _fold_ramp(cls: type, a: E.Expr, b: E.Expr) -> E.Expr | None:
    """``ramp +- broadcast``, ``ramp +- ramp`` and ``ramp * broadcast`` stay ramps (integer index math)."""
    if not (isinstance(a, (E.Ramp, E.Broadcast)) or not _is_vector(a)):
        return None
    if not (isinstance(b, (E.Ramp, E.Broadcast)) or not _is_vector(b)):
        return None
    if dt.is_float(a.dtype) or dt.is_float(b.dtype):
        return None
    lanes = dt.lanes(a.dtype) if _is_vector(a) else dt.lanes(b.dtype)

    def parts(e: E.Expr) -> tuple[E.Expr, E.Expr]:
        if isinstance(e, E.Ramp):
            return e.base, e.stride
        scalar = e.value if isinstance(e, E.Broadcast) else e
        return scalar, E.make_const(0, scalar.dtype)

    (ab, as_), (bb, bs) = parts(a), parts(b)
    vector_dtype = dt.with_lanes(ab.dtype, lanes)
    if cls is E.Add:
        return E.Ramp(ab + bb, as_ + bs, lanes, vector_dtype)
    if cls is E.Sub:
        return E.Ramp(ab - bb, as_ - bs, lanes, vector_dtype)
    if cls is E.Mul:
        if isinstance(a, E.Ramp) and not isinstance(b, E.Ramp):
            return E.Ramp(ab * bb, as_ * bb, lanes, vector_dtype)
        if isinstance(b, E.Ramp) and not isinstance(a, E.Ramp):
            return E.Ramp(ab * bb, ab * bs, lanes, vector_dtype)
    return None


class _LoopVectorizer(Mutator):
    def visit_For(self, node: For) -> Stmt:
        body = self.visit(node.body)
        lanes = E.const_int_value(node.extent)
        if node.kind is ForKind.VECTORIZED and lanes is not None and lanes > 1:
            try:
                return _Vectorizer(node.loop_var, node.min, lanes).visit(body)
            except _CannotVectorize:
                pass
        return node if body is node.body else replace(node, body=body)


def vectorize_loops(func: PrimFunc) -> PrimFunc:
    """Rewrite vectorized loops into vector operations where possible (see the module docstring)."""
    body = _LoopVectorizer().visit(func.body)
    return func if body is func.body else replace(func, body=body)
