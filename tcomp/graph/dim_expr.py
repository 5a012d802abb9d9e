"""Symbolic dimensions that an exporter writes as expressions of others.

PyTorch's exporter names a dimension derived from others by the expression (sympy's printing): a decoding step's
attention mask covers the cache and the new token, ``[batch, past + 1]``; a concatenation of two inputs is
``s0 + s1``; a doubled axis ``2*s0``. ``parse_dim`` reads such a ``dim_param`` into an affine ``DimExpr`` of the
names in it; it never evaluates the text as code. A name stays a name, and anything else (a product of two names, a
division, an operator without sympy's spaces around it, as in ``seq-len``) stays one opaque name, as before.

The model's inputs declare the dimensions (``InputDecl``): ``dimension_symbols`` names them, ``binding_of`` reads
their values off a run's input shapes (solving the expressions), ``shapes_at`` gives the input shapes at values of
them and ``pinned`` fixes some of them.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tcomp.graph.frontend.onnx_inputs import InputDecl

_TOKEN = re.compile(r"\s*(?:(?P<number>\d+)|(?P<name>[A-Za-z_][A-Za-z0-9_]*)|(?P<op>[-+*()]))")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_UNSPACED = re.compile(r"[A-Za-z0-9_)][-+]|[-+][A-Za-z0-9_(]")  # sympy prints a binary + or - between spaces
MAX_COEFFICIENT = 1 << 20
MAX_LENGTH = 200  # characters of an expression read (a longer dim_param stays a name: no deep recursion)


@dataclass(frozen=True)
class DimExpr:
    """``constant + sum(coefficient * name)`` over ``terms`` (sorted by name, no zero coefficient)."""

    terms: tuple[tuple[str, int], ...]
    constant: int

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.terms)

    def at(self, binding: Mapping[str, int]) -> int:
        return self.constant + sum(c * binding[name] for name, c in self.terms)

    def solve(self, value: int, binding: Mapping[str, int]) -> tuple[str, int] | None:
        """The one name ``binding`` lacks, and its value for the expression to equal ``value``; None where it does
        not lack exactly one, or no integer of at least 0 gives ``value``."""
        unknown = [(name, c) for name, c in self.terms if name not in binding]
        if len(unknown) != 1:
            return None
        name, coefficient = unknown[0]
        rest = self.constant + sum(c * binding[n] for n, c in self.terms if n in binding)
        solved, remainder = divmod(value - rest, coefficient)
        return (name, solved) if remainder == 0 and solved >= 0 else None

    def pinned(self, values: Mapping[str, int]) -> DimExpr | int:
        """The expression with the names in ``values`` replaced by them: an int when none is left."""
        constant = self.constant + sum(c * values[n] for n, c in self.terms if n in values)
        terms = tuple((n, c) for n, c in self.terms if n not in values)
        return DimExpr(terms, constant) if terms else constant

    def __str__(self) -> str:
        text = ""
        for name, c in self.terms:
            term = name if abs(c) == 1 else f"{abs(c)}*{name}"
            text = (f"-{term}" if c < 0 else term) if not text else f"{text} {'-' if c < 0 else '+'} {term}"
        if self.constant:
            text = f"{text} {'-' if self.constant < 0 else '+'} {abs(self.constant)}"
        return text


@functools.lru_cache(maxsize=256)
def parse_dim(text: str) -> str | DimExpr:
    """``text`` (a ``dim_param``) as an affine ``DimExpr`` of names where it is one with a name in it and sympy's
    spacing, else ``text`` itself (a name, opaque)."""
    if len(text) > MAX_LENGTH or _NAME.fullmatch(text) or _UNSPACED.search(text.lstrip("-")):
        return text
    tokens: list[tuple[str, str]] = []
    body, position = text.strip(), 0
    while position < len(body):  # every token takes at least one character
        match = _TOKEN.match(body, position)
        if match is None or match.lastgroup is None:
            return text
        tokens.append((match.lastgroup, match.group(match.lastgroup)))
        position = match.end()
    parser = _Parser(tokens)
    try:
        terms, constant = parser.sum()
    except ValueError:
        return text
    kept = tuple(sorted((n, c) for n, c in terms.items() if c))
    return DimExpr(kept, constant) if kept and parser.index == len(tokens) else text


class _Parser:
    """sum := product (('+' | '-') product)*; product := factor ('*' factor)*; factor := number | name | '-' factor
    | '(' sum ')'. Each value is affine: ``(coefficients by name, constant)``; a product of two names raises."""

    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self.tokens, self.index = tokens, 0

    def _peek(self) -> tuple[str, str] | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def _take(self) -> tuple[str, str]:
        token = self._peek()
        if token is None:
            raise ValueError("the expression ends early")
        self.index += 1
        return token

    def sum(self) -> tuple[dict[str, int], int]:
        terms, constant = self.product()
        while self._peek() in (("op", "+"), ("op", "-")):
            sign = 1 if self._take()[1] == "+" else -1
            more, extra = self.product()
            for name, c in more.items():
                terms[name] = terms.get(name, 0) + sign * c
            constant += sign * extra
        return terms, constant

    def product(self) -> tuple[dict[str, int], int]:
        terms, constant = self.factor()
        while self._peek() == ("op", "*"):
            self._take()
            more, extra = self.factor()
            if terms and more:
                raise ValueError("a product of two names is not affine")
            scale, (terms, constant) = (constant, (more, extra)) if not terms else (extra, (terms, constant))
            terms, constant = {n: c * scale for n, c in terms.items()}, constant * scale
        if abs(constant) > MAX_COEFFICIENT or any(abs(c) > MAX_COEFFICIENT for c in terms.values()):
            raise ValueError("a coefficient is out of range")
        return terms, constant

    def factor(self) -> tuple[dict[str, int], int]:
        kind, value = self._take()
        if kind == "number":
            return {}, int(value)
        if kind == "name":
            return {value: 1}, 0
        if value == "-":
            terms, constant = self.factor()
            return {n: -c for n, c in terms.items()}, -constant
        if value == "(":
            result = self.sum()
            if self._take() != ("op", ")"):
                raise ValueError("an unclosed parenthesis")
            return result
        raise ValueError(f"unexpected {value!r}")


# ---------------------------------------------------------------------------------------------------------------------
# the model's symbolic dimensions: which inputs name them, their values at a run, the inputs' shapes at theirs
def dimension_symbols(decls: Sequence[InputDecl], fixed: Mapping[str, Sequence[int]]) -> list[str]:
    """The symbolic dimensions of the inputs ``decls`` not bound in ``fixed``, in order of appearance (an unnamed
    one is ``input[axis]``)."""
    symbols: dict[str, None] = {}
    for decl in decls:
        if decl.name in fixed or decl.dims is None:
            continue
        for axis, dim in enumerate(decl.dims):
            if isinstance(dim, str):
                parsed = parse_dim(dim)
                symbols.update(dict.fromkeys(parsed.names if isinstance(parsed, DimExpr) else [
                    _symbol(decl, axis, dim)]))
    return list(symbols)


def pinned(decls: Sequence[InputDecl], values: Mapping[str, int]) -> list[InputDecl]:
    """``decls`` with the symbolic dimensions named in ``values`` fixed to those values (in the expressions of them
    too)."""
    def pin(decl: InputDecl, axis: int, dim: int | str) -> int | str:
        if not isinstance(dim, str):
            return dim
        parsed = parse_dim(dim)
        if isinstance(parsed, DimExpr):
            found = parsed.pinned(values)
            return found if isinstance(found, int) else str(found)
        return values.get(_symbol(decl, axis, dim), dim)

    return [dataclasses.replace(decl, dims=tuple(pin(decl, axis, dim) for axis, dim in enumerate(decl.dims)))
            if decl.dims is not None else decl for decl in decls]


def _symbol(decl: InputDecl, axis: int, dim: str) -> str:
    return f"{decl.name}[{axis}]" if dim in ("", "?") else dim


def binding_of(decls: Sequence[InputDecl], fixed: Mapping[str, Sequence[int]],
               shapes: Mapping[str, Sequence[int]]) -> dict[str, int] | None:
    """The values of the symbolic dimensions in the input ``shapes``; None when an input's rank is unknown, one
    dimension takes two values, or a dimension written as an expression of others (``past + 1``) does not equal it
    (an expression with one name unknown otherwise gives that name's value)."""
    binding: dict[str, int] = {}
    derived: list[tuple[DimExpr, int]] = []
    for decl in decls:
        if decl.name in fixed:
            continue
        if decl.dims is None:
            return None
        for axis, dim in enumerate(decl.dims):
            if isinstance(dim, str):
                value, parsed = int(shapes[decl.name][axis]), parse_dim(dim)
                if isinstance(parsed, DimExpr):
                    derived.append((parsed, value))
                elif binding.setdefault(_symbol(decl, axis, dim), value) != value:
                    return None
    while derived:  # each round binds or checks an expression, or none is left that can be
        left: list[tuple[DimExpr, int]] = []
        for expression, value in derived:
            found = expression.solve(value, binding)
            if found is not None:
                binding[found[0]] = found[1]
            elif all(n in binding for n in expression.names):
                if expression.at(binding) != value:
                    return None
            else:
                left.append((expression, value))
        if len(left) == len(derived):
            return None  # names no other dimension gives
        derived = left
    return binding


def shapes_at(decls: Sequence[InputDecl], fixed: Mapping[str, Sequence[int]],
              binding: Mapping[str, int]) -> dict[str, list[int]]:
    """The input shapes at the dimensions ``binding`` (the ``fixed`` ones as given)."""
    shapes = {name: list(shape) for name, shape in fixed.items()}
    for decl in decls:
        if decl.name not in fixed and decl.dims is not None:
            shapes[decl.name] = [_dim_at(decl, a, d, binding) for a, d in enumerate(decl.dims)]
    return shapes


def _dim_at(decl: InputDecl, axis: int, dim: int | str, binding: Mapping[str, int]) -> int:
    if not isinstance(dim, str):
        return dim
    parsed = parse_dim(dim)
    return parsed.at(binding) if isinstance(parsed, DimExpr) else binding[_symbol(decl, axis, dim)]
