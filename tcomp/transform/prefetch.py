"""Software prefetch for loops marked ``pragma(axis, "prefetch", distance)``.

Rewrite: at the start of each iteration of the marked loop over ``v``, for every buffer read in its body whose
index depends on ``v`` (and otherwise only on variables defined outside the loop, inner loop variables being taken
at their first value), emit ``prefetch(&B[index(v + distance)])``; a vector load (a ``ramp`` index of unit stride)
prefetches every cache line it spans. A prefetch never faults, so addresses past the end are harmless. Assumes
flattened buffers.
"""

from __future__ import annotations

from dataclasses import replace

from tcomp.arith import simplify
from tcomp.ir import dtype as dt
from tcomp.ir.expr import BufferLoad, Call, Expr, Ramp, Var, const, const_int_value
from tcomp.ir.functor import Mutator, free_vars, post_order_visit, substitute
from tcomp.ir.stmt import Evaluate, For, PrimFunc, Stmt, seq
from tcomp.ir.structural import structural_key
from tcomp.target import CACHE_LINE_BYTES


def _inner_loop_mins(body: Stmt) -> dict[Var, Expr]:
    mins: dict[Var, Expr] = {}

    def visit(node: object) -> None:
        if isinstance(node, For):
            mins[node.loop_var] = node.min

    post_order_visit(body, visit)
    return mins


def prefetch_calls(loop: For, distance: int) -> list[Stmt]:
    inner = _inner_loop_mins(loop.body)
    loads: list[BufferLoad] = []

    def visit(node: object) -> None:
        if isinstance(node, BufferLoad) and any(v is loop.loop_var for v in free_vars(node.indices[0])):
            loads.append(node)

    post_order_visit(loop.body, visit)
    calls: list[Stmt] = []
    seen: set[object] = set()
    for load in loads:
        index = substitute(load.indices[0], {**inner, loop.loop_var: loop.loop_var + distance})
        for line in _line_starts(index, load.buffer.dtype):
            key = (id(load.buffer), structural_key(line))
            if key in seen:
                continue
            seen.add(key)
            address = Call("address_of", (BufferLoad(load.buffer, (line,), load.buffer.dtype),), "handle")
            calls.append(Evaluate(Call("tcomp.prefetch", (address,), "int32", "extern")))
    return calls


def _line_starts(index: Expr, dtype: str) -> list[Expr]:
    """The scalar indices whose addresses cover ``index``'s cache lines: itself, or for a unit-stride ramp its base
    and one element per ``CACHE_LINE_BYTES`` bytes after it."""
    if not isinstance(index, Ramp):
        return [index]
    if const_int_value(simplify(index.stride)) != 1:
        return [index.base]
    per_line = max(1, CACHE_LINE_BYTES // max(1, dt.bits(dtype) // 8))
    return [index.base if offset == 0 else index.base + offset for offset in range(0, index.lanes, per_line)]


class _Injector(Mutator):
    def visit_For(self, node: For) -> Stmt:
        body = self.visit(node.body)
        distance = next((v for k, v in node.annotations if k == "prefetch"), None)
        if distance is not None:
            step = int(distance) if not isinstance(distance, bool) else 1
            calls = prefetch_calls(replace(node, body=body), step)
            if calls:
                return replace(node, body=seq(*calls, body))
        return node if body is node.body else replace(node, body=body)


def inject_prefetch(func: PrimFunc) -> PrimFunc:
    """Insert prefetches into loops marked ``prefetch`` (see the module docstring)."""
    body = _Injector().visit(func.body)
    return func if body is func.body else replace(func, body=body)


_ = const
