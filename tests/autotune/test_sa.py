"""Simulated annealing's costs: each config scored once per call, a cap on how many, small spaces scored whole."""

from __future__ import annotations

import numpy as np
import pytest

from tcomp.autotune.sa import NEIGHBOUR_TRIES, SimulatedAnnealingOptimizer
from tcomp.autotune.space import ConfigSpace


def _space(knobs: int, choices: int) -> ConfigSpace:
    space = ConfigSpace()
    for k in range(knobs):
        space.define_knob(f"k{k}", list(range(choices)))
    return space


def _distance_model(space: ConfigSpace, target: list[int], asked: list[int]):  # type: ignore[no-untyped-def]
    def predict(indices):  # type: ignore[no-untyped-def]
        asked.extend(indices)
        return np.asarray([-sum(abs(d - t) for d, t in zip(space.digits(i), target)) for i in indices], float)

    return predict


def test_a_call_scores_each_config_once_and_at_most_max_scored() -> None:
    space = _space(4, 10)  # 10,000 configs
    asked: list[int] = []
    checked: list[int] = []

    def valid(indices):  # type: ignore[no-untyped-def]
        checked.extend(indices)
        return np.asarray([i % 5 != 0 for i in indices])

    optimizer = SimulatedAnnealingOptimizer(space, np.random.default_rng(0), parallel_size=16, n_iter=500,
                                            early_stop=500, max_scored=200)
    found = optimizer.find_maximums(_distance_model(space, [7, 2, 9, 4], asked), 8, set(), valid=valid)
    assert len(found) == 8 and all(i % 5 for i in found)
    assert len(asked) == len(set(asked)) and len(checked) == len(set(checked))  # each config once
    # the chains stop at the first step that reaches the cap: at most one step's proposals over it
    assert 200 <= optimizer.scored_last <= 200 + 16 * NEIGHBOUR_TRIES
    assert set(asked) <= set(checked) and len(set(checked)) == optimizer.scored_last


def test_a_space_within_max_scored_is_scored_whole_and_exactly() -> None:
    space = _space(3, 6)  # 216 configs
    asked: list[int] = []
    predict = _distance_model(space, [5, 0, 3], asked)
    optimizer = SimulatedAnnealingOptimizer(space, np.random.default_rng(0), max_scored=216)
    best = space.index_from_digits([5, 0, 3])
    found = optimizer.find_maximums(predict, 4, exclusive={best}, valid=None)
    scores = predict(list(range(len(space))))
    expected = [i for i in np.argsort(-scores, kind="stable") if i != best][:4]
    assert sorted(asked[:215]) == [i for i in range(216) if i != best]
    assert found[0] != best and len(found) == 4
    assert sorted(scores[found].tolist()) == sorted(scores[expected].tolist())  # the exact top 4 (ties aside)


def test_max_scored_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_scored"):
        SimulatedAnnealingOptimizer(_space(2, 3), np.random.default_rng(0), max_scored=0)
