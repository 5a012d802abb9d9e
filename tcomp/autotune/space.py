"""Configuration spaces: the knobs a template defines and the configs that pick one value per knob.

A template is called with a ``cfg`` in one of two modes:

- **define mode** (``cfg`` is a ``ConfigSpace``): every ``cfg.define_*`` call records a knob and returns the knob's
  fallback choice, so the template builds the default schedule while the space learns its knobs;
- **apply mode** (``cfg`` is a ``ConfigEntity``): the same calls return the choice the config made.

Knob kinds: ``define_split`` (tile sizes of one axis), ``define_reorder`` (a permutation of axes),
``define_annotate`` (unroll / vectorize / nothing per axis), ``define_knob`` (one of a list of values). A space of
knob sizes ``n_0, n_1, ...`` has ``n_0 * n_1 * ...`` configs, numbered mixed-radix with the first knob the least
significant digit. Index 0 is the first choice of every knob; ``space.fallback`` holds each knob's fallback choice.
Knob choices are JSON values, so a config serializes as a list of ``[name, kind, value]``.
"""

from __future__ import annotations

import enum
import itertools
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from tcomp.autotune.knob import (
    POLICY_CHOICES,
    AnnotateEntity,
    AnnotatePolicy,
    Annotation,
    Entity,
    Knob,
    KnobKind,
    OtherOptionEntity,
    ReorderEntity,
    ReorderPolicy,
    SpaceError,
    SplitEntity,
    SplitPolicy,
    axis_extent,
    check_choice,
    closest_split,
    entity_from_json,
    kind_of,
    split_sizes,
)
from tcomp.ir.expr import IterVar
from tcomp.json_value import as_int, as_list, as_object, as_str
from tcomp.target import Target

MAX_KNOBS = 256  # knobs of a config read from JSON
MAX_KNOB_NAME = 200

__all__ = [
    "AnnotateEntity", "AnnotatePolicy", "Annotation", "Config", "ConfigEntity", "ConfigSpace", "Entity", "Knob",
    "KnobKind", "OtherOptionEntity", "ReorderEntity", "ReorderPolicy", "SpaceError", "SplitEntity", "SplitPolicy",
]


