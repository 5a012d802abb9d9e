"""The tensor-expression language: what to compute, never how."""

from tcomp.ir.expr import Expr, IterVar, Reduce, Var, cast, const
from tcomp.te.intrin import TensorIntrin, TensorRegion, call_extern, decl_tensor_intrin
from tcomp.te.math import (
    abs,
    acos,
    acosh,
    all,
    any,
    asin,
    asinh,
    atan,
    atanh,
    bitwise_and,
    bitwise_not,
    bitwise_or,
    bitwise_xor,
    ceil,
    checked_index,
    cos,
    cosh,
    erf,
    exp,
    floor,
    floordiv,
    floormod,
    if_then_else,
    log,
    logical_and,
    logical_not,
    logical_or,
    max_value,
    min_value,
    pow,
    reinterpret,
    round,
    rsqrt,
    shift_left,
    shift_right,
    sigmoid,
    sin,
    sinh,
    sqrt,
    tan,
    tanh,
    truncdiv,
    truncmod,
)
from tcomp.te.operation import TEError, compute, placeholder, reduce_axis, scan, size_var, thread_axis, var
from tcomp.te.reduction import Reducer, comm_reducer, max, min, prod, sum
from tcomp.te.tensor import ComputeOp, Operation, PlaceholderOp, ScanOp, Tensor

__all__ = [
    "ComputeOp", "Expr", "TensorIntrin", "TensorRegion", "call_extern", "decl_tensor_intrin",
    "IterVar", "Operation", "PlaceholderOp", "Reduce", "Reducer", "ScanOp", "TEError",
    "Tensor", "Var", "abs", "acos", "acosh", "all", "any", "asin", "asinh", "atan", "atanh", "bitwise_and",
    "bitwise_not", "bitwise_or", "bitwise_xor", "cast", "ceil",
    "checked_index", "comm_reducer", "compute", "const", "cos", "cosh", "erf", "exp",
    "floor", "floordiv", "floormod", "if_then_else", "log", "logical_and", "logical_not", "logical_or", "max",
    "max_value", "min", "min_value", "placeholder", "pow", "prod", "reduce_axis", "reinterpret", "round", "rsqrt",
    "scan", "shift_left", "shift_right", "sigmoid", "sin", "sinh", "size_var", "sqrt", "sum", "tan", "tanh",
    "thread_axis", "truncdiv", "truncmod", "var",
]
