"""Features from the loop IR, the XGBoost cost model and simulated annealing."""

from __future__ import annotations

import time

import numpy as np
import pytest
from autotune_fakes import analytic_cost
from test_task_templates import TEMPLATE_CASES

import tcomp
from tcomp import te
from tcomp.autotune import ConfigSpace, create_task
from tcomp.autotune.cost_model import Objective, XGBoostCostModel, rank_correlation
from tcomp.autotune.feature import (
    LOOP_IR_LENGTH,
    LOOP_WIDTH,
    FeatureExtractor,
    FeatureKind,
    feature_names,
    loop_ir_features,
)
from tcomp.autotune.feature_knob import knob_feature_names
from tcomp.autotune.measure import MeasureResult, MeasureStatus
from tcomp.autotune.record import Record
from tcomp.autotune.sa import SimulatedAnnealingOptimizer


def test_vector_add_features_name_loops_annotations_and_strides() -> None:
    A = te.placeholder((1024,), name="A")
    B = te.placeholder((1024,), name="B")
    C = te.compute((1024,), lambda i: A[i] + B[i], name="C")
    s = tcomp.create_schedule(C)
    outer, inner = s[C].split(C.op.axis[0], factor=16)
    s[C].vectorize(inner)
    s[C].parallel(outer)
    v = loop_ir_features(tcomp.lower(s, [A, B, C], simple_mode=True))
    assert v.shape == (LOOP_IR_LENGTH,)
    assert v[0] == pytest.approx(np.log2(1025))  # iterations
    assert v[2] == 1  # one float add per iteration
    loops = 8  # statement header: 2 + 6 arithmetic slots
    inner_loop = v[loops: loops + LOOP_WIDTH]
    outer_loop = v[loops + LOOP_WIDTH: loops + 2 * LOOP_WIDTH]
    assert inner_loop[0] == pytest.approx(np.log2(17)) and inner_loop[3 + 2] == 1  # extent 16, vectorized
    assert outer_loop[0] == pytest.approx(np.log2(65)) and outer_loop[3 + 1] == 1  # extent 64, parallel
    access = loops + 8 * LOOP_WIDTH
    assert v[access] == 1 and v[access + 1] == 4 and v[access + 2] == pytest.approx(1.0)  # store, 4 bytes, stride 1


@pytest.mark.parametrize("name, args", TEMPLATE_CASES, ids=[c[0] for c in TEMPLATE_CASES])
def test_features_have_a_fixed_length_and_are_deterministic(name: str, args: tuple) -> None:
    task = create_task(name, args)
    sampled = task.config_space.sample(np.random.default_rng(1), 12)
    # a space may hold configs its template rejects (dense's dot tiles that would spill): they have no features
    indices = [i for i, ok in zip(sampled, FeatureExtractor(task).valid(sampled)) if ok][:6]
    assert len(indices) == 6
    first = FeatureExtractor(task).get(indices)
    again = FeatureExtractor(task).get(indices)
    assert first.shape == (6, LOOP_IR_LENGTH)
    assert np.isfinite(first).all()
    np.testing.assert_array_equal(first, again)
    assert len({row.tobytes() for row in first}) > 1
    knobs = FeatureExtractor(task, FeatureKind.KNOB).get(indices)
    assert knobs.shape[0] == 6 and np.isfinite(knobs).all()


def test_micro_kernel_configs_with_different_tiles_get_different_features() -> None:
    """A tensorized GEMM is one call per tile: its register tile (mr x nr), reduction depth and loop order must
    show in the features (before, 18 micro-kernel configs of 256^3 gave 3 distinct vectors). Knobs the
    micro-kernel ignores (unroll_mr, unroll_k) give the same program, hence the same vector."""
    task = create_task("matmul", (256, 256, 256))
    space = task.config_space
    sampled = space.sample(np.random.default_rng(0), 300)
    indices = [i for i in sampled if space.get(i)["micro_kernel"].val == 1][:30]
    programs: dict[tuple, set[bytes]] = {}
    extractor = FeatureExtractor(task)
    for index, row in zip(indices, extractor.get(indices)):
        config = space.get(index)
        key = tuple(repr(config[name].to_json()) for name in ("tile_i", "tile_j", "tile_k", "order"))
        programs.setdefault(key, set()).add(row.tobytes())
    assert len(programs) >= 20
    assert all(len(rows) == 1 for rows in programs.values())
    assert len(set().union(*programs.values())) == len(programs)
    same = indices[0]
    digits = space.digits(same)
    unroll_k = list(space.knobs).index("unroll_k")
    digits[unroll_k] = (digits[unroll_k] + 1) % space.dims[unroll_k]
    twin = space.index_from_digits(digits)
    np.testing.assert_array_equal(extractor.get([same])[0], extractor.get([twin])[0])