# ---------------------------------------------------------------------------------------------------------------------
class _Definer:
    """The ``define_*`` interface shared by both modes."""

    target: Target | None

    def _define(self, knob: Knob) -> Entity:
        raise NotImplementedError

    def define_split(self, name: str, axis: IterVar | int, num_outputs: int = 2,
                     policy: SplitPolicy = SplitPolicy.FACTORS, *, max_factor: int | None = None,
                     candidates: Sequence[Sequence[int]] | None = None,
                     filter: Callable[[SplitEntity], bool] | None = None,  # noqa: A002
                     fallback: Sequence[int] | None = None) -> SplitEntity:
        """Tile sizes for ``axis`` (or an int extent) split into ``num_outputs`` parts. ``max_factor`` caps each
        inner factor; ``filter`` keeps the entities it accepts; ``fallback`` (sizes, ``-1`` or anything for the
        outer part) picks the fallback choice, or the closest one that exists."""
        if not isinstance(policy, SplitPolicy):
            raise SpaceError(f"knob {name}: policy must be a SplitPolicy, got {policy!r}")
        if num_outputs < 2:
            raise SpaceError(f"knob {name}: num_outputs must be at least 2, got {num_outputs}")
        extent = axis_extent(name, axis)
        entities: list[Entity] = [SplitEntity(s) for s in split_sizes(extent, num_outputs, policy, candidates,
                                                                          max_factor)]
        if filter is not None:
            entities = [e for e in entities if filter(e)]  # type: ignore[arg-type]
        if not entities:
            raise SpaceError(f"knob {name}: no split of extent {extent} is left (check max_factor and filter)")
        fallback_index = 0
        if fallback is not None:
            if len(fallback) != num_outputs:
                raise SpaceError(f"knob {name}: fallback {list(fallback)} must have {num_outputs} entries")
            fallback_index = closest_split(entities, fallback)
        return self._define(Knob(name, KnobKind.SPLIT, tuple(entities), fallback_index))  # type: ignore[return-value]

    def define_reorder(self, name: str, axes: Sequence[Any], policy: ReorderPolicy = ReorderPolicy.ALL, *,
                       candidates: Sequence[Sequence[int]] | None = None,
                       fallback: Sequence[int] | None = None) -> ReorderEntity:
        """A permutation of ``axes`` (the axes, or just their count as an int)."""
        if not isinstance(policy, ReorderPolicy):
            raise SpaceError(f"knob {name}: policy must be a ReorderPolicy, got {policy!r}")
        count = axes if isinstance(axes, int) else len(axes)
        if policy is ReorderPolicy.ALL:
            perms = list(itertools.permutations(range(count)))
        elif policy is ReorderPolicy.IDENTITY:
            perms = [tuple(range(count))]
        else:
            perms = [tuple(int(p) for p in c) for c in candidates or ()]
            for perm in perms:
                if sorted(perm) != list(range(count)):
                    raise SpaceError(f"knob {name}: {list(perm)} is not a permutation of {count} axes")
        entities: tuple[Entity, ...] = tuple(ReorderEntity(p) for p in perms)
        index = 0
        if fallback is not None:
            wanted = ReorderEntity(tuple(fallback))
            if wanted not in entities:
                raise SpaceError(f"knob {name}: fallback {list(fallback)} is not one of the candidates")
            index = entities.index(wanted)
        return self._define(Knob(name, KnobKind.REORDER, entities, index))  # type: ignore[return-value]

    def define_annotate(self, name: str, axes: Sequence[Any], policy: AnnotatePolicy = AnnotatePolicy.TRY_UNROLL,
                        *, candidates: Sequence[Sequence[Annotation]] | None = None,
                        fallback: Sequence[Annotation] | None = None) -> AnnotateEntity:
        """An ``Annotation`` for each of ``axes`` (the axes, or their count)."""
        if not isinstance(policy, AnnotatePolicy):
            raise SpaceError(f"knob {name}: policy must be an AnnotatePolicy, got {policy!r}")
        count = axes if isinstance(axes, int) else len(axes)
        if policy is AnnotatePolicy.CANDIDATES:
            choices = [tuple(Annotation(a) for a in c) for c in candidates or ()]
            if any(len(c) != count for c in choices):
                raise SpaceError(f"knob {name}: each candidate needs one annotation per axis ({count})")
        else:
            choices = list(itertools.product(POLICY_CHOICES[policy], repeat=count))
        entities: tuple[Entity, ...] = tuple(AnnotateEntity(c) for c in choices)
        index = 0
        if fallback is not None:
            wanted = AnnotateEntity(tuple(fallback))
            if wanted not in entities:
                raise SpaceError(f"knob {name}: fallback {[a.value for a in fallback]} is not a candidate")
            index = entities.index(wanted)
        return self._define(Knob(name, KnobKind.ANNOTATE, entities, index))  # type: ignore[return-value]

    def define_knob(self, name: str, candidates: Sequence[Any], *, fallback: Any = None) -> OtherOptionEntity:
        """One of ``candidates`` (JSON scalars; enum members are stored by value). Read it with ``.val``."""
        values = [c.value if isinstance(c, enum.Enum) else c for c in candidates]
        for value in values:
            if not isinstance(value, (int, float, str, bool)):
                raise SpaceError(f"knob {name}: candidate {value!r} is not a JSON scalar")
        if len(set(values)) != len(values):
            raise SpaceError(f"knob {name}: candidates {values} repeat a value")
        index = 0
        if fallback is not None:
            wanted = fallback.value if isinstance(fallback, enum.Enum) else fallback
            if wanted not in values:
                raise SpaceError(f"knob {name}: fallback {wanted!r} is not one of {values}")
            index = values.index(wanted)
        entities = tuple(OtherOptionEntity(v) for v in values)
        return self._define(Knob(name, KnobKind.OTHER, entities, index))  # type: ignore[return-value]


