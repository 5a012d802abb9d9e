"""The loop IR: expression and statement nodes, buffers, visitors, printer and structural comparison."""

from tcomp.ir.buffer import Buffer
from tcomp.ir.expr import (
    Expr,
    FloatImm,
    IntImm,
    IterKind,
    IterVar,
    Range,
    Var,
    const,
    convert,
)
from tcomp.ir.stmt import ForKind, PrimFunc, Stmt
from tcomp.ir.structural import structural_equal, structural_hash

__all__ = [
    "Buffer",
    "Expr",
    "FloatImm",
    "ForKind",
    "IntImm",
    "IterKind",
    "IterVar",
    "PrimFunc",
    "Range",
    "Stmt",
    "Var",
    "const",
    "convert",
    "structural_equal",
    "structural_hash",
]
