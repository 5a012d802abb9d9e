"""The graph executor's API (classic TVM graph runtime plus a plain call) and export to a folder that loads and runs
without recompiling."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import tcomp.graph as tg

ROOT = Path(__file__).resolve().parents[2]
W = np.arange(6, dtype=np.float32).reshape(2, 3) / 10


def two_output_model() -> onnx.ModelProto:
    nodes = [
        helper.make_node("MatMul", ["a", "w"], ["m"]),
        helper.make_node("Add", ["m", "b"], ["s"]),
        helper.make_node("Relu", ["s"], ["y"]),
        helper.make_node("Sigmoid", ["m"], ["z"]),
    ]
    graph = helper.make_graph(
        nodes, "two", [helper.make_tensor_value_info("a", TensorProto.FLOAT, [4, 2]),
                       helper.make_tensor_value_info("b", TensorProto.FLOAT, [4, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 3]),
         helper.make_tensor_value_info("z", TensorProto.FLOAT, [4, 3])], [numpy_helper.from_array(W, "w")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def expected(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    m = a @ W
    return np.maximum(m + b, 0), 1 / (1 + np.exp(-m))


A = np.random.default_rng(0).standard_normal((4, 2)).astype(np.float32)
B = np.random.default_rng(1).standard_normal((4, 3)).astype(np.float32)


@pytest.fixture(scope="module")
def executor() -> tg.GraphExecutor:
    return tg.compile(two_output_model())


def test_graph_runtime_api(executor: tg.GraphExecutor) -> None:
    executor.set_input("a", A)
    executor.set_input(b=B)
    executor.run()
    y, z = expected(A, B)
    assert executor.get_num_outputs() == 2
    np.testing.assert_allclose(executor.get_output(0), y, rtol=1e-5)
    np.testing.assert_allclose(executor.get_output(1), z, rtol=1e-5)
    executor.run(a=B[:, :2].copy(), b=A.sum() + B)
    y2, _ = expected(B[:, :2], A.sum() + B)
    np.testing.assert_allclose(executor.get_output(0), y2, rtol=1e-5)


def test_plain_run_returns_arrays(executor: tg.GraphExecutor) -> None:
    outputs = executor.run([A, B])
    assert isinstance(outputs, list) and len(outputs) == 2
    for got, want in zip(outputs, expected(A, B)):
        np.testing.assert_allclose(got, want, rtol=1e-5)
    by_name = executor.run({"a": A, "b": B})
    np.testing.assert_allclose(by_name[1], outputs[1])  # type: ignore[index]
    outputs[0][:] = -1  # a copy: the executor's storage is untouched
    np.testing.assert_allclose(executor.get_output(0), expected(A, B)[0], rtol=1e-5)


def test_set_input_by_index_and_casting(executor: tg.GraphExecutor) -> None:
    executor.set_input(0, A.astype(np.float64))
    np.testing.assert_array_equal(executor.get_input("a"), A)


@pytest.mark.parametrize("call, error, message", [
    (lambda ex: ex.set_input("a", np.zeros((2, 4), np.float32)), ValueError, "expected shape"),
    (lambda ex: ex.set_input("nope", A), KeyError, "no input 'nope'"),
    (lambda ex: ex.set_input("a", np.zeros((4, 2), np.complex64)), TypeError, "expected float32"),
    (lambda ex: ex.run([A]), TypeError, "takes 2 inputs"),
])
def test_bad_inputs(executor: tg.GraphExecutor, call, error, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(error, match=message):
        call(executor)


def test_outputs_that_are_inputs_or_constants() -> None:
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "id",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3]),
                               helper.make_tensor_value_info("c", TensorProto.FLOAT, [2])],
                              [numpy_helper.from_array(np.array([1, 2], np.float32), "c")])
    executor = tg.compile(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]))
    y, c = executor.run([np.array([5, 6, 7], np.float32)])  # type: ignore[misc]
    np.testing.assert_array_equal(y, [5, 6, 7])
    np.testing.assert_array_equal(c, [1, 2])


def test_profile_and_benchmark(executor: tg.GraphExecutor) -> None:
    executor.run([A, B])
    rows = executor.profile(repeat=2)
    assert len(rows) == executor.num_kernels and all(seconds >= 0 for _, _, seconds in rows)
    assert len(executor.benchmark(repeat=3)) == 3


# ---------------------------------------------------------------------------------------------------------------------
# export
_LOAD_AND_RUN = """
import sys, numpy as np
import tcomp.backend.driver as driver
import tcomp.backend.llvm as llvm_backend
def refuse(*args, **kwargs):
    raise AssertionError("the loaded model compiled code")
