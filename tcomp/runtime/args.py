"""Checking the numpy arrays of a call against a function's parameters, before any native code runs.

``ArgumentChecker(func)`` precomputes, per parameter, the numpy dtype, rank, constant dimensions, the size
variables it binds and the compound dimensions to check once every variable is bound. ``check(arrays)`` then
returns the data pointers and size-variable values, or raises ``TypeError``/``ValueError`` naming the argument
(position and parameter name) and what is wrong with it.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from tcomp.ir import dtype as dt
from tcomp.ir import expr as E
from tcomp.ir import stmt as S
from tcomp.ir.functor import post_order_visit
from tcomp.ir.stmt import PrimFunc


def _pointer_from_struct(arr: np.ndarray) -> int:
    """The data pointer read from the array object itself: numpy's public ``PyArrayObject_fields`` layout puts
    ``char *data`` right after the object header. About 4x faster than ``arr.ctypes.data``."""
    return ctypes.c_void_p.from_address(id(arr) + _DATA_OFFSET).value or 0


def _pointer_from_ctypes(arr: np.ndarray) -> int:
    return int(arr.ctypes.data)


_DATA_OFFSET = object.__basicsize__  # the size of PyObject_HEAD


def _choose_pointer_reader() -> Callable[[np.ndarray], int]:
    """Use the fast reader only if it agrees with ``arr.ctypes.data`` on a few kinds of arrays."""
    base = np.arange(24, dtype=np.float32).reshape(4, 6)
    samples = [base, base[1:], base[:, 2:], base.T, np.zeros(0), np.ones(3, np.bool_), base.reshape(-1)[5:]]
    try:
        if all(_pointer_from_struct(s) == _pointer_from_ctypes(s) for s in samples):
            return _pointer_from_struct
    except (ValueError, OSError):  # pragma: no cover - an unusual numpy build
        pass
    return _pointer_from_ctypes  # pragma: no cover


data_pointer = _choose_pointer_reader()


@dataclass(frozen=True)
class _ParamSpec:
    name: str
    dtype: np.dtype
    ndim: int
    const_dims: tuple[tuple[int, int], ...]  # (dim, size)
    var_dims: tuple[tuple[int, int, int], ...]  # (dim, size var index, offset): the extent is the var + offset
    compound_dims: tuple[tuple[int, E.Expr], ...]  # (dim, expression of size vars), checked once they are bound
    written: bool
    shape_text: str


def _var_plus_constant(extent: E.Expr, var_index: dict[E.Var, int]) -> tuple[int, int] | None:
    """``(size var index, c)`` for an extent ``var + c`` (either order), else None."""
    if not isinstance(extent, E.Add):
        return None
    for var, constant in ((extent.a, extent.b), (extent.b, extent.a)):
        if isinstance(var, E.Var) and var in var_index and isinstance(constant, E.IntImm):
            return var_index[var], constant.value
    return None


def written_params(func: PrimFunc) -> frozenset[int]:
    """Indices of the parameters ``func`` writes: ``func.attr("output_buffers")`` when present, else the
    parameters some ``BufferStore`` in the body stores to."""
    declared = func.attr("output_buffers")
    if declared is not None:
        return frozenset(int(i) for i in declared)
    stored: set[int] = set()
    index_of = {id(b): i for i, b in enumerate(func.params)}

    def collect(node: object) -> None:
        if isinstance(node, S.BufferStore) and id(node.buffer) in index_of:
            stored.add(index_of[id(node.buffer)])

    post_order_visit(func.body, collect)
    return frozenset(stored)


_INT_OPS = {
    E.Add: lambda a, b: a + b,
    E.Sub: lambda a, b: a - b,
    E.Mul: lambda a, b: a * b,
    E.FloorDiv: lambda a, b: a // b,
    E.FloorMod: lambda a, b: a % b,
    E.Min: min,
    E.Max: max,
}


def evaluate_shape_expr(expr: E.Expr, values: dict[E.Var, int]) -> int:
    """The integer value of a shape expression over bound size variables."""
    if isinstance(expr, E.IntImm):
        return expr.value
    if isinstance(expr, E.Var):
        return values[expr]
    if isinstance(expr, E.Cast):
        return evaluate_shape_expr(expr.value, values)
    if isinstance(expr, (E.Div, E.Mod)):
        a, b = evaluate_shape_expr(expr.a, values), evaluate_shape_expr(expr.b, values)
        quotient = abs(a) // abs(b) * (1 if (a >= 0) == (b >= 0) else -1)
        return quotient if isinstance(expr, E.Div) else a - b * quotient
    op = _INT_OPS.get(type(expr))
    if op is not None and isinstance(expr, E.BinaryOp):
        return int(op(evaluate_shape_expr(expr.a, values), evaluate_shape_expr(expr.b, values)))
    raise ValueError(f"cannot evaluate shape expression {expr}")


class ArgumentChecker:
    """Validates calls of ``func`` and turns its arrays into the entry function's arguments."""

    def __init__(self, func: PrimFunc) -> None:
        self.func_name = func.name
        self.size_vars = func.size_vars
        var_index = {v: k for k, v in enumerate(func.size_vars)}
        written = written_params(func)
        specs = []
        bound: set[int] = set()
        for position, buffer in enumerate(func.params):
            const_dims, var_dims, compound_dims = [], [], []
            for dim, extent in enumerate(buffer.shape):
                if isinstance(extent, E.IntImm):
                    const_dims.append((dim, extent.value))
                elif isinstance(extent, E.Var) and extent in var_index:
                    var_dims.append((dim, var_index[extent], 0))
                    bound.add(var_index[extent])
                else:
                    offset = _var_plus_constant(extent, var_index)
                    if offset is not None:
                        var_dims.append((dim, *offset))
                        bound.add(offset[0])
                    compound_dims.append((dim, extent))
            specs.append(_ParamSpec(
                name=buffer.name,
                dtype=np.dtype(dt.element(buffer.dtype)),
                ndim=len(buffer.shape),
                const_dims=tuple(const_dims),
                var_dims=tuple(var_dims),
                compound_dims=tuple(compound_dims),
                written=position in written,
                shape_text="(" + ", ".join(str(s) for s in buffer.shape) + ")",
            ))
        # variables only products bind (``batch*seq`` rows): a call names their values (``sizes``)
        self.unbound: tuple[int, ...] = tuple(k for k in range(len(func.size_vars)) if k not in bound)
        self.specs: tuple[_ParamSpec, ...] = tuple(specs)
        self.written: tuple[int, ...] = tuple(sorted(written))
        self.may_alias: frozenset[int] = frozenset(int(i) for i in func.attr("may_alias", ()))
        self._var_limits = [v.declared_range() for v in func.size_vars]

    def _where(self, position: int) -> str:
        return f"{self.func_name}: argument {position} ({self.specs[position].name!r})"

    def check(self, arrays: Sequence[object], named: Mapping[str, int] | None = None) -> tuple[list[int], list[int]]:
        """Validate ``arrays``; return their data pointers and the size variables' values. ``named`` gives the
        values of the variables no parameter shape binds alone (a shape ``batch*seq`` binds neither); it may name
        others too, which the shapes must agree with."""
        specs = self.specs
        if len(arrays) != len(specs):
            names = ", ".join(s.name for s in specs)
            raise TypeError(f"{self.func_name} takes {len(specs)} arrays ({names}), got {len(arrays)}")
        sizes = self._named(named or {})
        binders = [-1] * len(self.size_vars)  # the argument that bound each variable (-1: the sizes given)
        pointers: list[int] = []
        for position, (arr, spec) in enumerate(zip(arrays, specs)):
            if not isinstance(arr, np.ndarray):
                raise TypeError(f"{self._where(position)}: expected a numpy.ndarray, got {type(arr).__name__}")
            if arr.dtype != spec.dtype:
                raise TypeError(f"{self._where(position)}: expected {spec.dtype.name}, got {_dtype_text(arr.dtype)}")
            shape = arr.shape
            if len(shape) != spec.ndim:
                raise ValueError(
                    f"{self._where(position)}: expected {spec.ndim} dimension(s) {spec.shape_text}, "
                    f"got {len(shape)} with shape {shape}")
            for dim, size in spec.const_dims:
                if shape[dim] != size:
                    raise ValueError(
                        f"{self._where(position)}: dimension {dim} must be {size}, got {shape[dim]} "
                        f"(shape {shape}, expected {spec.shape_text})")
            for dim, var, offset in spec.var_dims:
                current, value = sizes[var], shape[dim] - offset
                if current is None:
                    sizes[var] = value
                    binders[var] = position
                elif current != value:
                    first = binders[var]
                    by = "the sizes given" if first < 0 else f"argument {first} ({specs[first].name!r})"
                    raise ValueError(
                        f"{self._where(position)}: dimension {dim} binds {self.size_vars[var].name} to "
                        f"{value}, but {by} bound it to {current}")
            if not arr.flags.c_contiguous:
                raise ValueError(
                    f"{self._where(position)}: the array must be C-contiguous (use numpy.ascontiguousarray)")
            if spec.written and not arr.flags.writeable:
                raise ValueError(
                    f"{self._where(position)}: the function writes this buffer, but the array is read-only")
            pointers.append(data_pointer(arr))
        values = [int(s) for s in sizes]  # type: ignore[arg-type]  # every variable is bound (``_named``)
        for k, (low, high) in enumerate(self._var_limits):
            if not low <= values[k] <= high:
                var = self.size_vars[k]
                if values[k] < low:
                    raise ValueError(f"{self.func_name}: {var.name} = {values[k]} is below its declared minimum {low}")
                limit = f"its dtype {var.dtype}" if var.max_value is None else f"its declared maximum {var.max_value}"
                raise ValueError(f"{self.func_name}: {var.name} = {values[k]} exceeds {limit}")
        self._check_compound(arrays, values)
        self._check_overlap(arrays, pointers)
        return pointers, values

    def _named(self, named: Mapping[str, int]) -> list[int | None]:
        """The size variables' values given by name (the others None)."""
        index = {v.name: k for k, v in enumerate(self.size_vars)}
        unknown = [name for name in named if name not in index]
        if unknown:
            raise ValueError(f"{self.func_name}: sizes {unknown} name no size variable; its size variables: "
                             f"{[v.name for v in self.size_vars]}")
        missing = [self.size_vars[k].name for k in self.unbound if self.size_vars[k].name not in named]
        if missing:
            raise ValueError(f"{self.func_name}: size variable(s) {', '.join(missing)} appear in no parameter shape "
                             f"alone or plus a constant; give their values: sizes={{{missing[0]!r}: ...}}")
        sizes: list[int | None] = [None] * len(self.size_vars)
        for name, value in named.items():
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise TypeError(f"{self.func_name}: size {name!r} must be an int, got {value!r}")
            sizes[index[name]] = int(value)
        return sizes

    def _check_compound(self, arrays: Sequence[object], values: list[int]) -> None:
        env = None
        for position, spec in enumerate(self.specs):
            if not spec.compound_dims:
                continue
            if env is None:
                env = dict(zip(self.size_vars, values))
            shape = arrays[position].shape  # type: ignore[attr-defined]
            for dim, expr in spec.compound_dims:
                expected = evaluate_shape_expr(expr, env)
                if shape[dim] != expected:
                    bindings = ", ".join(f"{v.name}={values[k]}" for k, v in enumerate(self.size_vars))
                    raise ValueError(
                        f"{self._where(position)}: dimension {dim} must be {expr} = {expected} ({bindings}), "
                        f"got {shape[dim]}")

    def _check_overlap(self, arrays: Sequence[object], pointers: list[int]) -> None:
        for out in self.written:
            out_bytes = arrays[out].nbytes  # type: ignore[attr-defined]
            if out_bytes == 0:
                continue
            out_lo, out_hi = pointers[out], pointers[out] + out_bytes
            for other, arr in enumerate(arrays):
                if other == out or (out in self.may_alias and other in self.may_alias):
                    continue
                nbytes = arr.nbytes  # type: ignore[attr-defined]
                if nbytes and pointers[other] < out_hi and out_lo < pointers[other] + nbytes:
                    raise ValueError(
                        f"{self._where(out)}: the output shares memory with argument {other} "
                        f"({self.specs[other].name!r}); that would violate the noalias guarantee the kernel is "
                        "compiled with")


def _dtype_text(dtype: np.dtype) -> str:
    """A dtype's name, saying so when its byte order is not this machine's (``>f4`` is "float32" too)."""
    if dtype.byteorder in ("=", "|") or dtype.isnative:
        return dtype.name
    order = "big" if dtype.byteorder == ">" else "little"
    return (f"{dtype.name} in {order}-endian byte order ({dtype.str}; convert it with "
            f"arr.astype(np.{dtype.name}))")
