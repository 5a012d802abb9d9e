"""``tcomp tune`` / ``tcomp pick``, the progress line, the summary table and the PNG plot."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import pytest

from tcomp.autotune import create_task
from tcomp.autotune.record import read_records
from tcomp.autotune.tuner import RandomTuner
from tcomp.cli import main
from tcomp.cli.plot import Canvas, plot_curves
from tcomp.cli.report import ProgressPrinter, format_duration, summary_table
from tests.autotune.autotune_fakes import AnalyticMeasurer


def test_tune_writes_records_summary_and_plot_then_resumes(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    records = tmp_path / "log.jsonl"
    argv = ["tune", "--op", "matmul", "--shape", "32,32,32", "--op", "dense", "--shape", "16x24x8", "--trials", "4",
            "--tuner", "random", "--tuning-records", str(records), "--batch-size", "2", "--number", "1",
            "--repeat", "1", "--parallel", "2"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "[Task 1/2]" in out and "[Task 2/2] current/best:" in out and "4/4 trials" in out
    assert "default GFLOP/s" in out and "dense(16, 24, 8, float32)" in out
    log = read_records(records)
    assert len(log.records) == 8 and all(r.result.ok for r in log.records)
    assert records.with_suffix(".png").read_bytes().startswith(b"\x89PNG")

    assert main(argv) == 2  # the log exists: refuse to mix runs without --resume
    assert "--resume" in capsys.readouterr().err
    assert main([*argv[:-8], "--trials", "6", "--resume", "--batch-size", "2", "--number", "1", "--repeat", "1"]) == 0
    again = read_records(records).records
    assert len(again) == 12
    per_task = {}
    for record in again:
        per_task.setdefault(record.task.name, []).append(record.config.index)
    assert all(len(v) == len(set(v)) == 6 for v in per_task.values())

    best = tmp_path / "best.jsonl"
    assert main(["pick", str(records), "-o", str(best)]) == 0
    assert len(read_records(best).records) == 2


@pytest.mark.parametrize(
    "argv, message",
    [
        (["tune", "--op", "matmul"], "one --shape per --op"),
        (["tune"], "nothing to tune"),
        (["tune", "--op", "matmul", "--shape", "8,8"], "missing 1 required positional argument"),
        (["tune", "--op", "nope", "--shape", "8"], "unknown template 'nope'"),
        (["tune", "--op", "matmul", "--shape", "8,a,8"], "comma-separated integers"),
        (["tune", "missing.onnx"], "'missing.onnx' does not exist"),
    ],
)
def test_tune_rejects_bad_arguments(argv: list[str], message: str, tmp_path: Path,
                                    capsys: pytest.CaptureFixture) -> None:
    assert main([*argv, "--tuning-records", str(tmp_path / "x.jsonl")]) == 2
    assert message in capsys.readouterr().err


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


def test_png_is_valid_and_has_the_lines(tmp_path: Path) -> None:
    path = tmp_path / "plot.png"
    plot_curves(path, [("xgb", [1.0, 2.0, 3.0, 3.0]), ("random", [1.0, 1.5, 1.5, 2.5])])
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    length, kind = struct.unpack(">I4s", data[8:16])
    width, height = struct.unpack(">II", data[16:24])
    assert kind == b"IHDR" and (width, height) == (720, 420)
    idat_start = data.index(b"IDAT") + 4
    idat_length = struct.unpack(">I", data[idat_start - 8: idat_start - 4])[0]
    raw = zlib.decompress(data[idat_start: idat_start + idat_length])
    assert len(raw) == height * (1 + 3 * width)
    assert bytes((31, 119, 180)) in raw and bytes((255, 127, 14)) in raw  # both series drawn


def test_canvas_text_draws_pixels() -> None:
    canvas = Canvas(40, 10)
    canvas.text(0, 0, "64x64")
    assert any(canvas.pixels[k] == 0 for k in range(0, len(canvas.pixels), 3))


def _tiny_model(path: Path) -> None:
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.random.default_rng(0).standard_normal((8, 4, 3, 3)).astype("float32"), "w")
    dense = numpy_helper.from_array(np.random.default_rng(1).standard_normal((8 * 6 * 6, 16)).astype("float32"), "d")
    shape = numpy_helper.from_array(np.array([1, 8 * 6 * 6], dtype=np.int64), "shape")
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("Reshape", ["r", "shape"], ["f"]),
        helper.make_node("MatMul", ["f", "d"], ["y"]),
    ]
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 6, 6])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16])],
                              initializer=[weight, dense, shape])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))


def test_tune_a_model_tunes_its_convolution_and_classifier(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """The convolution is tuned blocked, as the model runs it; the classifier (one row times a weight parameter) is a
    dense task: its weight is stored [N, K]."""
    pytest.importorskip("onnx")
    model = tmp_path / "tiny.onnx"
    _tiny_model(model)
    records = tmp_path / "model.jsonl"
    argv = [str(model), "--trials", "2", "--tuner", "random", "--tuning-records", str(records), "--number", "1",
            "--repeat", "1", "--parallel", "1"]
    assert main(["tune", *argv]) == 0
    out = capsys.readouterr().out
    assert "[Task 2/2]" in out and "conv2d_nchwc_blocked" in out and "dense" in out
    log = read_records(records)
    assert sorted({r.task.name for r in log.records}) == ["conv2d_nchwc_blocked", "dense"]
    assert all(r.result.ok for r in log.records)
