"""Symbolic dimensions: a model whose input dimensions vary from run to run (a decoder's cache length, a batch)
compiles once for all their values, instead of once per value. This module finds the template; the executors are
``dynamic_executor.py``'s.

tcomp's graph IR has static shapes, so the dimensions are found by probing, as PyTorch's automatic dynamic shapes
do: the model is imported and optimized (every graph pass, no code generation) with each symbolic dimension bound
to a few probe values, and the optimized graphs compared. Where they differ only in integers (shapes, attributes)
that are multilinear in the dimensions (``batch*seq + 1``: each symbol's own term and the products of two), the
differences become a template (``Polynomial`` integers, ``template``) that gives the graph for any values
(``instantiate``) and, with the dimensions as variables (``symbolic``), the tensor expressions of each kernel,
compiled once with the dimensions as arguments (``size_vars``).

The probe values are odd primes (37, 41 and 43 for one dimension; for two, a base, each moved, both moved and a
check: ``probe_bindings``): a decision a pass makes from divisibility (by 2, 4, 16, a tile) takes the branch for
any size, and one that differs between probes makes the graphs differ. Values known at compile time that come from
the dimensions (a position computed from the cache's length, a mask of its length) must not become constants: the
values the probes' imports know that differ stay nodes (constant folding's ``run_time``), then the constants the
passes folded that still differ (a constant broadcast to the batch), round after round. An attribute that only
chooses how a kernel runs (``OpDef.hints``: attention's tiles, chosen for the query's rows) takes the first
probe's value. Probing fails (``NoTemplate``, and the model keeps one compilation per shape) when the graphs differ
in anything else: their nodes, a constant's data, an integer not multilinear in the dimensions (a square, a
quotient). The error names the dimensions the differences come from (``NoTemplate.symbols``: those whose probe
alone makes them differ), so that the executor can hold those fixed and probe for the others (``specialize.py``:
an image's height and width, which strided convolutions divide). Runs whose dimensions make a tensor's templated
dimension smaller than 2 (an empty cache, a dimension of 1 that broadcasts) compile for their exact shapes instead
(``dynamic_executor.DynamicModel.covers``).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tcomp import te
from tcomp.graph.ir import Graph, GraphError, Node, TensorType
from tcomp.graph.op import get_op
from tcomp.ir import dtype as dt
from tcomp.ir import expr as E

PRIMES = (37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89, 97, 101, 103, 107, 109, 113, 127)
MAX_SYMBOLS = len(PRIMES) // 3
SMALLEST = 2  # a templated tensor dimension below this at a run's values: compile for the exact shapes
MAX_ROUNDS = 3  # pipeline runs per probe that may find more constants depending on the dimensions
LARGEST = 1 << 20  # the largest value a symbolic dimension takes (a longer cache compiles for its exact shapes)


class NoTemplate(GraphError):
    """The probes' graphs differ in a way a template cannot express. ``symbols``: the dimensions it comes from, where
    known (an image's height that a strided convolution divides, a channel count a weight fixes): with them held
    at a run's values, the others may still template."""

    def __init__(self, message: str, symbols: Iterable[str] = ()) -> None:
        super().__init__(message)
        self.symbols = frozenset(symbols)


@dataclass(frozen=True)
class Polynomial:
    """``constant + sum(coefficient * product of symbols)``: an integer of the graph that depends on the symbolic
    dimensions, each term's monomial a sorted tuple of distinct symbols (at most two: a batch times a length)."""

    constant: int
    terms: tuple[tuple[tuple[str, ...], int], ...]

    def at(self, binding: Mapping[str, int]) -> int:
        return self.constant + sum(c * math.prod(binding[s] for s in monomial) for monomial, c in self.terms)

    def expr(self, variables: Mapping[str, E.Var]) -> Any:
        result: Any = self.constant
        for monomial, coefficient in self.terms:
            term: Any = variables[monomial[0]]
            for symbol in monomial[1:]:
                term = term * variables[symbol]
            term = term if coefficient == 1 else term * coefficient
            result = term if isinstance(result, int) and result == 0 else result + term
        return result

    def __str__(self) -> str:
        parts = ["*".join(m) if c == 1 else f"{c}*{'*'.join(m)}" for m, c in self.terms]
        if self.constant:
            parts.append(str(self.constant))
        return " + ".join(parts).replace("+ -", "- ")


def probe_bindings(symbols: Sequence[str]) -> list[dict[str, int]]:
    """The probes: a base binding, one per symbol with that symbol changed, one per pair of symbols with both
    changed (their product's coefficient), and one with all of them changed to values of their own (the check)."""
    if not 0 < len(symbols) <= MAX_SYMBOLS:
        raise NoTemplate(f"{len(symbols)} symbolic dimensions; probing takes 1 to {MAX_SYMBOLS}")
    n = len(symbols)
    base = {s: PRIMES[i] for i, s in enumerate(symbols)}
    moved = {s: PRIMES[i + n] for i, s in enumerate(symbols)}
    probes = [base]
    probes.extend({**base, s: moved[s]} for s in symbols)
    probes.extend({**base, a: moved[a], b: moved[b]} for a, b in itertools.combinations(symbols, 2))
    probes.append({s: PRIMES[i + 2 * n] for i, s in enumerate(symbols)})
    return probes


# ---------------------------------------------------------------------------------------------------------------------
# templates: the objects of the probes' graphs merged, integers that differ fitted as Polynomial
@dataclass(frozen=True)
class _Object:
    """A dataclass instance whose fields differ between the probes (``fields``: name -> template)."""

    cls: type
    fields: tuple[tuple[str, Any], ...]


@dataclass(frozen=True)
class _Sequence:
    cls: type
    items: tuple[Any, ...]


@dataclass(frozen=True)
class _Mapping:
    items: tuple[tuple[Any, Any], ...]


_VARYING = (Polynomial, _Object, _Sequence, _Mapping)


def varies(template: Any) -> bool:
    """Whether ``template`` holds an integer that depends on the symbolic dimensions."""
    return isinstance(template, _VARYING)


def _fit(values: Sequence[int], probes: Sequence[Mapping[str, int]], where: str) -> int | Polynomial:
    """The polynomial through ``values`` at ``probes`` (``probe_bindings``' order): each pair's product coefficient
    from the probe moving both, each symbol's own from the probe moving it, checked at every probe."""
    first = values[0]
    if all(v == first for v in values):
        return first
    base, symbols = probes[0], list(probes[0])
    n = len(symbols)
    single = {s: (values[1 + i], probes[1 + i][s] - base[s]) for i, s in enumerate(symbols)}
    fail = NoTemplate(f"{where}: {list(values)} at the probes is not multilinear in the dimensions",
                      _moving(probes, [v != first for v in values]))
    terms: dict[tuple[str, ...], int] = {}
    for position, (a, b) in enumerate(itertools.combinations(symbols, 2)):
        mixed = values[1 + n + position] - single[a][0] - single[b][0] + first
        coefficient, remainder = divmod(mixed, single[a][1] * single[b][1])
        if remainder:
            raise fail
        if coefficient:
            terms[(a, b)] = coefficient
    for s in symbols:
        slope, remainder = divmod(single[s][0] - first, single[s][1])
        if remainder:
            raise fail
        coefficient = slope - sum(c * base[m[1] if m[0] == s else m[0]] for m, c in terms.items() if s in m)
        if coefficient:
            terms[(s,)] = coefficient
    ordered = tuple(sorted(terms.items(), key=lambda item: (-len(item[0]), item[0])))
    constant = first - sum(c * math.prod(base[s] for s in m) for m, c in ordered)
    fitted = Polynomial(constant, ordered)
    if any(fitted.at(p) != v for p, v in zip(probes, values)):
        raise fail
    return fitted


def template(objects: Sequence[Any], probes: Sequence[Mapping[str, int]], where: str = "graph",
             unfitted: list[NoTemplate] | None = None) -> Any:
    """The template of ``objects`` (the same graph object from each probe's graph, in ``probes`` order): the object
    itself where they are all alike, else a template whose varying integers are ``Polynomial``. ``NoTemplate`` when they
    differ otherwise (an integer not multilinear in the dimensions, anything else that differs), naming the
    dimensions whose probes make it differ; with ``unfitted``, such a difference is appended there instead, and the
    comparison goes on to find them all."""
    first = objects[0]
    if all(o is first for o in objects):
        return first

    def unfit(message: str, differs: Callable[[Any], bool]) -> Any:
        exc = NoTemplate(f"{where}: {message}", _moving(probes, [differs(o) for o in objects]))
        if unfitted is None:
            raise exc
        unfitted.append(exc)
        return first

    kind = type(first)
    if any(type(o) is not kind for o in objects):
        return unfit(f"{kind.__name__} at one probe, {[type(o).__name__ for o in objects]} at others",
                     lambda o: type(o) is not kind)
    if isinstance(first, (bool, np.bool_)) or first is None or isinstance(first, (str, float, bytes)):
        return unfit(f"{first!r} differs between probes", lambda o: o != first) if any(
            o != first for o in objects) else first
    if isinstance(first, (int, np.integer)):
        try:
            fitted = _fit([int(o) for o in objects], probes, where)
        except NoTemplate as exc:
            if unfitted is None:
                raise
            unfitted.append(exc)
            return first
        return first if isinstance(fitted, int) else fitted
    if isinstance(first, np.ndarray):
        def other(o: np.ndarray) -> bool:
            return o.dtype != first.dtype or _differ(o, first)

        return unfit("a constant's data depends on the dimensions", other) if any(map(other, objects)) else first
    if isinstance(first, (tuple, list)):
        if any(len(o) != len(first) for o in objects):
            return unfit(f"{len(first)} items at one probe, {[len(o) for o in objects]} at others",
                         lambda o: len(o) != len(first))
        items = tuple(template([o[i] for o in objects], probes, f"{where}[{i}]", unfitted) for i in range(len(first)))
        if not any(varies(item) for item in items):
            return first
        return _Sequence(kind, items)
    if isinstance(first, Mapping):
        keys = list(first)
        if any(list(o) != keys for o in objects):
            return unfit("the probes' graphs name different values", lambda o: list(o) != keys)
        entries = tuple((k, template([o[k] for o in objects], probes, f"{where}.{k}", unfitted)) for k in keys)
        if not any(varies(v) for _, v in entries):
            return first
        return _Mapping(entries)
    if isinstance(first, Node):
        objects = _first_hints(objects)
    if dataclasses.is_dataclass(first) and not isinstance(first, type):
        fields = tuple((f.name, template([getattr(o, f.name) for o in objects], probes, f"{where}.{f.name}",
                                          unfitted))
                       for f in dataclasses.fields(first))
        if not any(varies(v) for _, v in fields):
            return first
        return _Object(kind, fields)
    raise NoTemplate(f"{where}: cannot compare {kind.__name__} objects between probes")


def _moving(probes: Sequence[Mapping[str, int]], differs: Sequence[bool]) -> list[str]:
    """The dimensions whose own probe (``probe_bindings``: the base, then one per dimension moved alone) gives
    what ``differs`` (one flag per probe) from the base's; all of them where none does alone."""
    symbols = list(probes[0])
    return [s for i, s in enumerate(symbols) if differs[1 + i]] or symbols


def _first_hints(nodes: Sequence[Node]) -> Sequence[Node]:
    """``nodes`` (one node at each probe) with the first's value of every attribute that only chooses how the
    kernel runs (``OpDef.hints``: attention's tiles, chosen for the query's rows), so the template serves every
    value of the dimensions with those tiles."""
    hints = get_op(nodes[0].op).hints
    first = nodes[0].attr_dict
    changes = {key: first[key] for key in hints if key in first}
    if not changes or all(all(node.attr(key) == value for key, value in changes.items()) for node in nodes):
        return nodes
    return [nodes[0], *(node.with_attrs(**changes) for node in nodes[1:])]


def instantiate(template_: Any, binding: Mapping[str, int]) -> Any:
    """The object ``template_`` stands for at the dimensions ``binding``."""
    return _build(template_, lambda a: a.at(binding), TensorType)


def symbolic(template_: Any, variables: Mapping[str, E.Var]) -> Any:
    """The object ``template_`` stands for with the dimensions as the expressions ``variables`` (tensor types
    become ``SymbolicType``)."""
    return _build(template_, lambda a: a.expr(variables), SymbolicType)


def _build(template_: Any, integer: Callable[[Polynomial], Any], tensor_type: type) -> Any:
    if isinstance(template_, Polynomial):
        return integer(template_)
    if isinstance(template_, _Sequence):
        return template_.cls(_build(item, integer, tensor_type) for item in template_.items)
    if isinstance(template_, _Mapping):
        return {k: _build(v, integer, tensor_type) for k, v in template_.items}
    if isinstance(template_, _Object):
        fields = {name: _build(value, integer, tensor_type) for name, value in template_.fields}
        cls = tensor_type if template_.cls is TensorType else template_.cls
        return cls(**fields)
    return template_


@dataclass(frozen=True)
class SymbolicType:
    """A tensor type whose dimensions may be expressions of the symbolic dimensions (``symbolic``), read by the
    operator lowerings as they read a ``TensorType``."""

    shape: tuple[Any, ...]
    dtype: str

    @property
    def ndim(self) -> int:
        return len(self.shape)


def variables_for(symbols: Sequence[str]) -> dict[str, E.Var]:
    """The dimensions as 32-bit variables from ``SMALLEST`` to ``LARGEST`` (index arithmetic's type: 64-bit ones
    would put casts in every bound); a buffer indexes in 32 bits where that maximum keeps it under 2^31 elements,
    and a slice that ends before ``SMALLEST`` stays inside the dimension."""
    return {s: te.var(s, "int32", max_value=LARGEST, min_value=SMALLEST) for s in symbols}


def templated_dimensions(template_: Any) -> list[Polynomial]:
    """Every ``Polynomial`` dimension of a tensor type in ``template_`` (to check a binding against ``SMALLEST``)."""
    found: dict[Polynomial, None] = {}
    stack = [(template_, False)]
    while stack:
        item, in_type = stack.pop()
        if isinstance(item, Polynomial):
            if in_type:
                found[item] = None
        elif isinstance(item, _Sequence):
            stack.extend((x, in_type) for x in item.items)
        elif isinstance(item, _Mapping):
            stack.extend((v, in_type) for _, v in item.items)
        elif isinstance(item, _Object):
            stack.extend((v, in_type or item.cls is TensorType) for _, v in item.fields)
    return list(found)


def template_fields(graph_template_: Any) -> dict[str, Any]:
    """The fields of a graph's template (each a template), by name: ``types`` as a dict of value name to template,
    ``nodes`` as a list of node templates."""
    if isinstance(graph_template_, _Object):
        fields = dict(graph_template_.fields)
    else:
        fields = {f.name: getattr(graph_template_, f.name) for f in dataclasses.fields(graph_template_)}
    types, nodes = fields["types"], fields["nodes"]
    fields["types"] = dict(types.items) if isinstance(types, _Mapping) else dict(types)
    fields["nodes"] = list(nodes.items) if isinstance(nodes, _Sequence) else list(nodes)
    return fields


def varying_axes(type_template: Any) -> tuple[int, ...]:
    """The axes of a tensor type's template whose extent depends on the dimensions."""
    if not isinstance(type_template, _Object):
        return ()
    shape = dict(type_template.fields).get("shape")
    dims = shape.items if isinstance(shape, _Sequence) else ()
    return tuple(axis for axis, dim in enumerate(dims) if varies(dim))


def bytes_polynomial(type_template: Any) -> dict[tuple[str, ...], int]:
    """The byte size of a tensor type's template as a polynomial in the dimensions: coefficient per monomial (a
    sorted tuple of dimension names, a name repeated for its powers; ``()`` for the constant term)."""
    if isinstance(type_template, _Object):
        fields = dict(type_template.fields)
        shape, dtype = fields["shape"], fields["dtype"]
        dims = shape.items if isinstance(shape, _Sequence) else shape
    else:
        dims, dtype = type_template.shape, type_template.dtype
    polynomial = {(): dt.storage_bytes(dtype)}
    for dim in dims:
        terms = {(): dim} if isinstance(dim, int) else {(): dim.constant, **dict(dim.terms)}
        product: dict[tuple[str, ...], int] = {}
        for monomial, coefficient in polynomial.items():
            for symbols, factor in terms.items():
                key = tuple(sorted(monomial + symbols))
                product[key] = product.get(key, 0) + coefficient * factor
        polynomial = {k: v for k, v in product.items() if v}
    return polynomial


def graph_template(graphs: Sequence[Graph], probes: Sequence[Mapping[str, int]]) -> Any:
    """The template of the probes' optimized graphs, without their known values and analyses (a run's graph gets
    its own memory plan). Where they differ, ``NoTemplate`` names the dimensions the differences come from: those
    of the differences that come from one dimension each (an image's height divided by a stride), else all."""
    bare = [dataclasses.replace(g, values={}, meta={}, nodes=tuple(_bare(n) for n in g.nodes)) for g in graphs]
    unfitted: list[NoTemplate] = []
    fitted = template(bare, probes, unfitted=unfitted)
    if unfitted:
        raise _unfitted(unfitted)
    return fitted


def _unfitted(differences: Sequence[NoTemplate]) -> NoTemplate:
    """One error for ``differences``, naming the dimensions of those that come from one dimension each, else all of
    theirs."""
    alone = {s for exc in differences if len(exc.symbols) == 1 for s in exc.symbols}
    more = f" (and {len(differences) - 1} more)" if len(differences) > 1 else ""
    return NoTemplate(f"{differences[0]}{more}", alone or {s for exc in differences for s in exc.symbols})


def _bare(node: Node) -> Node:
    if node.op != "fused":
        return node
    body: Graph = node.attr("body")
    return node.with_attrs(body=dataclasses.replace(body, values={}, meta={}))


# ---------------------------------------------------------------------------------------------------------------------
# the probing
def probe(symbols: Sequence[str], imported: Callable[[Mapping[str, int]], Graph],
          optimized: Callable[[Graph, frozenset[str]], Graph],
          actual: Mapping[str, int] | None = None) -> tuple[list[dict[str, int]], Any]:
    """Probe the model: ``imported(binding)`` is its graph as imported at those dimensions (typed, with the values
    known at compile time), ``optimized(graph, run_time)`` the pass pipeline, constant folding leaving the values
    ``run_time`` to the kernels. Returns the probes and the template of their optimized graphs; ``NoTemplate`` when
    there is none.

    The values that differ between the probes stay nodes: first the small integers the imports know (shape
    arithmetic) and the values whose types differ (a constant broadcast to a shape that depends on the
    dimensions), then, pass after pass, the constants the pipeline folded that still differ, until none does.

    A probe the model does not accept (a symbolic channel count that a convolution's weight fixes) fails with
    ``NoTemplate``; given the dimensions of a run it accepts, ``actual``, the error names the dimensions that fail
    alone when moved from there (``NoTemplate.symbols``). So do tensor types of the imports that are not
    multilinear (an image's height divided by a strided convolution), before any pass runs."""
    probes = probe_bindings(symbols)
    try:
        graphs = [imported(p) for p in probes]
    except GraphError as exc:
        if isinstance(exc, NoTemplate):
            raise
        held = [] if actual is None else [s for s in symbols if not _accepts(imported, actual, s, probes)]
        raise NoTemplate(f"a probe's shapes do not fit the model: {exc}", held) from exc
    unfitted: list[NoTemplate] = []  # the imports' tensor types already tell the dimensions no template follows
    template([g.types for g in graphs], probes, "types", unfitted)
    if unfitted:
        raise _unfitted(unfitted)
    run_time = _differing([g.values for g in graphs], "the probes' imports know different values", probes)
    run_time |= _varying_types(graphs)
    for _ in range(MAX_ROUNDS):
        optimized_graphs = [optimized(g, frozenset(run_time)) for g in graphs]
        folded = _differing([g.params for g in optimized_graphs], "the probes' graphs have different constants",
                            probes)
        if not folded:
            return probes, graph_template(optimized_graphs, probes)
        if folded <= run_time:
            break  # made by a pass from values that are not nodes: keeping nodes cannot help
        run_time |= folded
    raise NoTemplate(f"constants {sorted(folded)[:4]} depend on the dimensions", _moving(probes, [
        any(_differ(g.params[n], optimized_graphs[0].params[n]) for n in folded) for g in optimized_graphs]))


def _accepts(imported: Callable[[Mapping[str, int]], Graph], actual: Mapping[str, int], symbol: str,
             probes: Sequence[Mapping[str, int]]) -> bool:
    """Whether the model imports at the dimensions ``actual`` with ``symbol`` moved alone to a probe's value."""
    moved = next(p[symbol] for p in probes if p[symbol] != actual[symbol])
    try:
        imported({**actual, symbol: moved})
    except GraphError:
        return False
    return True


def _varying_types(graphs: Sequence[Graph]) -> set[str]:
    """The values whose types differ between the probes' imports: a constant broadcast to a shape of the dimensions
    (a mask expanded for the batch) is not folded, in the first round already (each round would find the next
    one up a chain of such values)."""
    first = graphs[0]
    names = [o for node in first.nodes for o in node.outputs if o in first.types]
    return {n for n in names if any(g.types.get(n) != first.types[n] for g in graphs[1:])}


def _differing(arrays: Sequence[Mapping[str, np.ndarray]], what: str,
               probes: Sequence[Mapping[str, int]]) -> set[str]:
    """The names whose arrays are not the same in all of ``arrays`` (one mapping per probe, which must name the same
    values: ``NoTemplate`` ``what`` otherwise)."""
    names = list(arrays[0])
    if any(list(a) != names for a in arrays):
        raise NoTemplate(what, _moving(probes, [list(a) != names for a in arrays]))
    first = arrays[0]
    return {n for n in names if any(_differ(a[n], first[n]) for a in arrays[1:])}


def _differ(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether arrays ``a`` and ``b`` differ in shape or values (NaNs alike)."""
    return a is not b and (a.shape != b.shape or not np.array_equal(a, b, equal_nan=True))
