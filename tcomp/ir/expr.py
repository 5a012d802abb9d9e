"""Expression nodes shared by the tensor-expression level and the loop IR.

Every node is a frozen dataclass compared by identity: ``a == b`` on expressions builds an ``EQ`` node (as in TVM),
so containers key expressions by object identity and tests compare with ``structural_equal``. The set of node types
is closed: visitors in ``functor.py`` dispatch on these classes.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from tcomp.ir import dtype as dt

if TYPE_CHECKING:
    from tcomp.ir.buffer import Buffer


class ExprOps:
    """Python operators that build IR; mixed into ``Expr`` and ``IterVar``."""

    def __add__(self, other: Any) -> Expr:
        return binary(Add, self, other)

    def __radd__(self, other: Any) -> Expr:
        return binary(Add, other, self)

    def __sub__(self, other: Any) -> Expr:
        return binary(Sub, self, other)

    def __rsub__(self, other: Any) -> Expr:
        return binary(Sub, other, self)

    def __mul__(self, other: Any) -> Expr:
        return binary(Mul, self, other)

    def __rmul__(self, other: Any) -> Expr:
        return binary(Mul, other, self)

    def __truediv__(self, other: Any) -> Expr:
        return true_div(self, other)

    def __rtruediv__(self, other: Any) -> Expr:
        return true_div(other, self)

    def __floordiv__(self, other: Any) -> Expr:
        return floordiv(self, other)

    def __rfloordiv__(self, other: Any) -> Expr:
        return floordiv(other, self)

    def __mod__(self, other: Any) -> Expr:
        return floormod(self, other)

    def __rmod__(self, other: Any) -> Expr:
        return floormod(other, self)

    def __neg__(self) -> Expr:
        value = convert(self)
        return binary(Sub, make_const(0, value.dtype), value)

    def __lt__(self, other: Any) -> Expr:
        return binary(LT, self, other)

    def __le__(self, other: Any) -> Expr:
        return binary(LE, self, other)

    def __gt__(self, other: Any) -> Expr:
        return binary(GT, self, other)

    def __ge__(self, other: Any) -> Expr:
        return binary(GE, self, other)

    def __eq__(self, other: Any) -> Expr:  # type: ignore[override]
        return binary(EQ, self, other)

    def __ne__(self, other: Any) -> Expr:  # type: ignore[override]
        return binary(NE, self, other)

    def __and__(self, other: Any) -> Expr:
        return logical_and(self, other)

    def __or__(self, other: Any) -> Expr:
        return logical_or(self, other)

    def __invert__(self) -> Expr:
        return Not(convert(self), "bool")

    __hash__ = object.__hash__

    def __bool__(self) -> bool:
        raise TypeError(
            f"cannot use the symbolic expression {self} as a Python bool; "
            "use tcomp.te.all / tcomp.te.any / if_then_else to build conditions"
        )

    def astype(self, dtype: str) -> Expr:
        return cast(self, dtype)


class Expr(ExprOps):
    """Base class of all expression nodes. Subclasses are frozen dataclasses with a ``dtype`` field."""

    dtype: str

    def __str__(self) -> str:
        from tcomp.ir.printer import expr_to_str

        return expr_to_str(self)

    __repr__ = __str__


@dataclass(frozen=True, eq=False, repr=False)
class IntImm(Expr):
    value: int
    dtype: str = "int32"

    def __bool__(self) -> bool:
        return bool(self.value)

    def __int__(self) -> int:
        return self.value

    def __index__(self) -> int:
        return self.value


@dataclass(frozen=True, eq=False, repr=False)
class FloatImm(Expr):
    value: float
    dtype: str = "float32"


@dataclass(frozen=True, eq=False, repr=False)
class Var(Expr):
    """A named scalar variable: a loop index, an axis of a compute, or a symbolic shape dimension.

    ``max_value`` is the largest value a symbolic dimension may take, if declared (``te.var("n", max_value=...)``):
    calls with a larger one are refused, and index arithmetic may rely on it (a buffer of at most 2^31 elements is
    indexed in 32 bits). Otherwise a dimension ranges over ``[0, max of its dtype]``. ``min_value`` is the least
    (0 unless declared): calls with a smaller one are refused, and a slice may rely on it."""

    name: str
    dtype: str = "int32"
    max_value: int | None = None
    min_value: int = 0

    def declared_range(self) -> tuple[int, int]:
        """The values a symbolic dimension may take: ``[min_value, max_value]`` (the dtype's maximum when
        undeclared)."""
        high = int(dt.max_value(self.dtype))
        return (self.min_value, high if self.max_value is None else min(self.max_value, high))


@dataclass(frozen=True, eq=False, repr=False)
class BinaryOp(Expr):
    a: Expr
    b: Expr
    dtype: str


class Add(BinaryOp):
    pass


class Sub(BinaryOp):
    pass


class Mul(BinaryOp):
    pass


class Div(BinaryOp):
    """Float division, or integer division truncating toward zero (C semantics)."""


class Mod(BinaryOp):
    """Integer remainder with the sign of the dividend (C semantics)."""


class FloorDiv(BinaryOp):
    pass


class FloorMod(BinaryOp):
    pass


class Min(BinaryOp):
    pass


class Max(BinaryOp):
    pass


class CmpOp(BinaryOp):
    """Comparisons; ``dtype`` is ``bool`` (with the operands' lanes)."""


class EQ(CmpOp):
    def __bool__(self) -> bool:
        # Lets ``x in [a, b]`` and ``list.index`` work by identity, as in TVM.
        return self.a is self.b


class NE(CmpOp):
    def __bool__(self) -> bool:
        return self.a is not self.b


class LT(CmpOp):
    pass


class LE(CmpOp):
    pass


class GT(CmpOp):
    pass


class GE(CmpOp):
    pass


class And(BinaryOp):
    pass


class Or(BinaryOp):
    pass


@dataclass(frozen=True, eq=False, repr=False)
class Not(Expr):
    a: Expr
    dtype: str = "bool"


@dataclass(frozen=True, eq=False, repr=False)
class Select(Expr):
    """``condition ? true_value : false_value``; both sides may be evaluated."""

    condition: Expr
    true_value: Expr
    false_value: Expr
    dtype: str


@dataclass(frozen=True, eq=False, repr=False)
class Cast(Expr):
    value: Expr
    dtype: str


@dataclass(frozen=True, eq=False, repr=False)
class Call(Expr):
    """A pure intrinsic: math functions (``exp``, ``log``, ``sqrt`` ...), ``likely``, ``fma``, and the
    calls of declared tensor intrinsics (``kind`` tells which)."""

    op: str
    args: tuple[Expr, ...]
    dtype: str
    kind: str = "pure"


@dataclass(frozen=True, eq=False, repr=False)
class Ramp(Expr):
    """The vector ``[base, base + stride, ..., base + (lanes - 1) * stride]``."""

    base: Expr
    stride: Expr
    lanes: int
    dtype: str

    @property
    def contiguous(self) -> bool:
        """Whether the lanes are consecutive elements: a constant stride of 1."""
        return isinstance(self.stride, IntImm) and self.stride.value == 1


@dataclass(frozen=True, eq=False, repr=False)
class Broadcast(Expr):
    value: Expr
    lanes: int
    dtype: str


@dataclass(frozen=True, eq=False, repr=False)
class Let(Expr):
    var: Var
    value: Expr
    body: Expr
    dtype: str


class Producer(Protocol):
    """What a ``ProducerLoad`` reads: a tensor of the tensor-expression level (``te.Tensor``), which the IR knows
    only by its name (the layer above defines it)."""

    @property
    def name(self) -> str: ...


@dataclass(frozen=True, eq=False, repr=False)
class ProducerLoad(Expr):
    """Read of a tensor element at the tensor-expression level: ``A[i, j]``."""

    producer: Producer
    indices: tuple[Expr, ...]
    dtype: str


@dataclass(frozen=True, eq=False, repr=False)
class BufferLoad(Expr):
    """Read of a buffer element in the loop IR (one index per dimension until flattening)."""

    buffer: Buffer
    indices: tuple[Expr, ...]
    dtype: str


class IterKind(enum.Enum):
    DATA_PAR = "data_par"
    REDUCE = "reduce"
    THREAD = "thread"
    ORDERED = "ordered"  # the time axis of a scan


@dataclass(frozen=True, eq=False)
class Range:
    min: Expr
    extent: Expr

    @staticmethod
    def from_min_extent(min_value: Any, extent: Any) -> Range:
        return Range(convert(min_value), convert(extent))

    def __str__(self) -> str:
        return f"range(min={self.min}, ext={self.extent})"

    __repr__ = __str__


@dataclass(frozen=True, eq=False)
class IterVar(ExprOps):
    """An iteration axis: a variable with a domain and a kind. Arithmetic on it uses its variable."""

    var: Var
    dom: Range | None
    kind: IterKind = IterKind.DATA_PAR
    thread_tag: str = ""

    @property
    def name(self) -> str:
        return self.var.name

    @property
    def dtype(self) -> str:
        return self.var.dtype

    def __str__(self) -> str:
        dom = "" if self.dom is None else f", {self.dom}"
        return f"IterVar({self.var.name}{dom}, {self.kind.value})"

    __repr__ = __str__


@dataclass(frozen=True, eq=False)
class CommReducer:
    """A commutative reducer: ``result`` combines ``lhs`` and ``rhs``, with ``identity`` as neutral element
    (``functor.combine_with`` applies it to two expressions)."""

    name: str
    lhs: Var
    rhs: Var
    result: Expr
    identity: Expr


@dataclass(frozen=True, eq=False, repr=False)
class Reduce(Expr):
    combiner: CommReducer
    source: Expr
    axis: tuple[IterVar, ...]
    condition: Expr | None
    dtype: str
    init: Expr | None = field(default=None)


ExprLike = Expr | IterVar | int | float | bool


# ---------------------------------------------------------------------------------------------------------------------
# construction helpers


def make_const(value: int | float | bool, dtype: str) -> Expr:
    elem, count = dt.split_lanes(dtype)
    if dt.is_float(elem):
        scalar: Expr = FloatImm(float(value), elem)
    elif dt.is_bool(elem):
        scalar = IntImm(int(bool(value)), elem)
    else:
        scalar = IntImm(int(value), elem)
    if count > 1:
        return Broadcast(scalar, count, dtype)
    return scalar


def const(value: int | float | bool, dtype: str | None = None) -> Expr:
    """A constant; the dtype defaults to int32 for ints, float32 for floats, bool for bools."""
    if dtype is None:
        if isinstance(value, bool):
            dtype = "bool"
        elif isinstance(value, int):
            dtype = "int32" if -(2**31) <= value < 2**31 else "int64"
        else:
            dtype = "float32"
    return make_const(value, dtype)


def convert(value: Any) -> Expr:
    """Turn a Python number, an ``IterVar`` or an ``Expr`` into an ``Expr``."""
    if isinstance(value, Expr):
        return value
    if isinstance(value, IterVar):
        return value.var
    if isinstance(value, (bool, int, float)):
        return const(value)
    if isinstance(value, np.generic):
        return make_const(value.item(), dt.normalize(value.dtype))
    raise TypeError(f"cannot convert {value!r} of type {type(value).__name__} to an expression")


def _convert_pair(a: Any, b: Any) -> tuple[Expr, Expr]:
    """Convert operands; a Python number takes the other operand's dtype."""
    a_is_py = isinstance(a, (bool, int, float))
    b_is_py = isinstance(b, (bool, int, float))
    if a_is_py and not b_is_py:
        eb = convert(b)
        return _py_const_like(a, eb.dtype), eb
    if b_is_py and not a_is_py:
        ea = convert(a)
        return ea, _py_const_like(b, ea.dtype)
    return convert(a), convert(b)


def _py_const_like(value: int | float | bool, dtype: str) -> Expr:
    if isinstance(value, float) and not dt.is_float(dtype):
        if value.is_integer() and not dt.is_bool(dtype):
            return make_const(int(value), dtype)
        return make_const(value, dt.with_lanes("float32", dt.lanes(dtype)))
    return make_const(value, dtype)


def _unify(a: Expr, b: Expr) -> tuple[Expr, Expr, str]:
    target = dt.promote(a.dtype, b.dtype)
    return cast(a, target), cast(b, target), target


def binary(cls: type[BinaryOp], lhs: Any, rhs: Any) -> Expr:
    a, b = _convert_pair(lhs, rhs)
    a, b, dtype = _unify(a, b)
    if issubclass(cls, CmpOp):
        return cls(a, b, dt.with_lanes("bool", dt.lanes(dtype)))
    return cls(a, b, dtype)


def true_div(lhs: Any, rhs: Any) -> Expr:
    a, b = _convert_pair(lhs, rhs)
    if not dt.is_float(a.dtype) and not dt.is_float(b.dtype):
        raise TypeError(
            f"'/' on integer expressions ({a} / {b}) is ambiguous: use '//' (floordiv) or tcomp.te.truncdiv"
        )
    return binary(Div, a, b)


def floordiv(lhs: Any, rhs: Any) -> Expr:
    a, b = _convert_pair(lhs, rhs)
    if dt.is_float(a.dtype) or dt.is_float(b.dtype):
        return call_pure("floor", binary(Div, a, b))
    return binary(FloorDiv, a, b)


def floormod(lhs: Any, rhs: Any) -> Expr:
    a, b = _convert_pair(lhs, rhs)
    if dt.is_float(a.dtype) or dt.is_float(b.dtype):
        x, y, _ = _unify(a, b)
        return x - y * call_pure("floor", binary(Div, x, y))
    return binary(FloorMod, a, b)


def truncdiv(lhs: Any, rhs: Any) -> Expr:
    return binary(Div, lhs, rhs)


def truncmod(lhs: Any, rhs: Any) -> Expr:
    return binary(Mod, lhs, rhs)


def min_expr(lhs: Any, rhs: Any) -> Expr:
    return binary(Min, lhs, rhs)


def max_expr(lhs: Any, rhs: Any) -> Expr:
    return binary(Max, lhs, rhs)


def _as_bool(value: Any) -> Expr:
    expr = convert(value)
    if not dt.is_bool(expr.dtype):
        raise TypeError(f"expected a boolean condition, got {expr} of dtype {expr.dtype}")
    return expr


def logical_and(lhs: Any, rhs: Any) -> Expr:
    a, b = _as_bool(lhs), _as_bool(rhs)
    return And(a, b, a.dtype)


def logical_or(lhs: Any, rhs: Any) -> Expr:
    a, b = _as_bool(lhs), _as_bool(rhs)
    return Or(a, b, a.dtype)


def logical_not(value: Any) -> Expr:
    a = _as_bool(value)
    return Not(a, a.dtype)


def select(condition: Any, true_value: Any, false_value: Any) -> Expr:
    cond = _as_bool(condition)
    t, f = _convert_pair(true_value, false_value)
    t, f, dtype = _unify(t, f)
    return Select(cond, t, f, dtype)


def cast(value: Any, dtype: str) -> Expr:
    expr = convert(value)
    dtype = dt.normalize(dtype)
    if expr.dtype == dtype:
        return expr
    if dt.lanes(dtype) == 1 and dt.lanes(expr.dtype) > 1:
        dtype = dt.with_lanes(dtype, dt.lanes(expr.dtype))
        if expr.dtype == dtype:
            return expr
    if isinstance(expr, IntImm) and not dt.is_float(dtype) and dt.lanes(dtype) == 1:
        return make_const(expr.value, dtype)
    if isinstance(expr, (IntImm, FloatImm)) and dt.lanes(dtype) == 1:
        return make_const(expr.value, dtype)
    return Cast(expr, dtype)


def call_pure(op: str, *args: Any, dtype: str | None = None) -> Expr:
    exprs = tuple(convert(a) for a in args)
    return Call(op, exprs, dtype or exprs[0].dtype)


def is_const_int(expr: Any, value: int | None = None) -> bool:
    if isinstance(expr, IntImm):
        return value is None or expr.value == value
    return False


def const_int_value(expr: Any) -> int | None:
    if isinstance(expr, int) and not isinstance(expr, bool):
        return expr
    if isinstance(expr, IntImm):
        return expr.value
    return None


def divides_by_maybe_zero(expr: Any) -> bool:
    """Whether ``expr`` is an integer division or remainder whose divisor is not a non-zero constant (or a
    broadcast of one): evaluating it fails when the divisor is zero, so backends check it at run time."""
    if not isinstance(expr, (Div, Mod, FloorDiv, FloorMod)) or dt.is_float(expr.dtype):
        return False
    divisor = expr.b.value if isinstance(expr.b, Broadcast) else expr.b
    return not (isinstance(divisor, IntImm) and divisor.value != 0)