class ConfigSpace(_Definer):
    """The knobs of one template instance (define mode). ``len(space)`` configs, numbered from 0."""

    def __init__(self, target: Target | None = None) -> None:
        self.target = target
        self.knobs: dict[str, Knob] = {}
        self.flop: float = 0.0

    def _define(self, knob: Knob) -> Entity:
        if knob.name in self.knobs:
            raise SpaceError(f"knob {knob.name} is defined twice")
        self.knobs[knob.name] = knob
        return knob.fallback

    def __getitem__(self, name: str) -> Entity:
        """The fallback choice of knob ``name`` (templates read ``cfg[name]`` in both modes)."""
        return self.knobs[name].fallback

    def add_flop(self, flop: float) -> None:
        """Declare the template's FLOP count (otherwise the task counts the compute's arithmetic)."""
        self.flop += float(flop)

    # -- numbering ---------------------------------------------------------------------------------------------------
    @property
    def dims(self) -> list[int]:
        return [len(k) for k in self.knobs.values()]

    def __len__(self) -> int:
        return math.prod(self.dims)

    def digits(self, index: int) -> list[int]:
        """The knob values' positions of config ``index`` (of the whole space: a subset's members keep theirs)."""
        size_of_space = math.prod(self.dims)
        if not 0 <= index < size_of_space:
            raise SpaceError(f"config index {index} is outside the space of {size_of_space} configs")
        result = []
        for size in self.dims:
            result.append(index % size)
            index //= size
        return result

    def index_from_digits(self, digits: Sequence[int]) -> int:
        index, scale = 0, 1
        for digit, size in zip(digits, self.dims):
            index += int(digit) * scale
            scale *= size
        return index

    def get(self, index: int) -> ConfigEntity:
        digits = self.digits(index)
        choices = {name: knob.entities[d] for (name, knob), d in zip(self.knobs.items(), digits)}
        return ConfigEntity(index, choices, self.target)

    @property
    def fallback(self) -> ConfigEntity:
        """Every knob at its fallback choice: the template's default schedule."""
        return self.get(self.index_from_digits([k.fallback_index for k in self.knobs.values()]))

    def index_of(self, config: ConfigEntity) -> int | None:
        """The index of the config with ``config``'s choices in this space, or None if it does not fit."""
        if set(config.choices) != set(self.knobs):
            return None
        digits = []
        for name, knob in self.knobs.items():
            position = knob.position(config.choices[name])
            if position is None:
                return None
            digits.append(position)
        return self.index_from_digits(digits)

    def check(self, config: ConfigEntity) -> int:
        """The index of ``config`` in this space (-1 when it leaves knobs out); ``SpaceError`` naming the first
        knob it gets wrong when it names a knob the space lacks or a value that is not one of the knob's choices.
        Configs from records, or built by hand, are checked before any build. A config may leave out knobs: a
        record written before its template grew a knob; the template decides whether it accepts that (a
        template that reads the missing knob gets a ``SpaceError``)."""
        for name, chosen in config.choices.items():
            knob = self.knobs.get(name)
            if knob is None:
                raise SpaceError(f"the template has no knob {_short_text(name)} (it has: {', '.join(self.knobs)})")
            check_choice(knob, chosen)
        index = self.index_of(config)
        return -1 if index is None else index

    def __iter__(self) -> Iterator[ConfigEntity]:
        return (self.get(i) for i in range(len(self)))

    # -- random access for search ------------------------------------------------------------------------------------
    def sample(self, rng: np.random.Generator, count: int, exclude: Iterable[int] = ()) -> list[int]:
        """Up to ``count`` distinct random indices, none in ``exclude``."""
        excluded = set(exclude)
        available = len(self) - len(excluded)
        count = max(0, min(count, available))
        if len(self) <= 4 * (count + len(excluded)):
            pool = [i for i in self.indices() if i not in excluded]
            return [int(i) for i in rng.permutation(pool)[:count]]
        chosen: list[int] = []
        seen = set(excluded)
        while len(chosen) < count:
            index = self.random_index(rng)
            if index not in seen:
                seen.add(index)
                chosen.append(index)
        return chosen

    def random_index(self, rng: np.random.Generator) -> int:
        return self.index_from_digits([int(rng.integers(size)) for size in self.dims])

    def indices(self) -> Sequence[int]:
        """Every config's index, in order."""
        return range(len(self))

    def contains(self, index: int) -> bool:
        return 0 <= index < len(self)

    def subset(self, indices: Iterable[int], fallback: int | None = None) -> ConfigSubset:
        """The configs ``indices`` of this space as a space of their own (see ``ConfigSubset``)."""
        return ConfigSubset(self, indices, fallback)

    def neighbour(self, index: int, rng: np.random.Generator) -> int:
        """A config that differs from ``index`` in one knob (``index`` itself when no knob has a second choice)."""
        digits = self.digits(index)
        movable = [k for k, size in enumerate(self.dims) if size > 1]
        if not movable:
            return index
        k = movable[int(rng.integers(len(movable)))]
        step = int(rng.integers(1, self.dims[k]))
        digits[k] = (digits[k] + step) % self.dims[k]
        return self.index_from_digits(digits)

    def neighbours(self, index: int) -> list[int]:
        """Every config that differs from ``index`` in one knob."""
        digits = self.digits(index)
        result = []
        for k, size in enumerate(self.dims):
            for value in range(size):
                if value != digits[k]:
                    moved = list(digits)
                    moved[k] = value
                    result.append(self.index_from_digits(moved))
        return result

    def __repr__(self) -> str:
        lines = [f"ConfigSpace({len(self)} configs)"]
        for knob in self.knobs.values():
            shown = ", ".join(str(e.to_json()) for e in knob.entities[:6])
            more = ", ..." if len(knob) > 6 else ""
            lines.append(f"  {knob.name} ({knob.kind.value}, {len(knob)}): [{shown}{more}]")
        return "\n".join(lines)


