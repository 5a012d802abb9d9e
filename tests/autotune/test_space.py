"""Config spaces: knob enumeration, index <-> config mapping, sampling, neighbours, define/apply modes, JSON."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tcomp.autotune import (
    AnnotatePolicy,
    Annotation,
    ConfigEntity,
    ConfigSpace,
    ReorderPolicy,
    SpaceError,
    SplitEntity,
    SplitPolicy,
)


def small_space() -> ConfigSpace:
    space = ConfigSpace()
    space.define_split("tile", 12, 3)
    space.define_reorder("order", 3)
    space.define_annotate("ann", 2, AnnotatePolicy.TRY_UNROLL_VECTORIZE)
    space.define_knob("unroll", [1, 2, 4], fallback=2)
    return space


def test_split_factors_enumerates_divisor_tuples() -> None:
    space = ConfigSpace()
    knob = space.define_split("t", 12, 3)
    sizes = [e.size for e in space.knobs["t"].entities]
    assert knob == SplitEntity((12, 1, 1))
    assert all(outer * a * b == 12 for outer, a, b in sizes)
    assert len(sizes) == len(set(sizes)) == 18  # ordered pairs (a, b) with a * b dividing 12


def test_split_power2_allows_non_divisors_with_ceil_outer() -> None:
    space = ConfigSpace()
    space.define_split("t", 10, 2, SplitPolicy.POWER2)
    assert [e.size for e in space.knobs["t"].entities] == [(10, 1), (5, 2), (3, 4), (2, 8)]


def test_split_candidates_max_factor_filter_and_closest_fallback() -> None:
    space = ConfigSpace()
    chosen = space.define_split("c", 100, 2, SplitPolicy.CANDIDATES, candidates=[[-1, 16], [-1, 32]],
                                fallback=[-1, 30])
    assert chosen.size == (4, 32)
    space.define_split("m", 64, 2, max_factor=8, filter=lambda e: e.size[1] > 1)
    assert [e.size[1] for e in space.knobs["m"].entities] == [2, 4, 8]


def test_split_apply_makes_nested_axes_outermost_first() -> None:
    from tcomp import create_schedule, te

    A = te.placeholder((24,), name="A")
    B = te.compute((24,), lambda i: A[i] * 2.0, name="B")
    s = create_schedule(B)
    axes = SplitEntity((2, 3, 4)).apply(s[B], B.op.axis[0])
    assert [a.var.name for a in axes] == ["i.outer.outer", "i.outer.inner", "i.inner"]


def test_index_round_trip_and_fallback() -> None:
    space = small_space()
    assert len(space) == 18 * 6 * 9 * 3
    for index in (0, 1, 17, 18, 500, len(space) - 1):
        config = space.get(index)
        assert space.index_of(config) == index
    fallback = space.fallback
    assert fallback["unroll"].val == 2
    assert space.index_of(fallback) == fallback.index


def test_out_of_range_index_raises() -> None:
    with pytest.raises(SpaceError, match="outside the space"):
        small_space().get(10**9)


def test_sample_is_distinct_excludes_and_is_seeded() -> None:
    space = small_space()
    first = space.sample(np.random.default_rng(3), 50, exclude=[0, 1, 2])
    again = space.sample(np.random.default_rng(3), 50, exclude=[0, 1, 2])
    assert first == again
    assert len(set(first)) == 50 and not {0, 1, 2} & set(first)
    tiny = ConfigSpace()
    tiny.define_knob("x", [1, 2, 3])
    assert sorted(tiny.sample(np.random.default_rng(0), 10)) == [0, 1, 2]


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 18 * 6 * 9 * 3 - 1), st.integers(0, 2**31))
def test_neighbour_changes_exactly_one_knob(index: int, seed: int) -> None:
    space = small_space()
    other = space.neighbour(index, np.random.default_rng(seed))
    changed = [a != b for a, b in zip(space.digits(index), space.digits(other))]
    assert sum(changed) == 1


def test_define_mode_returns_fallback_and_apply_mode_returns_choice() -> None:
    def knobs(cfg):  # type: ignore[no-untyped-def]
        tile = cfg.define_split("tile", 16, 2, fallback=[-1, 4])
        order = cfg.define_reorder("order", 2, fallback=(1, 0))
        return tile.size, order.perm

    space = ConfigSpace()
    assert knobs(space) == ((4, 4), (1, 0))
    config = space.get(0)
    assert knobs(config) == ((16, 1), (0, 1))


def test_apply_mode_without_the_knob_raises() -> None:
    with pytest.raises(SpaceError, match="no choice for knob missing"):
        ConfigEntity(0, {}).define_knob("missing", [1, 2])


@pytest.mark.parametrize(
    "define, message",
    [
        (lambda s: s.define_split("t", 8, 2, "factors"), "must be a SplitPolicy"),
        (lambda s: s.define_split("t", 8, 1), "at least 2"),
        (lambda s: s.define_split("t", 0, 2), "must be positive"),
        (lambda s: s.define_split("t", 7, 2, filter=lambda e: False), "no split of extent 7"),
        (lambda s: s.define_reorder("r", 3, "all"), "must be a ReorderPolicy"),
        (lambda s: s.define_reorder("r", 2, ReorderPolicy.CANDIDATES, candidates=[(0, 0)]), "not a permutation"),
        (lambda s: s.define_annotate("a", 1, fallback=(Annotation.VECTORIZE,)), "not a candidate"),
        (lambda s: s.define_knob("k", [1, 2], fallback=3), "not one of"),
        (lambda s: s.define_knob("k", [1, 1]), "repeat a value"),
        (lambda s: s.define_knob("k", [[1]]), "not a JSON scalar"),
    ],
)
def test_bad_knob_definitions_raise(define, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SpaceError, match=message):
        define(ConfigSpace())


def test_duplicate_knob_raises() -> None:
    space = ConfigSpace()
    space.define_knob("k", [1])
    with pytest.raises(SpaceError, match="defined twice"):
        space.define_knob("k", [2])


def test_config_json_round_trip() -> None:
    space = small_space()
    for index in (0, 77, len(space) - 1):
        config = space.get(index)
        text = json.dumps(config.to_json())
        back = ConfigEntity.from_json(json.loads(text))
        assert back.same_choices(config)
        assert back.index == index
        assert space.index_of(back) == index


def test_index_of_a_config_from_another_space_is_none() -> None:
    other = ConfigSpace()
    other.define_knob("unroll", [8])
    assert small_space().index_of(other.get(0)) is None
