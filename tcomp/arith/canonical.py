"""Canonical linear form of scalar integer expressions: ``c0 + sum(k_i * m_i)``.

Each ``m_i`` is a monomial, a product of *atoms* (anything that is not ``+``, ``-``, ``*`` or an integer constant:
variables, ``//``, ``%``, ``min``, loads, ...). Like monomials combine; a product of two sums is expanded only while
the result has at most ``EXPAND_LIMIT`` terms, otherwise the product stays one atom (no exponential blowup).

``to_expr`` prints the form in a deterministic order: higher degree first, then larger ``|k|``, then by the atoms'
names; positive terms are added, negative ones subtracted, the constant comes last. ``merge_divmod`` rewrites
``k*c*(x // c) + k*(x % c)`` to ``k*x`` (for a positive constant ``c``), the identity behind split and fuse, also
through nested splits (``(x//8)*8 + (x%8)//4*4 + x%4 -> x``), and ``k*x - k*c*(x // c)`` to ``k*(x % c)``.

Constants are wrapped to the dtype's range when they are turned back into ``IntImm`` nodes.
"""

from __future__ import annotations

from dataclasses import dataclass

from tcomp.arith import dtypes as dt
from tcomp.arith.keys import ExprKeys
from tcomp.ir import expr as E

EXPAND_LIMIT = 16

MonomialKey = tuple[int, ...]


def wrap_int(value: int, dtype: str) -> int:
    """``value`` reduced to the range of the integer (or bool) ``dtype``, two's complement."""
    if dt.is_bool(dtype):
        return int(value != 0)
    bits = dt.bits(dtype)
    mask = (1 << bits) - 1
    value &= mask
    if dt.is_signed(dtype) and value >= 1 << (bits - 1):
        value -= 1 << bits
    return value


def int_const(value: int, dtype: str) -> E.IntImm:
    return E.IntImm(wrap_int(value, dtype), dtype)


@dataclass(frozen=True)
class Term:
    """``coeff * atoms[0] * atoms[1] * ...`` (atoms sorted by order key)."""

    atoms: tuple[E.Expr, ...]
    coeff: int


class Linear:
    """A sum of monomials plus a constant, in one integer dtype. Treated as immutable once built."""

    __slots__ = ("dtype", "terms", "const")

    def __init__(self, dtype: str, terms: dict[MonomialKey, Term] | None = None, const: int = 0) -> None:
        self.dtype = dtype
        self.terms: dict[MonomialKey, Term] = terms if terms is not None else {}
        self.const = const

    def is_const(self) -> bool:
        return not self.terms

    def without_const(self) -> Linear:
        return Linear(self.dtype, dict(self.terms), 0)

    def __repr__(self) -> str:
        parts = [f"{t.coeff}*{'*'.join(str(a) for a in t.atoms)}" for t in self.terms.values()]
        return f"Linear({' + '.join(parts)} + {self.const})"


def add_terms(terms: dict[MonomialKey, Term], form: Linear, k: int) -> None:
    """``terms += k * form.terms`` in place (``form`` is not modified)."""
    for key, term in form.terms.items():
        old = terms.get(key)
        coeff = k * term.coeff + (old.coeff if old is not None else 0)
        if coeff == 0:
            if old is not None:
                del terms[key]
        else:
            terms[key] = Term(term.atoms, coeff)


def _narrow(atom: E.Expr, dtype: str) -> tuple[E.Expr, bool]:
    """The narrower integer expression that ``atom`` (of ``dtype``) widens, and True; else ``atom`` and False."""
    if isinstance(atom, E.Cast) and dt.is_int(atom.value.dtype) and atom.value.dtype != dtype \
            and dt.widens(atom.value.dtype, dtype):
        return atom.value, True
    return atom, False