class ConfigSubset(ConfigSpace):
    """Some configs of a space, searched as a space: a tuner given one proposes only these, such as the configs of
    a measured table (``replay``) or a shortlist. Indices stay those of the whole space (features, records and
    ``get`` agree with it); ``len`` counts the subset. ``neighbour`` moves to a config of the subset that differs in
    the fewest knobs; ``fallback`` is the space's when the subset holds it, else the given one (the first by
    default)."""

    def __init__(self, parent: ConfigSpace, indices: Iterable[int], fallback: int | None = None) -> None:
        super().__init__(parent.target)
        self.knobs = parent.knobs
        self.flop = parent.flop
        self.parent_size = len(parent)
        self.members = list(dict.fromkeys(int(i) for i in indices))
        if not self.members:
            raise SpaceError("a subset of a config space needs at least one config")
        for index in self.members:
            if not 0 <= index < self.parent_size:
                raise SpaceError(f"config index {index} is outside the space of {self.parent_size} configs")
        self.member_set = set(self.members)
        parent_fallback = parent.fallback.index
        if fallback is None:
            fallback = parent_fallback if parent_fallback in self.member_set else self.members[0]
        if fallback not in self.member_set:
            raise SpaceError(f"fallback {fallback} is not one of the subset's configs")
        self.fallback_index = fallback
        self._digits = np.asarray([self.digits(i) for i in self.members], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.members)

    def indices(self) -> Sequence[int]:
        return self.members

    def contains(self, index: int) -> bool:
        return index in self.member_set

    @property
    def fallback(self) -> ConfigEntity:
        return self.get(self.fallback_index)

    def index_of(self, config: ConfigEntity) -> int | None:
        index = super().index_of(config)
        return index if index in self.member_set else None

    def __iter__(self) -> Iterator[ConfigEntity]:
        return (self.get(i) for i in self.members)

    def sample(self, rng: np.random.Generator, count: int, exclude: Iterable[int] = ()) -> list[int]:
        excluded = set(exclude)
        pool = [i for i in self.members if i not in excluded]
        return [int(i) for i in rng.permutation(pool)[:max(0, count)]] if pool else []

    def random_index(self, rng: np.random.Generator) -> int:
        return self.members[int(rng.integers(len(self.members)))]

    def neighbour(self, index: int, rng: np.random.Generator) -> int:
        nearest = self.neighbours(index)
        return nearest[int(rng.integers(len(nearest)))] if nearest else index

    def neighbours(self, index: int) -> list[int]:
        """The configs of the subset that differ from ``index`` in the fewest knobs (one, in a whole space)."""
        distance = (self._digits != np.asarray(self.digits(index))).sum(axis=1)
        distance[distance == 0] = len(self.dims) + 1
        if distance.min() > len(self.dims):
            return []
        return [self.members[k] for k in np.nonzero(distance == distance.min())[0]]


