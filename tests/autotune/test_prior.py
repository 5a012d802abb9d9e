"""The prior (``tcomp.autotune.prior``): the shipped measured tables load and fit their templates, serve tasks of
their template and vector width only, and aim a new xgb tuner's first batches, replayed on tables of other tasks."""

from __future__ import annotations

import gzip
import logging
import statistics
from pathlib import Path

import pytest

from tcomp.autotune import FeatureExtractor, TunerKind, XGBTuner, create_task, prior
from tcomp.autotune.prior import PRIORS, prior_records, prior_tables, serves
from tcomp.autotune.replay import MeasuredTable, ReplayMeasurer, replay, trials_to_reach

DATA = Path(__file__).resolve().parents[1] / "data" / "tuning"
REPLAY_TABLES = ("gemm256_measured.json", "dense1000_measured.json", "conv3x3_measured.json")


def test_every_prior_table_loads_and_fits_its_template() -> None:
    tables = prior_tables()
    assert len(tables) == len(list(PRIORS.glob("*.json.gz")))  # none left out
    covered = {(t.task.name, t.task.target.vector_bits) for t in tables}
    for template in ("matmul", "dense", "conv2d_nchwc_blocked"):
        assert {(template, 512), (template, 256)} <= covered, template
    for table in tables:
        assert len(table.gflops) >= 30 and table.best_gflops > 0
        assert len(table.records()) == len(table.gflops)


def test_the_prior_serves_its_template_and_vector_width_only() -> None:
    avx512 = create_task("matmul", (96, 80, 64), "llvm -mcpu=znver4")
    avx2 = create_task("matmul", (96, 80, 64), "llvm -mcpu=haswell")
    for task, bits in ((avx512, 512), (avx2, 256)):
        records = prior_records(task)
        assert records and all(r.task.name == "matmul" and r.task.target.vector_bits == bits for r in records)
    assert not prior_records(create_task("matmul", (96, 80, 64), "cuda -arch=sm_80"))
    batched = create_task("batch_matmul", (2, 16, 16, 16), "llvm -mcpu=znver4")  # a template without tables
    assert not any(serves(table, batched) for table in prior_tables())


def test_no_prior_table_is_a_replay_table() -> None:
    """Replays measure what the prior is worth on tasks it has not seen."""
    keys = {MeasuredTable.load(DATA / name).task.key for name in REPLAY_TABLES}
    assert not keys & {table.task.key for table in prior_tables()}


def test_the_first_batch_is_planned_from_the_prior_unless_told_or_taught_otherwise() -> None:
    table = MeasuredTable.load(DATA / "dense1000_measured.json")
    aimed = XGBTuner(table.task, seed=0, space=table.space())
    aimed.tune(8, measurer=ReplayMeasurer(table), batch_size=8, confirm=0)  # type: ignore[arg-type]
    assert aimed.model.base_booster is not None  # type: ignore[attr-defined]
    blind = XGBTuner(table.task, seed=0, space=table.space(), prior=False)
    blind.tune(8, measurer=ReplayMeasurer(table), batch_size=8, confirm=0)  # type: ignore[arg-type]
    assert blind.model.base_booster is None  # type: ignore[attr-defined]
    taught = XGBTuner(table.task, seed=0, space=table.space())
    taught.load_history(table.records()[:4])  # records of its own: no prior
    taught.tune(12, measurer=ReplayMeasurer(table), batch_size=8, confirm=0)  # type: ignore[arg-type]
    assert taught.model.base_booster is None  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", REPLAY_TABLES)
def test_xgb_with_the_prior_reaches_95_percent_in_half_of_random_searchs_trials(name: str) -> None:
    """Over seeds 0-4, the median trial at which the best so far reaches 95% of the table's best: xgb (with the
    prior, from tables of other tasks) at most half of random search's."""
    table = MeasuredTable.load(DATA / name)
    extractor = FeatureExtractor(table.task)
    level = 0.95 * table.best_gflops

    def median_trials(kind: TunerKind) -> float:
        reached = [trials_to_reach(replay(kind, table, seed, 64, extractor=extractor).curve, level)
                   for seed in range(5)]
        return statistics.median(t if t is not None else 65 for t in reached)

    assert median_trials(TunerKind.XGB) <= 0.5 * median_trials(TunerKind.RANDOM)


def test_a_table_that_does_not_read_is_left_out_and_tuning_goes_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    good = PRIORS / "dense_1x4096x1024_znver4.json.gz"  # serves the AVX-512 dense table below
    (tmp_path / good.name).write_bytes(good.read_bytes())
    (tmp_path / "damaged.json.gz").write_bytes(b"not gzip")
    (tmp_path / "empty.json.gz").write_bytes(gzip.compress(b'{"task": 3, "configs": []}'))
    monkeypatch.setattr(prior, "PRIORS", tmp_path)
    prior_tables.cache_clear()
    try:
        with caplog.at_level(logging.WARNING, logger="tcomp.autotune"):
            tables = prior_tables()
        assert [t.task.name for t in tables] == ["dense"]
        assert "damaged.json.gz left out" in caplog.text and "empty.json.gz left out" in caplog.text
        table = MeasuredTable.load(DATA / "dense1000_measured.json")
        tuner = XGBTuner(table.task, seed=0, space=table.space())
        tuner.tune(8, measurer=ReplayMeasurer(table), batch_size=8, confirm=0)  # type: ignore[arg-type]
        assert tuner.model.base_booster is not None  # type: ignore[attr-defined]
    finally:
        prior_tables.cache_clear()
