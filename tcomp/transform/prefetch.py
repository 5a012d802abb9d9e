"""Software prefetch for loops marked ``pragma(axis, "prefetch", distance)``.

Rewrite: at the start of each iteration of the marked loop over ``v``, for every buffer read in its body whose
index depends on ``v`` (and otherwise only on variables defined outside the loop, inner loop variables being taken
at their first value), emit ``prefetch(&B[index(v + distance)])``. A prefetch never faults, so addresses past the
end are harmless. Assumes flattened buffers.
"""

from __future__ import annotations

from dataclasses import replace

from tcomp.ir.expr import BufferLoad, Call, Expr, Var, const
from tcomp.ir.functor import Mutator, free_vars, post_order_visit, substitute
from tcomp.ir.stmt import Evaluate, For, PrimFunc, Stmt, seq
from tcomp.ir.structural import structural_key


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
        key = (id(load.buffer), structural_key(index))
        if key in seen:
            continue
        seen.add(key)
        address = Call("address_of", (BufferLoad(load.buffer, (index,), load.buffer.dtype),), "handle")
        calls.append(Evaluate(Call("tcomp.prefetch", (address,), "int32", "extern")))
    return calls


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
