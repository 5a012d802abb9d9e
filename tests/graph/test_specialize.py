"""Models whose shapes are decided at run time: symbolic dimensions and graph inputs that set shapes compile once per
shape and value seen (``tcomp.graph.specialize``); ``input_values`` and ``--freeze`` fix such inputs up front."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

import tcomp.graph as tg
from tcomp.cli import main
from tcomp.cli.arguments import parse_freeze
from tcomp.graph import testing


def reference(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), options).run(None, feeds)


def reshape_model(shape_length: int | None = None) -> onnx.ModelProto:
    """``y = Reshape(x, shape) * 2`` with the target shape a graph input (of any length by default)."""
    nodes = [helper.make_node("Reshape", ["x", "shape"], ["r"]),
             helper.make_node("Mul", ["r", "two"], ["y"])]
    graph = helper.make_graph(
        nodes, "reshape_input",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 4]),
         helper.make_tensor_value_info("shape", TensorProto.INT64, [shape_length])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [helper.make_tensor("two", TensorProto.FLOAT, [], [2.0])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_symbolic_batch_compiles_once_per_batch_size(caplog: pytest.LogCaptureFixture) -> None:
    model = testing.transformer_encoder(seq=8, hidden=32, heads=4, ffn=64, dynamic_batch=True)
    executor = tg.compile(model, symbolic_dimensions=False)
    assert isinstance(executor, tg.SpecializingExecutor)
    assert executor.compilations == 0 and executor.graph is None
    rng = np.random.default_rng(0)
    with caplog.at_level(logging.DEBUG, logger="tcomp.graph.specialize"):
        for batch in (1, 4, 7, 4, 1):
            x = rng.standard_normal((batch, 8, 32)).astype(np.float32)
            [got] = executor.run([x])
            [want] = reference(model, {"x": x})
            assert got.shape == (batch, 8, 32)
            np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4)
    assert executor.compilations == 3
    assert len(executor.specializations) == 3
    compiled = [r.message for r in caplog.records if "compiling" in r.message]
    assert len(compiled) == 3 and "(7, 8, 32)" in compiled[2]
    assert executor.graph is not None and executor.graph.types["x"].shape == (1, 8, 32)


def test_reshape_shape_from_a_graph_input() -> None:
    model = reshape_model()
    executor = tg.compile(model)
    assert isinstance(executor, tg.SpecializingExecutor)
    assert executor.value_inputs == ()
    x = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    for shape in ([4, 6], [3, -1, 2], [4, 6]):
        target = np.array(shape, dtype=np.int64)
        [got] = executor.run({"x": x, "shape": target})
        [want] = reference(model, {"x": x, "shape": target})
        assert got.shape == want.shape
        np.testing.assert_array_equal(got, want)
    assert executor.compilations == 2
    assert executor.value_inputs == ("shape",)  # found while compiling the first run
    # a new input value compiles once more, an equal one reuses its specialization
    executor.run([x, np.array([24], dtype=np.int64)])
    assert executor.compilations == 3
    assert executor.get_output(0).shape == (24,)


def test_static_shapes_find_the_inputs_that_decide_shapes_at_once() -> None:
    executor = tg.compile(reshape_model(shape_length=2))
    assert isinstance(executor, tg.SpecializingExecutor)
    assert executor.value_inputs == ("shape",)  # compiling without its value said so
    x = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    [got] = executor.run([x, np.array([8, 3])])
    np.testing.assert_array_equal(got, 2 * x.reshape(8, 3))


def test_input_values_fix_inputs_up_front() -> None:
    executor = tg.compile(reshape_model(), input_values={"shape": [6, 4]})
    assert isinstance(executor, tg.GraphExecutor)
    assert executor.input_names == ("x",)
    x = np.random.default_rng(1).standard_normal((2, 3, 4)).astype(np.float32)
    [got] = executor.run([x])
    np.testing.assert_allclose(got, 2 * x.reshape(6, 4))
    with pytest.raises(tg.GraphError, match="not inputs of the model"):
        tg.compile(reshape_model(), input_values={"nothing": [1]})
    with pytest.raises(tg.GraphError, match="holds int64, got float"):
        tg.compile(reshape_model(), input_values={"shape": [6.0, 4.0]})
    with pytest.raises(tg.GraphError, match="cannot reshape"):
        tg.compile(reshape_model(), input_values={"shape": [5, -1]})


def test_run_time_errors_are_clear() -> None:
    model = testing.transformer_encoder(seq=8, hidden=32, heads=4, ffn=64, dynamic_batch=True)
    executor = tg.compile(model)
    with pytest.raises(tg.GraphError, match="has not run yet"):
        executor.get_output(0)
    with pytest.raises(ValueError, match="dimension 1 = 9, the model fixes it to 8"):
        executor.run([np.zeros((2, 9, 32), np.float32)])
    with pytest.raises(TypeError, match="expected float32"):
        executor.run([np.zeros((2, 8, 32), np.complex64)])
    with pytest.raises(TypeError, match="takes 1 inputs"):
        executor.run([])
    with pytest.raises(KeyError, match="no input 'y'"):
        executor.set_input("y", np.zeros(3))
    with pytest.raises(tg.GraphError, match="--input-shapes x:\\[1,8,32\\]"):
        executor.export("unused")


def test_bad_shape_values_fail_at_run_time_with_the_reason() -> None:
    executor = tg.compile(reshape_model())
    with pytest.raises(tg.GraphError, match="cannot reshape"):
        executor.run([np.zeros((2, 3, 4), np.float32), np.array([5, -1], dtype=np.int64)])
    assert executor.compilations == 0
    with pytest.raises(tg.GraphError, match="fix them with --freeze shape=VALUE \\("):
        executor.export("unused")


def test_old_specializations_are_dropped() -> None:
    model = testing.transformer_encoder(seq=4, hidden=16, heads=2, ffn=32, dynamic_batch=True)
    executor = tg.compile(model, symbolic_dimensions=False)
    executor.max_specializations = 2
    for batch in (1, 2, 3, 1):
        executor.run([np.ones((batch, 4, 16), np.float32)])
    assert executor.compilations == 4  # batch 1 was dropped when batch 3 came
    assert [key[0][0] for key in executor.specializations] == [(3, 4, 16), (1, 4, 16)]


def test_static_shapes_still_compile_at_once() -> None:
    model = testing.transformer_encoder(seq=8, hidden=32, heads=4, ffn=64, dynamic_batch=True)
    executor = tg.compile(model, input_shapes={"x": [2, 8, 32]})
    assert isinstance(executor, tg.GraphExecutor)


def test_parse_freeze() -> None:
    assert parse_freeze(["shape=[1,-1]", "mode=0", "scales=[1.0, 2.5]"]) == {
        "shape": [1, -1], "mode": 0, "scales": [1.0, 2.5]}
    for bad in ("shape", "=[1]", "shape=[1,", "shape=\"abc\"", "shape={}", "x=__import__('os')"):
        with pytest.raises(ValueError, match="--freeze"):
            parse_freeze([bad])


def test_cli_freeze(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "reshape.onnx"
    onnx.save(reshape_model(shape_length=2), path)
    out = tmp_path / "out"
    assert main(["compile", str(path), "-o", str(out)]) == 1
    assert "fix them with --freeze shape=VALUE" in capsys.readouterr().err
    assert main(["compile", str(path), "--freeze", "shape=[4,6]", "-o", str(out)]) == 0
    x = np.random.default_rng(2).standard_normal((2, 3, 4)).astype(np.float32)
    np.savez(tmp_path / "in.npz", x=x)
    assert main(["run", str(out), "--inputs", str(tmp_path / "in.npz"), "-o", str(tmp_path / "y.npz")]) == 0
    with np.load(tmp_path / "y.npz") as outputs:
        (got,) = outputs.values()
    np.testing.assert_allclose(got, 2 * x.reshape(4, 6))


def test_cli_runs_a_model_compiled_as_it_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "encoder.onnx"
    model = testing.transformer_encoder(seq=4, hidden=16, heads=2, ffn=32, dynamic_batch=True)
    onnx.save(model, path)
    assert main(["run", str(path)]) == 1
    assert "give it in --inputs or bind its shape with --input-shapes x:[1,4,16]" in capsys.readouterr().err
    x = np.random.default_rng(3).standard_normal((3, 4, 16)).astype(np.float32)
    np.savez(tmp_path / "in.npz", x=x)
    assert main(["run", str(path), "--inputs", str(tmp_path / "in.npz"), "--repeat", "2", "--print-time",
                 "--profile", "-o", str(tmp_path / "y.npz")]) == 0
    assert "median (ms)" in capsys.readouterr().out
    [want] = reference(model, {"x": x})
    with np.load(tmp_path / "y.npz") as outputs:
        np.testing.assert_allclose(outputs[model.graph.output[0].name], want, rtol=1e-3, atol=1e-4)


def test_nonzero_of_a_run_time_input_specializes_on_its_values() -> None:
    """``NonZero(x > 0.5)``: the output's shape is the number of elements above 0.5."""
    nodes = [helper.make_node("Greater", ["x", "half"], ["mask"]), helper.make_node("NonZero", ["mask"], ["y"])]
    graph = helper.make_graph(nodes, "nonzero", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.INT64, None)],
                              [helper.make_tensor("half", TensorProto.FLOAT, [], [0.5])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    executor = tg.compile(model)
    rng = np.random.default_rng(4)
    first = rng.random((3, 4)).astype(np.float32)
    for x in (first, rng.random((3, 4)).astype(np.float32), first):
        [got] = executor.run([x])
        np.testing.assert_array_equal(got, np.array(np.nonzero(x > 0.5)))
    assert executor.value_inputs == ("x",) and executor.compilations == 2


def test_shapes_computed_from_float_constants_are_evaluated_at_compile_time() -> None:
    """Reshape's shape is ``Cast(Mul(c, 2))`` of a float constant: type inference does not propagate floats, so
    the frontend compiles and runs those nodes to know it."""
    nodes = [helper.make_node("Mul", ["c", "two"], ["m"]), helper.make_node("Cast", ["m"], ["shape"], to=7),
             helper.make_node("Reshape", ["x", "shape"], ["y"])]
    graph = helper.make_graph(nodes, "float_shape", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [helper.make_tensor("c", TensorProto.FLOAT, [2], [3.0, 2.0]),
                               helper.make_tensor("two", TensorProto.FLOAT, [], [2.0])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    executor = tg.compile(model)
    assert isinstance(executor, tg.GraphExecutor)
    x = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    [got] = executor.run([x])
    np.testing.assert_array_equal(got, x.reshape(6, 4))
