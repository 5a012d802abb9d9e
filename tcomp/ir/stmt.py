"""Statement nodes of the loop IR and the function that holds them.

The loop IR is the level every schedule lowers to and every backend reads: loops with kinds (serial, parallel,
vectorized, unrolled, bound to a GPU thread), buffer loads and stores, allocations with scopes, guards and
assertions. Nodes are frozen dataclasses compared by identity; ``structural_equal`` compares them by value.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace
from typing import Any

from tcomp.ir.buffer import Buffer
from tcomp.ir.expr import Expr, Var


class ForKind(enum.Enum):
    SERIAL = "serial"
    PARALLEL = "parallel"
    VECTORIZED = "vectorized"
    UNROLLED = "unrolled"
    THREAD_BINDING = "thread_binding"


class Stmt:
    """Base class of statement nodes."""

    def __str__(self) -> str:
        from tcomp.ir.printer import stmt_to_str

        return stmt_to_str(self)

    __repr__ = __str__


@dataclass(frozen=True, eq=False, repr=False)
class For(Stmt):
    """``for loop_var in [min, min + extent)``. ``thread_tag`` names the GPU thread axis of a bound loop;
    ``annotations`` holds pragmas as (key, value) pairs."""

    loop_var: Var
    min: Expr
    extent: Expr
    kind: ForKind
    body: Stmt
    thread_tag: str = ""
    annotations: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True, eq=False, repr=False)
class SeqStmt(Stmt):
    seq: tuple[Stmt, ...]


@dataclass(frozen=True, eq=False, repr=False)
class BufferStore(Stmt):
    buffer: Buffer
    value: Expr
    indices: tuple[Expr, ...]


@dataclass(frozen=True, eq=False, repr=False)
class IfThenElse(Stmt):
    condition: Expr
    then_case: Stmt
    else_case: Stmt | None = None


@dataclass(frozen=True, eq=False, repr=False)
class Allocate(Stmt):
    """Storage for ``buffer`` that lives while ``body`` runs."""

    buffer: Buffer
    body: Stmt


@dataclass(frozen=True, eq=False, repr=False)
class LetStmt(Stmt):
    var: Var
    value: Expr
    body: Stmt


@dataclass(frozen=True, eq=False, repr=False)
class AssertStmt(Stmt):
    """Fails the call with ``message`` (formatted with ``values``) unless ``condition`` holds, then runs ``body``."""

    condition: Expr
    message: str
    values: tuple[Expr, ...]
    body: Stmt


@dataclass(frozen=True, eq=False, repr=False)
class Evaluate(Stmt):
    """Evaluates an expression for its effect (a call of an extern or tensor intrinsic)."""

    value: Expr


@dataclass(frozen=True, eq=False, repr=False)
class NoOp(Stmt):
    pass


NOOP = NoOp()


def seq(*stmts: Stmt) -> Stmt:
    """A sequence with nested sequences flattened and no-ops dropped."""
    flat: list[Stmt] = []
    for s in stmts:
        if isinstance(s, SeqStmt):
            flat.extend(s.seq)
        elif not isinstance(s, NoOp):
            flat.append(s)
    if not flat:
        return NOOP
    if len(flat) == 1:
        return flat[0]
    return SeqStmt(tuple(flat))


# PrimFunc attribute: an integer division or remainder by zero fails the call (``KernelError`` naming the
# expression) instead of giving 0, numpy's result. Set by checked mode and by the graph compiler (ONNX semantics, as
# onnxruntime raises); the LLVM backend honours it.
CHECK_DIVISION = "check_division"


@dataclass(frozen=True, eq=False)
class PrimFunc:
    """A lowered function: buffer parameters in call order, scalar parameters (symbolic shape variables bound from
    the buffers' shapes at call time) and a body."""

    name: str
    params: tuple[Buffer, ...]
    body: Stmt
    size_vars: tuple[Var, ...] = ()
    attrs: tuple[tuple[str, Any], ...] = field(default=())

    def attr(self, key: str, default: Any = None) -> Any:
        for k, v in self.attrs:
            if k == key:
                return v
        return default

    def with_attr(self, key: str, value: Any) -> PrimFunc:
        kept = tuple((k, v) for k, v in self.attrs if k != key)
        return replace(self, attrs=kept + ((key, value),))

    def __str__(self) -> str:
        from tcomp.ir.printer import func_to_str

        return func_to_str(self)

    __repr__ = __str__
