"""``tcomp tune`` / ``tcomp pick``: the progress line, the summary table, the tuning curves (CSV, and the plot with
matplotlib), shapes and their errors, ``--help``, and Ctrl-C."""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path

import pytest

import tcomp.cli.tune as tune_command
from tcomp.autotune import create_task
from tcomp.autotune.record import read_records
from tcomp.autotune.tuner import RandomTuner
from tcomp.cli import main
from tcomp.cli.curves import tuning_curves, write_csv
from tcomp.cli.report import ProgressPrinter, format_duration, summary_table
from tcomp.cli.tune import parse_shape
from tests.autotune.autotune_fakes import AnalyticMeasurer
from tests.cli.interrupt import interrupt_when


def test_tune_writes_records_summary_and_plot_then_resumes(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    records = tmp_path / "log.jsonl"
    argv = ["tune", "--op", "matmul", "--shape", "32,32,32", "--op", "dense", "--shape", "16x24x8", "--trials", "4",
            "--tuner", "random", "--tuning-records", str(records), "--batch-size", "2", "--number", "1",
            "--repeat", "1", "--parallel", "2"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "[Task 1/2]" in out and "[Task 2/2] current/best:" in out and "4/4 trials" in out
    assert "default GF/s" in out and "dense(16, 24, 8, float32)" in out and "best configs:" in out
    assert max(len(line) for line in out.splitlines() if str(tmp_path) not in line) <= 100
    log = read_records(records)
    assert all(r.result.ok for r in log.records)
    trials = {(r.task.name, r.config.index) for r in log.records}
    assert len(trials) == 8  # then the default and the two fastest of each task measured again: not trials
    assert len(log.records) == 8 + 2 * 3 * 3
    summary = json.loads(records.with_suffix(".summary.json").read_text())
    assert [t["trials"] for t in summary["tasks"]] == [4, 4]
    with open(records.with_suffix(".csv")) as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 8 and {r["task"] for r in rows} == {"matmul(32, 32, 32, float32)", "dense(16, 24, 8, float32)"}
    assert all(float(r["estimated_latency_ms"]) > 0 for r in rows)
    if _has_matplotlib():
        assert records.with_suffix(".png").read_bytes().startswith(b"\x89PNG")

    assert main(argv) == 2  # the log exists: refuse to mix runs without --resume
    assert "--resume" in capsys.readouterr().err
    assert main([*argv[:-8], "--trials", "6", "--resume", "--batch-size", "2", "--number", "1", "--repeat", "1"]) == 0
    again = read_records(records).records
    per_task: dict[str, set[int]] = {}
    for record in again:
        per_task.setdefault(record.task.name, set()).add(record.config.index)
    assert all(len(v) == 6 for v in per_task.values())

    best = tmp_path / "best.jsonl"
    assert main(["pick", str(records), "-o", str(best)]) == 0
    assert len(read_records(best).records) == 2


def _has_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.parametrize(
    "argv, message",
    [
        (["tune", "--op", "matmul"], "one --shape per --op"),
        (["tune"], "nothing to tune"),
        (["tune", "--op", "matmul", "--shape", "8,8"], "--shape '8,8' for matmul: expected M,N,K (3 integers), got 2"),
        (["tune", "--op", "matmul", "--shape", "64,64,64,64"], "expected M,N,K (3 integers), got 4"),
        (["tune", "--op", "matmul", "--shape", "64,64,x"], "--shape '64,64,x' for matmul: 'x' is not an integer"),
        (["tune", "--op", "conv2d_nchw", "--shape", "1,2,3"], "expected batch,in_channels,height,width,out_channels,"
                                                               "kernel_h,kernel_w[,stride][,padding] (7 to 9"),
        (["tune", "--op", "nope", "--shape", "8"], "unknown template 'nope'"),
        (["tune", "--op", "matmul", "--shape", "8,a,8"], "'a' is not an integer"),
        (["tune", "--op", "matmul", "--shape", "8,8,8", "--trials", "0"], "--trials must be at least 1"),
        (["tune", "missing.onnx"], "'missing.onnx' does not exist"),
        (["tune", "--op", "matmul", "--shape", "8,8,8", "--budget", "0"], "--budget must be a positive number"),
        (["tune", "--op", "matmul", "--shape", "8,8,8", "--budget", "1", "--early-stopping", "4"],
         "--early-stopping does not apply with --budget"),
        (["tune", str(Path(__file__).resolve().parents[1] / "data" / "hf_models" / "bert_tiny.onnx"), "--precision",
          "bf16"], "no convolution or matrix product that a template can tune (products with bfloat16 operands are "
                   "not tuned)"),
    ],
)
def test_tune_rejects_bad_arguments(argv: list[str], message: str, tmp_path: Path,
                                    capsys: pytest.CaptureFixture) -> None:
    assert main([*argv, "--tuning-records", str(tmp_path / "x.jsonl")]) == 2
    assert message in capsys.readouterr().err


def test_shapes_by_commas_or_x() -> None:
    assert parse_shape("matmul", "16x24x8") == parse_shape("matmul", "16, 24, 8") == [16, 24, 8]
    assert parse_shape("conv2d_nchw", "1,3,8,8,4,3,3,1,1") == [1, 3, 8, 8, 4, 3, 3, 1, 1]


def test_help_gives_defaults_and_every_templates_shape(capsys: pytest.CaptureFixture, monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    with pytest.raises(SystemExit):
        main(["tune", "--help"])
    out = capsys.readouterr().out
    assert "(default: tuning_records.jsonl)" in out and "(default: 200)" in out and "(default: xgb)" in out
    from tcomp.autotune.template import list_templates

    for name in list_templates():
        assert f"\n  {name} " in out
    assert "matmul                 M,N,K" in out
    assert max(len(line) for line in out.splitlines()) <= 100


def test_version(capsys: pytest.CaptureFixture) -> None:
    import tcomp

    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0 and capsys.readouterr().out.strip() == f"tcomp {tcomp.__version__}"


def test_progress_line_and_summary_table() -> None:
    stream = io.StringIO()
    task = create_task("matmul", (256, 256, 256))
    tuner = RandomTuner(task)
    result = tuner.tune(6, measurer=AnalyticMeasurer(), batch_size=3, callbacks=[ProgressPrinter(6, 2, 3, stream)])
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2 and lines[-1].startswith("[Task 2/3] current/best: ")
    assert "6/6 trials | 0 errors | ETA 0s" in lines[-1]
    table = summary_table([result])
    assert "matmul(256, 256, 256, float32)" in table and "tile_i=" in table
    assert format_duration(3725) == "1h02m" and format_duration(75) == "1m15s"


def _run_records(tmp_path: Path) -> tuple[Path, list]:
    records = tmp_path / "r.jsonl"
    task = create_task("matmul", (64, 64, 64))
    from tcomp.autotune.record import log_to_file

    RandomTuner(task, seed=1).tune(6, measurer=AnalyticMeasurer(), batch_size=3, callbacks=[log_to_file(records)])
    return records, [task]


def test_curves_start_at_the_default_schedule(tmp_path: Path) -> None:
    records, tasks = _run_records(tmp_path)
    log = read_records(records).records
    curves = tuning_curves(log, tasks, {tasks[0].key: 3})
    (curve,) = curves.tasks
    assert curve.weight == 3 and len(curve.gflops) == 6
    assert curves.latency[0] == pytest.approx(3 * log[0].result.cost)  # the default schedule, three operators
    assert curves.latency[-1] == pytest.approx(3 * min(r.result.cost for r in log))
    assert all(a >= b for a, b in zip(curves.latency, curves.latency[1:]))
    assert curve.best_gflops == sorted(curve.best_gflops)
    write_csv(tmp_path / "c.csv", curves)
    assert (tmp_path / "c.csv").read_text().splitlines()[0].startswith("task,operators,trial,tuning_seconds")


def test_without_matplotlib_the_command_says_how_to_get_plots(tmp_path: Path, monkeypatch,
                                                                 capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib raises ImportError
    records = tmp_path / "log.jsonl"
    assert main(["tune", "--op", "matmul", "--shape", "16,16,16", "--trials", "2", "--tuner", "random",
                 "--tuning-records", str(records), "--number", "1", "--repeat", "1", "--parallel", "1"]) == 0
    out = capsys.readouterr().out
    assert f"tuning data: {records.with_suffix('.csv')} (plots need matplotlib: pip install 'tcomp[plot]'" in out
    assert records.with_suffix(".csv").exists() and not records.with_suffix(".png").exists()


def test_plot_of_several_tasks(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from tcomp.cli.plot import plot_tuning

    records = tmp_path / "many.jsonl"
    from tcomp.autotune.record import log_to_file

    tasks = [create_task("matmul", (32 * (1 + k % 4), 32 * (1 + k // 4), 64)) for k in range(7)]
    for task in tasks:
        RandomTuner(task, seed=0).tune(3, measurer=AnalyticMeasurer(), batch_size=3,
                                       callbacks=[log_to_file(records)])
    curves = tuning_curves(read_records(records).records, tasks)
    plot_tuning(tmp_path / "many.png", curves, "7 tasks")
    data = (tmp_path / "many.png").read_bytes()
    assert data.startswith(b"\x89PNG") and len(data) > 50_000


def test_ctrl_c_keeps_the_records_and_writes_the_curves(tmp_path: Path) -> None:
    records = tmp_path / "log.jsonl"
    argv = ["tune", "--op", "matmul", "--shape", "128,128,128", "--trials", "100000", "--tuner", "random",
            "--batch-size", "2", "--number", "1", "--repeat", "1", "--parallel", "1", "--tuning-records", str(records)]
    status, out, err = interrupt_when(argv, "stdout", "[Task 1/1]")
    assert status == 130, err[-3000:]
    assert "interrupted: the records measured so far are kept in" in err and "Traceback" not in err
    kept = read_records(records).records
    assert len(kept) >= 2 and all(r.result.ok for r in kept)
    assert "tuning plot:" in out or "tuning data:" in out
    assert records.with_suffix(".csv").exists()


def _tiny_model(path: Path) -> None:
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.random.default_rng(0).standard_normal((8, 4, 3, 3)).astype("float32"), "w")
    # 18 rows of 16: a product of more rows than a packed matrix-vector product takes (``matvec_weights``)
    dense = numpy_helper.from_array(np.random.default_rng(1).standard_normal((16, 16)).astype("float32"), "d")
    shape = numpy_helper.from_array(np.array([18, 16], dtype=np.int64), "shape")
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("Reshape", ["r", "shape"], ["f"]),
        helper.make_node("MatMul", ["f", "d"], ["y"]),
    ]
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 6, 6])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [18, 16])],
                              initializer=[weight, dense, shape])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))