class LinearForms:
    """Builds, combines and prints linear forms; memoizes the form of each expression it has parsed."""

    def __init__(self, keys: ExprKeys) -> None:
        self.keys = keys
        self._memo: dict[int, tuple[E.Expr, Linear]] = {}

    # -- construction ---------------------------------------------------------------------------------------------

    def const(self, value: int, dtype: str) -> Linear:
        return Linear(dtype, {}, value)

    def atom(self, e: E.Expr) -> Linear:
        return Linear(e.dtype, {(self.keys.key(e),): Term((e,), 1)}, 0)

    def of(self, e: E.Expr) -> Linear:
        """The linear form of an (already simplified) integer scalar expression."""
        hit = self._memo.get(id(e))
        if hit is not None:
            return hit[1]
        if isinstance(e, E.IntImm):
            result = self.const(e.value, e.dtype)
        elif isinstance(e, E.Add):
            result = self.add(self.of(e.a), self.of(e.b))
        elif isinstance(e, E.Sub):
            result = self.add(self.of(e.a), self.of(e.b), -1)
        elif isinstance(e, E.Mul):
            result = self.mul(self.of(e.a), self.of(e.b), e)
        else:
            result = self.atom(e)
        if len(self._memo) > 200_000:
            self._memo.clear()
        self._memo[id(e)] = (e, result)
        return result

    # -- arithmetic -----------------------------------------------------------------------------------------------

    def add(self, a: Linear, b: Linear, sign: int = 1) -> Linear:
        terms = dict(a.terms)
        for key, term in b.terms.items():
            old = terms.get(key)
            coeff = sign * term.coeff + (old.coeff if old is not None else 0)
            if coeff == 0:
                terms.pop(key, None)
            else:
                terms[key] = Term(term.atoms, coeff)
        return Linear(a.dtype, terms, a.const + sign * b.const)

    def scale(self, a: Linear, k: int) -> Linear:
        if k == 0:
            return Linear(a.dtype, {}, 0)
        if k == 1:
            return a
        return Linear(a.dtype, {key: Term(t.atoms, t.coeff * k) for key, t in a.terms.items()}, a.const * k)

    def mul(self, a: Linear, b: Linear, node: E.Expr | None = None) -> Linear:
        if a.is_const():
            return self.scale(b, a.const)
        if b.is_const():
            return self.scale(a, b.const)
        count = (len(a.terms) + (a.const != 0)) * (len(b.terms) + (b.const != 0))
        if count > EXPAND_LIMIT:
            if node is None:
                x, y = self.to_expr(a), self.to_expr(b)
                if self.keys.order_key(y) < self.keys.order_key(x):
                    x, y = y, x
                node = E.Mul(x, y, a.dtype)
            return self.atom(node)
        result = Linear(a.dtype, {}, a.const * b.const)
        if a.const:
            result = self.add(result, self.scale(b.without_const(), a.const))
        if b.const:
            result = self.add(result, self.scale(a.without_const(), b.const))
        for ta in a.terms.values():
            for tb in b.terms.values():
                result = self.add(result, self.monomial(ta.atoms + tb.atoms, ta.coeff * tb.coeff, a.dtype))
        return result

    def monomial(self, atoms: tuple[E.Expr, ...], coeff: int, dtype: str) -> Linear:
        order = self.keys.order_key
        ordered = tuple(sorted(atoms, key=order))
        key = tuple(sorted(self.keys.key(x) for x in ordered))
        return Linear(dtype, {key: Term(ordered, coeff)}, 0)

    # -- rewrites -------------------------------------------------------------------------------------------------

    def merge_divmod(self, lin: Linear) -> Linear:
        """``k*c*(y // c) + k*(x % c) -> k*y`` where ``y`` is ``x``, or ``x % m`` with ``c`` dividing ``m`` (then
        ``y % c == x % c``); repeated while pairs match, so ``(x//8)*8 + (x%8)//4*4 + x%4 -> x``. A symbolic ``c``
        (one atom: ``k*n*(x // n) + k*(x % n) -> k*x``) too."""
        result = lin
        while True:
            pair = self._divmod_pair(result) or self._symbolic_divmod_pair(result)
            if pair is None:
                return self._recover_mod(result)
            div_key, mod_key, y, k = pair
            terms = dict(result.terms)
            del terms[div_key]
            del terms[mod_key]
            result = self.add(Linear(result.dtype, terms, result.const), self.scale(self.of(y), k))

    def _recover_mod(self, lin: Linear) -> Linear:
        """``k*x - k*c*(x // c) -> k*(x % c)`` for an atom ``x`` and a positive constant ``c``."""
        result = lin
        for key, term in lin.terms.items():
            if len(term.atoms) != 1 or not isinstance(term.atoms[0], E.FloorDiv):
                continue
            atom = term.atoms[0]
            if not isinstance(atom.b, E.IntImm) or atom.b.value <= 0 or term.coeff % atom.b.value != 0:
                continue
            x_key = (self.keys.key(atom.a),)
            x_term = result.terms.get(x_key)
            if x_term is None or key not in result.terms or x_term.coeff * atom.b.value != -term.coeff:
                continue
            terms = dict(result.terms)
            del terms[key]
            del terms[x_key]
            mod = E.FloorMod(atom.a, atom.b, atom.dtype)
            result = self.add(Linear(result.dtype, terms, result.const), self.scale(self.atom(mod), x_term.coeff))
        return result

    def _divmod_pair(self, lin: Linear) -> tuple[MonomialKey, MonomialKey, E.Expr, int] | None:
        mods: dict[tuple[int, int], tuple[MonomialKey, Term]] = {}
        divs: list[tuple[MonomialKey, Term, E.FloorDiv]] = []
        for key, term in lin.terms.items():
            if len(term.atoms) != 1:
                continue
            atom = term.atoms[0]
            if not isinstance(atom, (E.FloorDiv, E.FloorMod)) or not isinstance(atom.b, E.IntImm):
                continue
            if atom.b.value <= 0:
                continue
            if isinstance(atom, E.FloorMod):
                mods[(self.keys.key(atom.a), atom.b.value)] = (key, term)
            else:
                divs.append((key, term, atom))
        if not mods or not divs:
            return None
        for div_key, div_term, atom in divs:
            assert isinstance(atom.b, E.IntImm)
            c, y = atom.b.value, atom.a
            bases = [self.keys.key(y)]
            if isinstance(y, E.FloorMod) and isinstance(y.b, E.IntImm) and y.b.value > 0 and y.b.value % c == 0:
                bases.append(self.keys.key(y.a))
            for base in bases:
                match = mods.get((base, c))
                if match is not None and div_term.coeff == match[1].coeff * c:
                    return div_key, match[0], y, match[1].coeff
        return None

    def _symbolic_divmod_pair(self, lin: Linear) -> tuple[MonomialKey, MonomialKey, E.Expr, int] | None:
        """As ``_divmod_pair`` for a divisor that is one atom ``n``: the terms ``k*n*(x // n)`` and ``k*(x % n)``,
        or their atoms each widened (``k*int64(n)*int64(x // n) + k*int64(x % n) -> k*int64(x)``: a 64-bit offset
        of 32-bit indices)."""
        mods: dict[tuple[object, object, bool], tuple[MonomialKey, Term]] = {}
        for key, term in lin.terms.items():
            atom, widened = _narrow(term.atoms[0], lin.dtype)
            if len(term.atoms) == 1 and isinstance(atom, E.FloorMod) and not isinstance(atom.b, E.IntImm):
                mods[(self.keys.key(atom.a), self.keys.key(atom.b), widened)] = (key, term)
        if not mods:
            return None
        for key, term in lin.terms.items():
            if len(term.atoms) != 2:
                continue
            for first, second in (term.atoms, term.atoms[::-1]):
                (div, widened), (other, other_widened) = _narrow(first, lin.dtype), _narrow(second, lin.dtype)
                if widened != other_widened or not isinstance(div, E.FloorDiv) or not self.keys.equal(div.b, other):
                    continue
                match = mods.get((self.keys.key(div.a), self.keys.key(div.b), widened))
                if match is not None and match[1].coeff == term.coeff:
                    return key, match[0], E.Cast(div.a, lin.dtype) if widened else div.a, term.coeff
        return None

    # -- printing -------------------------------------------------------------------------------------------------

    def sorted_terms(self, lin: Linear) -> list[Term]:
        order = self.keys.order_key

        def sort_key(term: Term) -> tuple[int, int, tuple[object, ...]]:
            return (-len(term.atoms), -abs(term.coeff), tuple(order(x) for x in term.atoms))

        return sorted(lin.terms.values(), key=sort_key)

    def to_expr(self, lin: Linear) -> E.Expr:
        """The expression of ``lin``; its form is remembered so that parsing it back is free."""
        result = self._build(lin)
        if not isinstance(result, E.IntImm):
            self._memo[id(result)] = (result, Linear(lin.dtype, lin.terms, wrap_int(lin.const, lin.dtype)))
        return result

    def _build(self, lin: Linear) -> E.Expr:
        dtype = lin.dtype
        if not lin.terms:
            return int_const(lin.const, dtype)
        terms = self.sorted_terms(lin)
        positive = [t for t in terms if t.coeff > 0]
        negative = [t for t in terms if t.coeff < 0]
        result: E.Expr | None = None
        for term in positive:
            piece = self._term_expr(term.atoms, term.coeff, dtype)
            result = piece if result is None else E.Add(result, piece, dtype)
        const = wrap_int(lin.const, dtype)
        if not dt.is_signed(dtype) and const > dt.max_value(dtype) // 2:
            const -= 1 << dt.bits(dtype)  # print x + 4294967295u32 as x - 1u32
        if result is None:
            if const > 0:
                result = E.IntImm(const, dtype)
                const = 0
            else:
                first = negative.pop(0)
                result = self._term_expr(first.atoms, first.coeff, dtype)
        for term in negative:
            result = E.Sub(result, self._term_expr(term.atoms, -term.coeff, dtype), dtype)
        if const > 0:
            result = E.Add(result, E.IntImm(const, dtype), dtype)
        elif const < 0:
            result = E.Sub(result, int_const(-const, dtype), dtype)
        return result

    def _term_expr(self, atoms: tuple[E.Expr, ...], coeff: int, dtype: str) -> E.Expr:
        result = atoms[0]
        for atom in atoms[1:]:
            result = E.Mul(result, atom, dtype)
        if coeff != 1:
            result = E.Mul(result, int_const(coeff, dtype), dtype)
        return result
