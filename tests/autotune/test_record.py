"""Tuning records: JSON round trip, files cut at every byte, unknown versions, pick, and dispatch of the best."""

from __future__ import annotations

import json
import threading
import warnings
from pathlib import Path

import pytest

from tcomp.autotune import create_task
from tcomp.autotune.dispatch import (
    ApplyConfig,
    ApplyHistoryBest,
    apply_history_best,
    build,
    current_context,
    instantiate,
)
from tcomp.autotune.measure import MeasureResult, MeasureStatus
from tcomp.autotune.record import (
    Record,
    RecordWriter,
    best_by_task,
    load_records,
    pick_best,
    read_records,
    typical_cost,
)


def make_records() -> list[Record]:
    task = create_task("matmul", (64, 64, 64), "llvm -num-cores=2")
    other = create_task("dense", (16, 32, 16), "llvm -num-cores=2")
    space = task.config_space
    records = [
        Record(task, space.get(0), MeasureResult(MeasureStatus.OK, (3e-4, 3.1e-4), "", 0.2, 0.1, 100.0)),
        Record(task, space.get(5), MeasureResult(MeasureStatus.OK, (1e-4,), "", 0.2, 0.1, 101.0)),
        Record(task, space.get(9), MeasureResult(MeasureStatus.WRONG_ANSWER, (), "max abs error 1", 0.2, 0.1, 102.0)),
        Record(other, other.config_space.get(3), MeasureResult(MeasureStatus.OK, (2e-5,), "", 0.1, 0.1, 103.0)),
    ]
    return records


def test_record_json_round_trip() -> None:
    for record in make_records():
        line = record.encode()
        assert "\n" not in line
        back = Record.decode(line)
        assert back.task == record.task and back.task.key == record.task.key
        assert back.config.same_choices(record.config) and back.config.index == record.config.index
        assert back.result == record.result
        assert json.loads(line)["v"] == 1