class ConfigEntity(_Definer):
    """One config (apply mode): a choice per knob. ``index`` is its number in the space it came from (-1 when it
    was read from a record and not matched to a space). Holds no reference to the space, so it pickles small."""

    def __init__(self, index: int, choices: dict[str, Entity], target: Target | None = None) -> None:
        self.index = index
        self.choices = dict(choices)
        self.target = target

    def _define(self, knob: Knob) -> Entity:
        chosen = self.choices.get(knob.name)
        if chosen is None:
            raise SpaceError(f"config has no choice for knob {knob.name} (it has: {', '.join(self.choices)})")
        check_choice(knob, chosen)
        return chosen

    def __getitem__(self, name: str) -> Entity:
        return self.choices[name]

    def add_flop(self, flop: float) -> None:
        """Ignored in apply mode (the task counted FLOPs in define mode)."""

    def with_target(self, target: Target | None) -> ConfigEntity:
        return ConfigEntity(self.index, self.choices, target)

    # -- serialization -------------------------------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        knobs = [[name, kind_of(e).value, e.to_json()] for name, e in self.choices.items()]
        return {"index": self.index, "knobs": knobs}

    @staticmethod
    def from_json(value: Any, target: Target | None = None) -> ConfigEntity:
        """A config from its JSON form (each value checked for its knob kind's type; whether the values are
        choices of a template's space is ``ConfigSpace.check``'s business)."""
        fields = as_object(value, "config")
        choices: dict[str, Entity] = {}
        for item in as_list(fields.get("knobs"), "config knobs", MAX_KNOBS):
            entry = as_list(item, "a config knob", 3)
            if len(entry) != 3:
                raise SpaceError(f"config: a knob is [name, kind, value], got {len(entry)} entries")
            name = as_str(entry[0], "knob name", MAX_KNOB_NAME)
            kind, knob_value = entry[1], entry[2]
            if name in choices:
                raise SpaceError(f"config: knob {name} is given twice")
            try:
                knob_kind = KnobKind(as_str(kind, f"knob {name}: kind", MAX_KNOB_NAME))
            except ValueError:
                raise SpaceError(f"config: knob {name} has an unknown kind {kind!r}") from None
            choices[name] = entity_from_json(knob_kind, knob_value, f"knob {name}")
        index = as_int(fields.get("index", -1), "config index", -1)
        return ConfigEntity(index, choices, target)

    def same_choices(self, other: ConfigEntity) -> bool:
        return self.choices == other.choices

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={e.to_json()}" for name, e in self.choices.items())
        return f"ConfigEntity({self.index}: {shown})"


def _short_text(text: str) -> str:
    return text if len(text) <= 80 else text[:77] + "..."


Config = ConfigSpace | ConfigEntity