def test_tune_a_model_tunes_its_convolution_and_product(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """The convolution is tuned blocked, as the model runs it; the product of 18 rows by a weight parameter is a
    matmul task (a product of at most 16 rows streams a packed weight, untuned)."""
    pytest.importorskip("onnx")
    model = tmp_path / "tiny.onnx"
    _tiny_model(model)
    records = tmp_path / "model.jsonl"
    argv = [str(model), "--trials", "2", "--tuner", "random", "--tuning-records", str(records), "--number", "1",
            "--repeat", "1", "--parallel", "1"]
    assert main(["tune", *argv]) == 0
    out = capsys.readouterr().out
    assert "[Task 2/2]" in out and "conv2d_nchwc_blocked" in out and "matmul" in out
    log = read_records(records)
    assert sorted({r.task.name for r in log.records}) == ["conv2d_nchwc_blocked", "matmul"]
    assert all(r.result.ok for r in log.records)

    budgeted = tmp_path / "budget.jsonl"  # the same tasks within a budget of 3 s, interleaved
    assert main(["tune", argv[0], *argv[3:5], "--tuning-records", str(budgeted), *argv[7:], "--budget", "0.05"]) == 0
    out = capsys.readouterr().out
    assert "a budget of 0.05 min" in out and "[Task 2/2]" in out and " left" in out
    assert sorted({r.task.name for r in read_records(budgeted).records}) == ["conv2d_nchwc_blocked", "matmul"]
    summary = json.loads(budgeted.with_suffix(".summary.json").read_text())
    assert all(t["trials"] >= 1 for t in summary["tasks"])


def test_tune_learns_from_transfer_records_and_measures_anew(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    earlier, records = tmp_path / "earlier.jsonl", tmp_path / "now.jsonl"
    argv = ["tune", "--op", "matmul", "--shape", "32,32,32", "--batch-size", "3", "--number", "1", "--repeat", "1",
            "--parallel", "2"]
    assert main([*argv, "--trials", "3", "--tuner", "random", "--tuning-records", str(earlier)]) == 0
    before = {r.config.index for r in read_records(earlier).records}
    assert main([*argv, "--trials", "3", "--transfer", str(earlier), "--tuning-records", str(records)]) == 0
    summary = json.loads(records.with_suffix(".summary.json").read_text())
    assert [t["trials"] for t in summary["tasks"]] == [3]  # the transferred records are not trials of this run
    now = [r.config.index for r in read_records(records).records]
    assert now[0] == create_task("matmul", (32, 32, 32)).config_space.fallback.index and now[0] in before
    capsys.readouterr()
    assert main([*argv, "--transfer", str(tmp_path / "missing.jsonl"), "--tuning-records", str(tmp_path / "x")]) == 2
    assert "missing.jsonl" in capsys.readouterr().err


@pytest.mark.parametrize(("tuner", "blind"), [("xgb", False), ("xgb", True), ("random", True)])
def test_no_prior_starts_the_cost_model_blind(tuner: str, blind: bool, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """``--no-prior`` reaches xgb tuners, whose cost model then has no base model before its first fit (random
    search has no model and takes no such option)."""
    made: list[object] = []
    original = tune_command.create_tuner

    def recording(*args: object, **options: object) -> object:
        made.append(original(*args, **options))  # type: ignore[arg-type]
        return made[-1]

    monkeypatch.setattr(tune_command, "create_tuner", recording)
    argv = ["tune", "--op", "dense", "--shape", "1,64,64", "--trials", "2", "--tuner", tuner, "--parallel", "1",
            "--tuning-records", str(tmp_path / "log.jsonl"), "--number", "1", "--repeat", "1"]
    assert main([*argv, "--no-prior"] if blind else argv) == 0
    assert len(made) == 1
    if tuner == "xgb":  # the host's vector width has prior tables (AVX2 or AVX-512)
        assert (made[0].model.base_booster is None) is blind  # type: ignore[attr-defined]