def test_file_cut_at_every_byte_loses_at_most_the_cut_line(tmp_path: Path) -> None:
    text = "".join(r.encode() + "\n" for r in make_records())
    ends = [k + 1 for k, ch in enumerate(text) if ch == "\n"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for offset in range(len(text) + 1):
            prefix = text[:offset]
            complete = sum(1 for end in ends if end <= offset)
            log = read_records(prefix.splitlines(keepends=True))
            assert complete <= len(log.records) <= complete + 1
            assert len(log.corrupt_lines) <= 1
    path = tmp_path / "cut.jsonl"
    path.write_text(text[: ends[1] + 40])
    with pytest.warns(RuntimeWarning, match="line 3: skipped: not JSON"):
        assert len(read_records(path).records) == 2


def test_writer_ends_a_cut_line_before_appending(tmp_path: Path) -> None:
    records = make_records()
    path = tmp_path / "log.jsonl"
    path.write_text(records[0].encode() + "\n" + records[1].encode()[:30])
    with RecordWriter(path) as writer:
        writer.write(records[3])
    with pytest.warns(RuntimeWarning, match="line 2"):
        log = read_records(path)
    assert [r.task.name for r in log.records] == ["matmul", "dense"]
    assert log.corrupt_lines == [2]


def test_unknown_versions_and_garbage_are_skipped_and_counted() -> None:
    good = make_records()[0].to_json()
    future = dict(good, v=99)
    lines = [json.dumps(good), json.dumps(future), "[1, 2]", "{}", "", json.dumps(good)]
    with pytest.warns(RuntimeWarning) as caught:
        log = read_records(lines)
    assert len(log.records) == 2
    assert log.unknown_version_lines == [2]
    assert log.corrupt_lines == [3, 4]
    assert any("format version 99" in str(w.message) for w in caught)


def test_many_bad_lines_warn_a_bounded_number_of_times() -> None:
    with pytest.warns(RuntimeWarning) as caught:
        log = read_records(["garbage"] * 50)
    assert len(log.corrupt_lines) == 50
    assert len(caught) <= 11


def test_pick_best_keeps_the_fastest_successful_record_per_task(tmp_path: Path) -> None:
    source = tmp_path / "all.jsonl"
    with RecordWriter(source) as writer:
        for record in make_records():
            writer.write(record)
    out = tmp_path / "best.jsonl"
    assert pick_best(source, out) == 2
    best = load_records(out)
    assert sorted((r.task.name, r.config.index) for r in best) == [("dense", 3), ("matmul", 5)]


def test_apply_history_best_dispatches_the_best_config() -> None:
    records = make_records()
    target = "llvm -num-cores=2"
    with apply_history_best(records) as ctx:
        assert current_context() is ctx
        inst = instantiate("matmul", 64, 64, 64, target=target)
        assert inst.tuned and inst.config.index == 5
    assert current_context() is None
    untuned = instantiate("matmul", 64, 64, 64, target=target)
    assert not untuned.tuned
    assert untuned.config.index == create_task("matmul", (64, 64, 64), target).config_space.fallback.index


def test_same_cpu_other_core_count_uses_the_record() -> None:
    ctx = ApplyHistoryBest(make_records())
    inst = instantiate("matmul", 64, 64, 64, target="llvm -num-cores=1", context=ctx)
    assert inst.tuned and inst.config.index == 5


def test_missing_tasks_get_one_summary_warning() -> None:
    with pytest.warns(RuntimeWarning, match="2 task\\(s\\) had no tuning record") as caught:
        with apply_history_best(make_records()):
            for size in (8, 8, 16):
                instantiate("matmul", size, size, size)
    assert len(caught) == 1


def test_dispatch_context_is_local_to_the_thread() -> None:
    seen = []
    with ApplyConfig(create_task("matmul", (64, 64, 64)).config_space.get(1)):
        thread = threading.Thread(target=lambda: seen.append(current_context()))
        thread.start()
        thread.join()
        assert current_context() is not None
    assert seen == [None]


def test_build_under_a_context_compiles_the_chosen_config() -> None:
    import numpy as np

    records = make_records()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every task has a record: no summary warning
        with apply_history_best(records):
            module, inst = build("matmul", 64, 64, 64, target="llvm -num-cores=2")
    assert inst.tuned and inst.config.index == 5
    a = np.random.rand(64, 64).astype("float32")
    b = np.random.rand(64, 64).astype("float32")
    c = np.zeros((64, 64), dtype="float32")
    module(a, b, c)
    np.testing.assert_allclose(c, a @ b, rtol=1e-4)


def test_apply_config_forces_one_config() -> None:
    task = create_task("matmul", (64, 64, 64))
    config = task.config_space.get(3)
    inst = instantiate("matmul", 64, 64, 64, context=ApplyConfig(config))
    assert inst.tuned and inst.config.same_choices(config)


def test_records_naming_a_template_module_that_moved_still_load(tmp_path: Path) -> None:
    """Records name the module that defined their template (``task.module``). tcomp's own templates moved
    (``templates/gemm.py`` -> ``templates/cpu/gemm.py``, ``templates/cuda_ops.py`` -> ``templates/cuda/*.py``): a
    record written before still loads, and in a fresh process (as in a measurement worker) its template is found."""
    import subprocess
    import sys

    cases = [("matmul", (64, 64, 64), "llvm -num-cores=2", "tcomp.autotune.templates.gemm"),
             ("reduce_cuda", (8, 64), "cuda", "tcomp.autotune.templates.cuda_ops")]
    lines = []
    for name, args, target, old_module in cases:
        task = create_task(name, args, target)
        value = Record(task, task.config_space.get(1), MeasureResult(MeasureStatus.OK, (1e-4,), "", 0.1, 0.1, 1.0))
        document = value.to_json()
        document["task"]["module"] = old_module
        lines.append(json.dumps(document))
    path = tmp_path / "old.jsonl"
    path.write_text("\n".join(lines) + "\n")
    script = (
        "import sys\n"
        "from tcomp.autotune.record import read_records\n"
        "log = read_records(sys.argv[1])\n"
        "assert not log.corrupt_lines and len(log.records) == 2, log\n"
        "for record in log.records:\n"
        "    schedule, tensors = record.task.instantiate(record.config)\n"
        "    print(record.task.name, record.task.template.module, len(tensors))\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == ["matmul tcomp.autotune.templates.cpu.gemm 3",
                                           "reduce_cuda tcomp.autotune.templates.cuda.reduce 2"]


def test_configs_measured_again_compete_by_their_median_not_one_lucky_run() -> None:
    task = create_task("matmul", (64, 64, 64), "llvm -num-cores=2")
    space = task.config_space

    def ok(config: int, cost: float) -> Record:
        return Record(task, space.get(config), MeasureResult(MeasureStatus.OK, (cost,), "", 0.1, 0.1, 100.0))

    lucky_once = [ok(0, 3e-4), ok(5, 1e-4), ok(7, 2e-4)]  # nothing confirmed: the fastest single run wins
    assert best_by_task(lucky_once)[task.key].config.index == 5
    # the default (0) and config 5 measured three more times: 5's first run was a fluke, 7 was never confirmed
    confirmed = lucky_once + [ok(0, 3e-4), ok(5, 4e-4), ok(0, 3.2e-4), ok(5, 3.9e-4), ok(0, 2.9e-4), ok(5, 4.1e-4)]
    best = best_by_task(confirmed)[task.key]
    assert best.config.index == 0 and best.result.cost == 3e-4  # the default's lower median
    assert typical_cost([4e-4, 1e-4, 3.9e-4, 4.1e-4]) == 3.9e-4 and typical_cost([2.0]) == 2.0
    with apply_history_best(confirmed) as ctx:
        assert ctx.query(task) is not None and ctx.query(task).index == 0  # type: ignore[union-attr]
