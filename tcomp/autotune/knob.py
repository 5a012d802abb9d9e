"""Knobs: the choices a template exposes, each an ordered tuple of entities, and the schedule rewrite of each entity.

Entities are frozen values with a JSON form: ``SplitEntity`` (tile sizes), ``ReorderEntity`` (a permutation),
``AnnotateEntity`` (unroll / vectorize / nothing per axis), ``OtherOptionEntity`` (a value of a list). Policies and
annotations are enums. ``split_sizes`` enumerates the tile sizes of an extent for a policy.
"""

from __future__ import annotations

import enum
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tcomp.arith.factors import divisors, powers_of_two
from tcomp.ir.expr import IterVar, const_int_value
from tcomp.json_value import JSONValueError, as_int, as_list, as_scalar, as_str

MAX_KNOB_LENGTH = 64  # entries of a split, reorder or annotate value read from JSON
MAX_SPLIT_EXTENT = 2**40  # extents a split knob enumerates (divisors take sqrt(extent) steps)
MAX_SPLIT_CHOICES = 2**18  # tuples of inner factors a split knob may enumerate


class SpaceError(ValueError):
    """A knob defined with bad arguments, or a config that does not fit a space."""


class KnobKind(enum.Enum):
    SPLIT = "split"
    REORDER = "reorder"
    ANNOTATE = "annotate"
    OTHER = "other"


class SplitPolicy(enum.Enum):
    """How ``define_split`` enumerates inner factors: ``FACTORS`` (divisors of the extent, so no guard is
    generated), ``POWER2`` (powers of two up to the extent, guards where they do not divide), ``CANDIDATES``
    (the explicit ``candidates`` list of sizes)."""

    FACTORS = "factors"
    POWER2 = "power2"
    CANDIDATES = "candidates"


class ReorderPolicy(enum.Enum):
    """``ALL``: every permutation; ``IDENTITY``: only the given order; ``CANDIDATES``: an explicit list."""

    ALL = "all"
    IDENTITY = "identity"
    CANDIDATES = "candidates"


class Annotation(enum.Enum):
    NONE = "none"
    UNROLL = "unroll"
    VECTORIZE = "vectorize"
    PARALLEL = "parallel"


class AnnotatePolicy(enum.Enum):
    """Per axis: ``TRY_UNROLL`` {none, unroll}; ``TRY_VECTORIZE`` {none, vectorize};
    ``TRY_UNROLL_VECTORIZE`` {none, unroll, vectorize}; ``CANDIDATES``: explicit tuples of ``Annotation``."""

    TRY_UNROLL = "try_unroll"
    TRY_VECTORIZE = "try_vectorize"
    TRY_UNROLL_VECTORIZE = "try_unroll_vectorize"
    CANDIDATES = "candidates"


POLICY_CHOICES = {
    AnnotatePolicy.TRY_UNROLL: (Annotation.NONE, Annotation.UNROLL),
    AnnotatePolicy.TRY_VECTORIZE: (Annotation.NONE, Annotation.VECTORIZE),
    AnnotatePolicy.TRY_UNROLL_VECTORIZE: (Annotation.NONE, Annotation.UNROLL, Annotation.VECTORIZE),
}


# ---------------------------------------------------------------------------------------------------------------------
# entities: one knob's choice, with the schedule rewrite it stands for
@dataclass(frozen=True)
class SplitEntity:
    """Sizes ``(outer, f_1, ..., f_{n-1})`` of an n-way split: the axis is split by ``f_{n-1}`` (innermost), the
    outer part by ``f_{n-2}`` and so on; ``outer`` is the number of outer iterations (``ceil(E / prod(f))``)."""

    size: tuple[int, ...]

    def apply(self, stage: Any, axis: IterVar) -> list[IterVar]:
        """Split ``axis`` of ``stage`` (a ``Stage``) and return the new axes, outermost first."""
        axes: list[IterVar] = []
        rest = axis
        for factor in reversed(self.size[1:]):
            rest, inner = stage.split(rest, factor=int(factor))
            axes.append(inner)
        axes.append(rest)
        return list(reversed(axes))

    def to_json(self) -> Any:
        return list(self.size)


@dataclass(frozen=True)
class ReorderEntity:
    """A permutation: position ``p`` of the new order holds axis ``perm[p]`` of the given list."""

    perm: tuple[int, ...]

    def permute(self, axes: Sequence[Any]) -> list[Any]:
        return [axes[p] for p in self.perm]

    def apply(self, stage: Any, axes: Sequence[IterVar]) -> None:
        stage.reorder(*self.permute(axes))

    def to_json(self) -> Any:
        return list(self.perm)


@dataclass(frozen=True)
class AnnotateEntity:
    """One ``Annotation`` per axis."""

    anns: tuple[Annotation, ...]

    def apply(self, stage: Any, axes: Sequence[IterVar]) -> None:
        for axis, ann in zip(axes, self.anns):
            if ann is Annotation.UNROLL:
                stage.unroll(axis)
            elif ann is Annotation.VECTORIZE:
                stage.vectorize(axis)
            elif ann is Annotation.PARALLEL:
                stage.parallel(axis)

    def to_json(self) -> Any:
        return [a.value for a in self.anns]


@dataclass(frozen=True)
class OtherOptionEntity:
    """One value of a ``define_knob`` list (a JSON scalar: int, float, str, bool)."""

    val: Any

    def to_json(self) -> Any:
        return self.val


Entity = SplitEntity | ReorderEntity | AnnotateEntity | OtherOptionEntity


