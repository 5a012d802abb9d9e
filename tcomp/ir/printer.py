"""Readable text for expressions, loop-IR statements and functions.

Loops print as ``for i.outer in parallel(0, 32):``; buffers as ``C[i, j]``; constants with a suffix only when their
dtype is not the default (``1.5f16``, ``3i64``).
"""

from __future__ import annotations

from tcomp.ir import expr as E
from tcomp.ir import stmt as S

_BINARY_SYMBOLS: dict[type, tuple[str, int]] = {
    E.Or: ("||", 1),
    E.And: ("&&", 2),
    E.EQ: ("==", 3),
    E.NE: ("!=", 3),
    E.LT: ("<", 4),
    E.LE: ("<=", 4),
    E.GT: (">", 4),
    E.GE: (">=", 4),
    E.Add: ("+", 5),
    E.Sub: ("-", 5),
    E.Mul: ("*", 6),
    E.Div: ("/", 6),
    E.Mod: ("%", 6),
    E.FloorDiv: ("//", 6),
    E.FloorMod: ("%", 6),
}
_ATOM = 10


def _fmt_float(value: float) -> str:
    text = repr(float(value))
    return text


def _expr(e: E.Expr) -> tuple[str, int]:
    if isinstance(e, E.IntImm):
        if e.dtype == "bool":
            return ("True" if e.value else "False"), _ATOM
        suffix = "" if e.dtype == "int32" else _short(e.dtype)
        text = f"{e.value}{suffix}"
        return text, (_ATOM if e.value >= 0 else 7)
    if isinstance(e, E.FloatImm):
        suffix = "f" if e.dtype == "float32" else _short(e.dtype)
        return f"{_fmt_float(e.value)}{suffix}", _ATOM
    if isinstance(e, E.Var):
        return e.name, _ATOM
    if isinstance(e, (E.FloorMod, E.Mod)) and type(e) is E.Mod:
        return f"truncmod({expr_to_str(e.a)}, {expr_to_str(e.b)})", _ATOM
    if isinstance(e, E.Div) and not e.dtype.startswith("float"):
        return f"truncdiv({expr_to_str(e.a)}, {expr_to_str(e.b)})", _ATOM
    if type(e) in _BINARY_SYMBOLS:
        assert isinstance(e, E.BinaryOp)
        symbol, prec = _BINARY_SYMBOLS[type(e)]
        left = _paren(e.a, prec)
        right = _paren(e.b, prec + 1)
        return f"{left} {symbol} {right}", prec
    if isinstance(e, E.Min):
        return f"min({expr_to_str(e.a)}, {expr_to_str(e.b)})", _ATOM
    if isinstance(e, E.Max):
        return f"max({expr_to_str(e.a)}, {expr_to_str(e.b)})", _ATOM
    if isinstance(e, E.Not):
        return f"!{_paren(e.a, 8)}", 8
    if isinstance(e, E.Select):
        return (
            f"select({expr_to_str(e.condition)}, {expr_to_str(e.true_value)}, {expr_to_str(e.false_value)})",
            _ATOM,
        )
    if isinstance(e, E.Cast):
        return f"{e.dtype}({expr_to_str(e.value)})", _ATOM
    if isinstance(e, E.Call):
        args = ", ".join(expr_to_str(a) for a in e.args)
        return f"{e.op}({args})", _ATOM
    if isinstance(e, E.Ramp):
        return f"ramp({expr_to_str(e.base)}, {expr_to_str(e.stride)}, {e.lanes})", _ATOM
    if isinstance(e, E.Broadcast):
        return f"x{e.lanes}({expr_to_str(e.value)})", _ATOM
    if isinstance(e, E.Let):
        return f"(let {e.var.name} = {expr_to_str(e.value)} in {expr_to_str(e.body)})", _ATOM
    if isinstance(e, E.ProducerLoad):
        return f"{e.producer.name}[{_indices(e.indices)}]", _ATOM
    if isinstance(e, E.BufferLoad):
        return f"{e.buffer.name}[{_indices(e.indices)}]", _ATOM
    if isinstance(e, E.Reduce):
        axes = ", ".join(iv.var.name for iv in e.axis)
        cond = "" if e.condition is None else f", where={expr_to_str(e.condition)}"
        return f"{e.combiner.name}({expr_to_str(e.source)}, axis=[{axes}]{cond})", _ATOM
    return f"<{type(e).__name__}>", _ATOM


def _short(dtype: str) -> str:
    return dtype.replace("float", "f").replace("uint", "u").replace("int", "i")


def _paren(e: E.Expr, prec: int) -> str:
    text, own = _expr(e)
    return f"({text})" if own < prec else text


def _indices(indices: tuple[E.Expr, ...]) -> str:
    return ", ".join(expr_to_str(i) for i in indices)


def expr_to_str(e: E.Expr) -> str:
    return _expr(e)[0]


class _StmtPrinter:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def emit(self, depth: int, text: str) -> None:
        self.lines.append("  " * depth + text)

    def print(self, s: S.Stmt, depth: int) -> None:
        if isinstance(s, S.SeqStmt):
            for item in s.seq:
                self.print(item, depth)
        elif isinstance(s, S.For):
            self._for(s, depth)
        elif isinstance(s, S.BufferStore):
            self.emit(depth, f"{s.buffer.name}[{_indices(s.indices)}] = {expr_to_str(s.value)}")
        elif isinstance(s, S.IfThenElse):
            self.emit(depth, f"if {expr_to_str(s.condition)}:")
            self.print(s.then_case, depth + 1)
            if s.else_case is not None:
                self.emit(depth, "else:")
                self.print(s.else_case, depth + 1)
        elif isinstance(s, S.Allocate):
            self.emit(depth, f"allocate {s.buffer}")
            self.print(s.body, depth)
        elif isinstance(s, S.LetStmt):
            self.emit(depth, f"{s.var.name} = {expr_to_str(s.value)}")
            self.print(s.body, depth)
        elif isinstance(s, S.AssertStmt):
            values = "".join(", " + expr_to_str(v) for v in s.values)
            self.emit(depth, f"assert {expr_to_str(s.condition)}, {s.message!r}{values}")
            self.print(s.body, depth)
        elif isinstance(s, S.Evaluate):
            self.emit(depth, expr_to_str(s.value))
        elif isinstance(s, S.NoOp):
            self.emit(depth, "pass")
        else:
            self.emit(depth, f"<{type(s).__name__}>")

    def _for(self, s: S.For, depth: int) -> None:
        bounds = f"{expr_to_str(s.min)}, {expr_to_str(s.min + s.extent)}"
        if E.is_const_int(s.min, 0):
            bounds = f"0, {expr_to_str(s.extent)}"
        if s.kind is S.ForKind.SERIAL:
            head = f"range({bounds})"
        elif s.kind is S.ForKind.THREAD_BINDING:
            head = f"thread_binding({bounds}, thread={s.thread_tag!r})"
        else:
            head = f"{s.kind.value}({bounds})"
        notes = "".join(f"  # {k}={v}" for k, v in s.annotations)
        self.emit(depth, f"for {s.loop_var.name} in {head}:{notes}")
        self.print(s.body, depth + 1)


def stmt_to_str(s: S.Stmt, depth: int = 0) -> str:
    printer = _StmtPrinter()
    printer.print(s, depth)
    return "\n".join(printer.lines)


def func_to_str(func: S.PrimFunc) -> str:
    params = ", ".join(str(b) for b in func.params)
    header = f"def {func.name}({params}):"
    return header + "\n" + stmt_to_str(func.body, 1)