def test_micro_kernel_call_features_hold_its_tile() -> None:
    from tcomp.autotune.feature import GLOBAL_WIDTH, MAX_STMTS, STMT_WIDTH

    task = create_task("matmul", (64, 64, 64))
    space = task.config_space
    chosen = next(c for c in space if c["micro_kernel"].val == 1 and c["tile_i"].size[-1] == 4
                  and c["tile_k"].size[-1] == 16)
    row = FeatureExtractor(task).get([chosen.index])[0]
    block = row[MAX_STMTS * STMT_WIDTH + GLOBAL_WIDTH:][:10]
    nr = chosen["tile_j"].size[-1]
    assert block[0] == 1.0
    assert block[2:5] == pytest.approx([np.log2(5), np.log2(1 + nr), np.log2(17)])  # mr, nr, depth
    assert block[6] == pytest.approx(np.log2(1 + 2 * 64 ** 3), rel=1e-5)  # every FLOP of the product


def test_invalid_config_gets_nan_features() -> None:
    from autotune_fault_templates import Fault

    task = create_task("test_faulty", (16,))
    space = task.config_space
    faults = [e.val for e in space.knobs["fault"].entities]
    invalid = space.index_from_digits([faults.index(Fault.INVALID.value), 0])
    rows = FeatureExtractor(task).get([0, invalid])
    assert list(FeatureExtractor.invalid(rows)) == [False, True]


def test_feature_extraction_speed() -> None:
    task = create_task("matmul", (1024, 1024, 1024))
    indices = task.config_space.sample(np.random.default_rng(0), 40)
    extractor = FeatureExtractor(task)
    start = time.process_time()  # this process's CPU time: other processes on the machine do not count
    extractor.get(indices)
    per_config = (time.process_time() - start) / len(indices)
    print(f"loop-IR feature extraction: {per_config * 1e3:.2f} ms per matmul config")
    assert per_config < 0.1


def _analytic_throughput(task, indices):  # type: ignore[no-untyped-def]
    return [1.0 / analytic_cost(task.config_space.get(i)) for i in indices]


@pytest.mark.parametrize("objective", list(Objective), ids=[o.value for o in Objective])
def test_xgboost_ranks_held_out_configs_better_than_chance(objective: Objective) -> None:
    task = create_task("matmul", (256, 256, 256))
    rng = np.random.default_rng(0)
    indices = task.config_space.sample(rng, 160)
    train, test = indices[:96], indices[96:]
    model = XGBoostCostModel(task, objective=objective, seed=0, num_threads=1)
    model.fit(train, _analytic_throughput(task, train))
    correlation = rank_correlation(model.predict(test), _analytic_throughput(task, test))
    assert correlation > 0.5, correlation


@pytest.mark.parametrize("kind", list(FeatureKind), ids=[k.value for k in FeatureKind])
def test_importances_name_the_features_the_model_split_on(kind: FeatureKind) -> None:
    task = create_task("matmul", (256, 256, 256))
    model = XGBoostCostModel(task, kind, seed=0, num_threads=1)
    assert model.importances() == []  # nothing fitted
    train = task.config_space.sample(np.random.default_rng(4), 64)
    model.fit(train, _analytic_throughput(task, train))
    named = model.importances(top=5)
    known = set(feature_names()) if kind is FeatureKind.LOOP_IR else set(knob_feature_names(
        task.config_space.fallback))
    assert named and all(label in known for label, _ in named), named
    shares = [share for _, share in named]
    assert shares == sorted(shares, reverse=True) and 0 < sum(shares) <= 1 + 1e-9
    if kind is FeatureKind.KNOB:  # the analytic cost depends most on the column tile: a split of tile_j
        assert named[0][0].startswith("knob.tile_"), named


def test_transfer_learning_gives_predictions_before_any_own_data() -> None:
    source = create_task("matmul", (128, 128, 128))
    indices = source.config_space.sample(np.random.default_rng(2), 64)
    records = [Record(source, source.config_space.get(i), MeasureResult(MeasureStatus.OK, (analytic_cost(
        source.config_space.get(i)),))) for i in indices]
    target = create_task("matmul", (256, 256, 256))
    model = XGBoostCostModel(target, seed=0, num_threads=1)
    assert np.all(model.predict([0, 1]) == 0)
    assert model.fit_transfer(records) == 64
    test = target.config_space.sample(np.random.default_rng(3), 64)
    correlation = rank_correlation(model.predict(test), _analytic_throughput(target, test))
    assert correlation > 0.3, correlation
    model.fit(test[:32], _analytic_throughput(target, test[:32]))  # own data on top of the base margins
    assert np.isfinite(model.predict(test[32:])).all()


