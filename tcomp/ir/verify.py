"""Well-formedness checks for a lowered function; tests run them after every pass.

Checks: every variable is defined before use (a parameter size variable, an enclosing loop or let); every
accessed buffer is a parameter or allocated in an enclosing scope; no tensor-level node (``ProducerLoad``,
``Reduce``) is left; operand dtypes of binary operations agree, comparisons give bool, conditions are bool,
indices and loop bounds are integers; after flattening, every access has exactly one index.
"""

from __future__ import annotations

from tcomp.ir import dtype as dt
from tcomp.ir import expr as E
from tcomp.ir import stmt as S
from tcomp.ir.buffer import Buffer
from tcomp.ir.functor import Visitor


class IRVerifyError(AssertionError):
    """The loop IR is malformed; the message names the offending node."""


class _Verifier(Visitor):
    def __init__(self, func: S.PrimFunc, flat: bool) -> None:
        self.flat = flat
        self.vars: set[int] = {id(v) for v in func.size_vars}
        self.buffers: set[int] = {id(b) for b in func.params}
        self.errors: list[str] = []

    def fail(self, text: str) -> None:
        self.errors.append(text)

    def visit_Var(self, node: E.Var) -> None:
        if id(node) not in self.vars:
            self.fail(f"variable {node.name} is used outside the scope that defines it")

    def visit_BinaryOp(self, node: E.BinaryOp) -> None:
        self.generic_visit(node)
        if node.a.dtype != node.b.dtype:
            self.fail(f"operands of {node} have dtypes {node.a.dtype} and {node.b.dtype}")
        if isinstance(node, E.CmpOp) and not dt.is_bool(node.dtype):
            self.fail(f"comparison {node} has dtype {node.dtype}")

    def visit_Select(self, node: E.Select) -> None:
        self.generic_visit(node)
        if not dt.is_bool(node.condition.dtype):
            self.fail(f"select condition {node.condition} is not bool")

    def visit_ProducerLoad(self, node: E.ProducerLoad) -> None:
        self.fail(f"tensor read {node} was not lowered to a buffer read")

    def visit_Reduce(self, node: E.Reduce) -> None:
        self.fail(f"reduction {node} was not lowered")

    def _access(self, buffer: Buffer, indices: tuple[E.Expr, ...], what: str) -> None:
        if id(buffer) not in self.buffers:
            self.fail(f"{what} of buffer {buffer.name}, which is neither a parameter nor allocated here")
        if self.flat and len(indices) != 1:
            self.fail(f"{what} of buffer {buffer.name} has {len(indices)} indices after flattening")
        if not self.flat and len(indices) != len(buffer.shape):
            self.fail(f"{what} of buffer {buffer.name} has {len(indices)} indices for {len(buffer.shape)} dimensions")
        for index in indices:
            if dt.is_float(index.dtype):
                self.fail(f"{what} of buffer {buffer.name} has a float index {index}")

    def visit_BufferLoad(self, node: E.BufferLoad) -> None:
        self._access(node.buffer, node.indices, "load")
        self.generic_visit(node)

    def visit_BufferStore(self, node: S.BufferStore) -> None:
        self._access(node.buffer, node.indices, "store")
        self.generic_visit(node)
        if dt.element(node.value.dtype) != dt.element(node.buffer.dtype):
            self.fail(f"store of {node.value.dtype} into {node.buffer.name} of dtype {node.buffer.dtype}")

    def visit_For(self, node: S.For) -> None:
        self.visit(node.min)
        self.visit(node.extent)
        if id(node.loop_var) in self.vars:
            self.fail(f"loop variable {node.loop_var.name} is defined twice")
        for bound in (node.min, node.extent):
            if not dt.is_int(bound.dtype):
                self.fail(f"loop {node.loop_var.name} has a non-integer bound {bound}")
        self.vars.add(id(node.loop_var))
        self.visit(node.body)
        self.vars.discard(id(node.loop_var))

    def visit_LetStmt(self, node: S.LetStmt) -> None:
        self.visit(node.value)
        self.vars.add(id(node.var))
        self.visit(node.body)
        self.vars.discard(id(node.var))

    def visit_Let(self, node: E.Let) -> None:
        self.visit(node.value)
        self.vars.add(id(node.var))
        self.visit(node.body)
        self.vars.discard(id(node.var))

    def visit_Allocate(self, node: S.Allocate) -> None:
        for dim in node.buffer.shape:
            self.visit(dim)
        self.buffers.add(id(node.buffer))
        self.visit(node.body)
        self.buffers.discard(id(node.buffer))

    def visit_IfThenElse(self, node: S.IfThenElse) -> None:
        self.generic_visit(node)
        if not dt.is_bool(node.condition.dtype):
            self.fail(f"if condition {node.condition} is not bool")


def verify(func: S.PrimFunc, flat: bool = False) -> None:
    """Raise ``IRVerifyError`` listing every problem found in ``func``."""
    verifier = _Verifier(func, flat)
    verifier.visit(func.body)
    if verifier.errors:
        raise IRVerifyError(f"function {func.name}: " + "; ".join(verifier.errors[:10]))