driver._compile = llvm_backend.codegen_llvm = refuse
import tcomp.graph as tg
ex = tg.load_executor(sys.argv[1])
a, b = np.load(sys.argv[2])["a"], np.load(sys.argv[2])["b"]
y, z = ex.run([a, b])
np.savez(sys.argv[3], y=y, z=z)
"""


def test_export_loads_and_runs_in_a_fresh_process(executor: tg.GraphExecutor, tmp_path: Path) -> None:
    out = tmp_path / "compiled"
    executor.export(str(out))
    assert sorted(p.name for p in out.iterdir()) == ["graph.json", "kernels.so", "params.npz"]
    np.savez(tmp_path / "in.npz", a=A, b=B)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    result = subprocess.run([sys.executable, "-c", _LOAD_AND_RUN, str(out), str(tmp_path / "in.npz"),
                             str(tmp_path / "out.npz")], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    with np.load(tmp_path / "out.npz") as saved:
        for name, want in zip(("y", "z"), expected(A, B)):
            np.testing.assert_allclose(saved[name], want, rtol=1e-5)


def test_export_of_a_cnn_in_process(tmp_path: Path) -> None:
    from tcomp.graph import testing

    model = testing.resnet(18, image_size=32, width=0.25, num_classes=10)
    compiled = tg.compile(model)
    x = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)
    [want] = compiled.run([x])
    compiled.export(str(tmp_path / "r18"))
    [got] = tg.load_executor(str(tmp_path / "r18")).run([x])
    np.testing.assert_array_equal(got, want)


def test_corrupt_export_folders(executor: tg.GraphExecutor, tmp_path: Path) -> None:
    out = tmp_path / "bad"
    executor.export(str(out))
    document = json.loads((out / "graph.json").read_text())
    document["storage_bytes"] = [1 for _ in document["storage_bytes"]]
    (out / "graph.json").write_text(json.dumps(document))
    with pytest.raises(tg.GraphError, match="does not fit its storage"):
        tg.load_executor(str(out))
    (out / "graph.json").write_text("{not json")
    with pytest.raises(tg.GraphError, match="not valid JSON"):
        tg.load_executor(str(out))
    (out / "graph.json").unlink()
    with pytest.raises(tg.GraphError, match="graph.json is missing"):
        tg.load_executor(str(out))


def test_loaded_executor_cannot_be_exported_again(executor: tg.GraphExecutor, tmp_path: Path) -> None:
    executor.export(str(tmp_path / "a"))
    loaded = tg.load_executor(str(tmp_path / "a"))
    with pytest.raises(tg.GraphError, match="compiled in this process"):
        loaded.export(str(tmp_path / "b"))


_KERNEL_NAMES = """
import sys
sys.path.insert(0, sys.argv[1])
from tests.graph.test_executor import two_output_model
import tcomp.graph as tg
print(" ".join(spec.entry for spec in tg.compile(two_output_model()).program.kernels))
"""


def test_kernel_symbols_are_the_same_in_every_process() -> None:
    """Symbols came from the salted ``hash``: every process named the same kernels differently."""
    names = []
    for seed in ("1", "2"):
        env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONHASHSEED=seed, OMP_NUM_THREADS="1")
        child = subprocess.run([sys.executable, "-c", _KERNEL_NAMES, str(ROOT)], env=env, capture_output=True,
                               text=True, timeout=300)
        assert child.returncode == 0, child.stderr[-2000:]
        names.append(child.stdout.split())
    assert names[0] == names[1] and len(names[0]) >= 2


def test_set_input_on_a_parameter_compiled_into_the_code_raises(tmp_path: Path) -> None:
    """A one-element parameter is a constant in the kernel: writing it used to be accepted and do nothing."""
    nodes = [helper.make_node("Mul", ["x", "scale"], ["s"]), helper.make_node("Add", ["s", "bias"], ["y"])]
    graph = helper.make_graph(nodes, "scaled", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3])],
                              [numpy_helper.from_array(np.array([2.0], np.float32), "scale"),
                               numpy_helper.from_array(np.array([1.0, 2.0, 3.0], np.float32), "bias")])
    executor = tg.compile(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]))
    x = np.array([1.0, 1.0, 1.0], np.float32)
    with pytest.raises(ValueError, match="'scale' is compiled into the code as a constant"):
        executor.set_input("scale", np.array([5.0], np.float32))
    executor.set_input(bias=np.zeros(3, np.float32))  # a real argument of the kernel: it changes the result
    np.testing.assert_array_equal(executor.run([x])[0], [2.0, 2.0, 2.0])
    executor.export(str(tmp_path / "scaled"))
    loaded = tg.load_executor(str(tmp_path / "scaled"))
    with pytest.raises(ValueError, match="'scale' is compiled into the code as a constant"):
        loaded.set_input("scale", np.array([5.0], np.float32))

    alone = helper.make_graph([nodes[0]], "alone", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3])],
                              [helper.make_tensor_value_info("s", TensorProto.FLOAT, [3])],
                              [numpy_helper.from_array(np.array([2.0], np.float32), "scale")])
    single = tg.compile(helper.make_model(alone, opset_imports=[helper.make_opsetid("", 13)]))
    with pytest.raises(ValueError, match="'scale' is compiled into the code as a constant"):
        single.set_input(scale=np.array([5.0], np.float32))
    np.testing.assert_array_equal(single.run([x])[0], [2.0, 2.0, 2.0])


def test_scalars_of_product_kernels_are_arguments_shared_by_layers() -> None:
    """Two layers that differ only in a scalar scale (as a quantized model's layers do) run one product kernel that
    takes the scale as an argument, each layer with its own value; a scalar of an elementwise kernel stays a
    constant compiled into the code."""
    rng = np.random.default_rng(5)
    weights = [rng.standard_normal((8, 8)).astype(np.float32) for _ in range(2)]
    nodes = [helper.make_node("Mul", ["x", "half"], ["halved"])]
    inits = [numpy_helper.from_array(np.array(0.5, np.float32), "half")]
    value = "halved"
    for layer, (weight, scale) in enumerate(zip(weights, (0.5, 3.0))):
        nodes += [helper.make_node("MatMul", [value, f"w{layer}"], [f"p{layer}"]),
                  helper.make_node("Mul", [f"p{layer}", f"s{layer}"], [f"y{layer}"])]
        inits += [numpy_helper.from_array(weight, f"w{layer}"),
                  numpy_helper.from_array(np.array(scale, np.float32), f"s{layer}")]
        value = f"y{layer}"
    graph = helper.make_graph(nodes, "layers", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 8])],
                              [helper.make_tensor_value_info("y1", TensorProto.FLOAT, [4, 8])], inits)
    executor = tg.compile(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]))
    x = rng.standard_normal((4, 8)).astype(np.float32)
    want = (x * 0.5 @ weights[0] * 0.5) @ weights[1] * 3.0
    np.testing.assert_allclose(executor.run([x])[0], want, rtol=1e-5, atol=1e-5)
    products = [k for k in executor.program.kernels if any(a.startswith("w") for a in k.args)]
    assert len(products) == 2 and products[0].entry == products[1].entry
    assert {"s0", "s1"} <= {a for k in products for a in k.args}
    with pytest.raises(ValueError, match="'half' is compiled into the code as a constant"):
        executor.set_input("half", np.array(2.0, np.float32))