def test_simulated_annealing_finds_the_best_points_and_respects_exclusions() -> None:
    space = ConfigSpace()
    for name in "abcd":
        space.define_knob(name, list(range(10)))
    target = [7, 2, 9, 4]

    def predict(indices):  # type: ignore[no-untyped-def]
        return np.asarray([-sum(abs(d - t) for d, t in zip(space.digits(i), target)) for i in indices], float)

    best = space.index_from_digits(target)
    sa = SimulatedAnnealingOptimizer(space, np.random.default_rng(0), parallel_size=16, n_iter=200, early_stop=200)
    found = sa.find_maximums(predict, 5, exclusive=set())
    assert found[0] == best and len(found) == 5
    again = sa.find_maximums(predict, 5, exclusive={best})
    assert best not in again and sa.points is not None


_FEATURES_IN_A_CHILD = r"""
import json
from tcomp import te, create_schedule
from tcomp.autotune import create_task, template
from tcomp.autotune.cost_model import XGBoostCostModel
from tcomp.autotune.feature import FeatureKind
from tcomp.autotune.feature_knob import knob_features

@template("string_knobs_for_hash_test")
def string_knobs(cfg, n):
    A = te.placeholder((n,), name="A")
    B = te.compute((n,), lambda i: A[i] * 2.0, name="B")
    s = create_schedule(B)
    cfg.define_knob("layout", ["row", "column", "tiled", "packed", "blocked", "plain"])
    cfg.define_split("tile", n, 2)
    return s, [A, B]

task = create_task("string_knobs_for_hash_test", (64,), "llvm -num-cores=1")
space = task.config_space
model = XGBoostCostModel(task, FeatureKind.KNOB, num_rounds=20)
indices = list(range(len(space)))
model.fit(indices, [float((k * 7) % 11 + 1) for k in indices])
print(json.dumps({"features": [knob_features(space.get(k)).tolist() for k in indices],
                  "predictions": [round(float(p), 6) for p in model.predict(indices)]}))
"""


def test_feature_hashing_is_the_same_in_every_process() -> None:
    """String knob values were hashed with the salted ``hash(str)``: two processes built different models."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    outputs = []
    for seed in ("1", "2"):
        env = dict(os.environ, PYTHONPATH=str(root), PYTHONHASHSEED=seed, OMP_NUM_THREADS="1")
        child = subprocess.run([sys.executable, "-c", _FEATURES_IN_A_CHILD], env=env, capture_output=True,
                               text=True, timeout=300)
        assert child.returncode == 0, child.stderr[-2000:]
        outputs.append(child.stdout.splitlines()[-1])
    assert outputs[0] == outputs[1]


def test_a_guarded_tail_and_the_register_tile_show_in_the_features() -> None:
    """A split that does not divide its axis runs a guarded tail (14 of 18 iterations pass); the innermost unrolled
    and vectorized loops are the register tile: 6 x 8 float accumulators, 192 bytes of them."""
    from tcomp.autotune.feature import feature_names

    A = te.placeholder((14, 8), name="A")
    C = te.compute((14, 8), lambda i, j: A[i, j] * 2.0, name="C")
    s = tcomp.create_schedule(C)
    outer, inner = s[C].split(C.op.axis[0], factor=6)
    s[C].unroll(inner)
    s[C].vectorize(C.op.axis[1])
    row = loop_ir_features(tcomp.lower(s, [A, C], simple_mode=True))
    named = dict(zip(feature_names(), row.tolist()))
    assert named["stmt0.guard_useful"] == pytest.approx(14 / 18)
    assert named["stmt0.register_loops"] == 2
    assert named["stmt0.register_iterations"] == pytest.approx(np.log2(1 + 48))
    assert named["stmt0.register_store_bytes"] == pytest.approx(np.log2(1 + 6 * 8 * 4))
    s2 = tcomp.create_schedule(C)
    s2[C].split(C.op.axis[0], factor=7)  # divides 14: no guard
    assert dict(zip(feature_names(), loop_ir_features(tcomp.lower(s2, [A, C], simple_mode=True)).tolist()))[
        "stmt0.guard_useful"] == 1.0