def entity_from_json(kind: KnobKind, value: Any, what: str = "knob") -> Entity:
    """The entity of ``kind`` a JSON value stands for; ``JSONValueError`` when the value has the wrong type."""
    if kind is KnobKind.SPLIT:
        return SplitEntity(tuple(as_int(v, f"{what}: split size") for v in as_list(value, what, MAX_KNOB_LENGTH)))
    if kind is KnobKind.REORDER:
        return ReorderEntity(tuple(as_int(v, f"{what}: position") for v in as_list(value, what, MAX_KNOB_LENGTH)))
    if kind is KnobKind.ANNOTATE:
        anns = []
        for item in as_list(value, what, MAX_KNOB_LENGTH):
            try:
                anns.append(Annotation(as_str(item, f"{what}: annotation", 40)))
            except ValueError:
                raise JSONValueError(f"{what}: unknown annotation {item!r}") from None
        return AnnotateEntity(tuple(anns))
    return OtherOptionEntity(as_scalar(value, what))


# ---------------------------------------------------------------------------------------------------------------------
# knobs: a name and its ordered choices
@dataclass(frozen=True)
class Knob:
    name: str
    kind: KnobKind
    entities: tuple[Entity, ...]
    fallback_index: int = 0
    _positions: dict[Entity, int] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not self.entities:
            raise SpaceError(f"knob {self.name}: no choice is left (check its candidates and filter)")
        self._positions.update({e: i for i, e in enumerate(self.entities)})

    def __len__(self) -> int:
        return len(self.entities)

    def position(self, entity: Entity) -> int | None:
        return self._positions.get(entity)

    @property
    def fallback(self) -> Entity:
        return self.entities[self.fallback_index]


def check_choice(knob: Knob, chosen: Entity) -> None:
    """``SpaceError`` unless ``chosen`` is one of ``knob``'s choices (a template never sees any other value)."""
    if knob.position(chosen) is None:
        shown = ", ".join(str(e.to_json()) for e in knob.entities[:8])
        more = ", ..." if len(knob) > 8 else ""
        value = str(chosen.to_json())
        value = value if len(value) <= 80 else value[:77] + "..."
        raise SpaceError(f"knob {knob.name}={value} is not one of its {len(knob)} choices [{shown}{more}]")


def axis_extent(name: str, axis: IterVar | int) -> int:
    if isinstance(axis, bool):
        raise SpaceError(f"knob {name}: expected an axis or an int extent, got {axis!r}")
    if isinstance(axis, int):
        extent = axis
    elif isinstance(axis, IterVar) and axis.dom is not None:
        value = const_int_value(axis.dom.extent)
        if value is None:
            raise SpaceError(f"knob {name}: axis {axis.var.name} has a symbolic extent; splits need a constant one")
        extent = value
    else:
        raise SpaceError(f"knob {name}: expected an axis with a domain or an int extent, got {axis!r}")
    if extent <= 0:
        raise SpaceError(f"knob {name}: the extent must be positive, got {extent}")
    if extent > MAX_SPLIT_EXTENT:
        raise SpaceError(f"knob {name}: an extent of {extent} is too large to tune (at most 2^40)")
    return extent


def split_sizes(extent: int, num_outputs: int, policy: SplitPolicy, candidates: Sequence[Sequence[int]] | None,
                 max_factor: int | None) -> list[tuple[int, ...]]:
    """All ``(outer, f_1, ..., f_{n-1})`` for ``policy``, in a fixed order (inner factors ascending)."""
    if policy is SplitPolicy.CANDIDATES:
        if not candidates:
            raise SpaceError("SplitPolicy.CANDIDATES needs a candidates list")
        result = []
        for sizes in candidates:
            inner = tuple(int(s) for s in sizes[1:])
            if len(sizes) != num_outputs or any(s <= 0 for s in inner):
                raise SpaceError(f"split candidate {list(sizes)} must have {num_outputs} entries, inner ones positive")
            result.append((-(-extent // math.prod(inner)),) + inner)
        return result
    limit = extent if max_factor is None else min(extent, max_factor)
    if policy is SplitPolicy.FACTORS:
        values = [d for d in divisors(extent) if d <= limit]
    else:
        values = powers_of_two(1, limit)
    if len(values) ** (num_outputs - 1) > MAX_SPLIT_CHOICES:
        raise SpaceError(f"splitting an extent of {extent} in {num_outputs} parts gives over {MAX_SPLIT_CHOICES} "
                         "choices; give max_factor or candidates")
    result = []
    for inner in itertools.product(values, repeat=num_outputs - 1):
        product = math.prod(inner)
        if policy is SplitPolicy.FACTORS and extent % product:
            continue
        if product > extent:
            continue
        result.append((-(-extent // product),) + tuple(inner))
    return result


def closest_split(entities: Sequence[Entity], wanted: Sequence[int]) -> int:
    """Index of the split whose inner factors are closest to ``wanted``'s in log scale."""

    def distance(entity: Entity) -> float:
        assert isinstance(entity, SplitEntity)
        return sum(abs(math.log2(a) - math.log2(max(1, b))) for a, b in zip(entity.size[1:], wanted[1:]))

    return min(range(len(entities)), key=lambda i: distance(entities[i]))


def kind_of(entity: Entity) -> KnobKind:
    if isinstance(entity, SplitEntity):
        return KnobKind.SPLIT
    if isinstance(entity, ReorderEntity):
        return KnobKind.REORDER
    if isinstance(entity, AnnotateEntity):
        return KnobKind.ANNOTATE
    return KnobKind.OTHER
