"""bfloat16: stored as its bits, computed on in float32 (``tcomp.transform.storage_types``), each graph node's result
rounded once (``bfloat16_arithmetic``), on ``llvm`` and ``cuda``; against ml_dtypes' rounding and exact sums."""

from __future__ import annotations

from pathlib import Path

import ml_dtypes
import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper

import tcomp
import tcomp.graph as tg
from tcomp import te
from tcomp.backend import compile_artifact
from tcomp.graph.frontend import from_onnx
from tcomp.graph.kernels import lower_node
from tcomp.graph.passes.float_widening import bfloat16_arithmetic
from tcomp.runtime.nvcc import kernel_resources, nvcc_available
from tcomp.target import Target
from tests.graph.flat_kernels import build_flat

BF16 = ml_dtypes.bfloat16
DATA = Path(__file__).resolve().parent.parent / "data" / "torch_models"
# NaN, infinities, the largest float32 (overflows to infinity), a subnormal, -0, ties to even both ways, 1 + 2^-7
SPECIALS = np.array([np.nan, np.inf, -np.inf, 3.4e38, -3.39e38, 1e-40, -0.0, 1.00390625, 1.01171875, 1.0078125,
                     -2.5e-38], np.float32)


def _cast_kernel(target: str, n: int):
    x = te.placeholder((n,), "float32", name="x")
    y = te.compute((n,), lambda i: x[i].astype("bfloat16"), name="y")
    z = te.compute((n,), lambda i: y[i].astype("float32") * 2, name="z")
    return build_flat([y, z], [x, y, z], target)


def _check_cast(kernel, values: np.ndarray) -> None:
    y, z = np.zeros(values.size, BF16), np.zeros(values.size, np.float32)
    kernel(values, y, z)
    with np.errstate(over="ignore", invalid="ignore"):
        want = values.astype(BF16)
        doubled = want.astype(np.float32) * 2
    nan = np.isnan(want)
    assert np.array_equal(np.isnan(y), nan)  # a NaN stays a NaN (its payload aside)
    assert np.array_equal(y[~nan].view(np.uint16), want[~nan].view(np.uint16))
    np.testing.assert_array_equal(z, doubled)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=40))
def test_rounding_to_bfloat16_matches_ml_dtypes_bit_for_bit(bits: list[int]) -> None:
    values = np.concatenate([np.array(bits, np.uint32).view(np.float32), SPECIALS])
    _check_cast(_cast_kernel("llvm", values.size), values)


def test_rounding_in_the_cuda_emulation() -> None:
    values = np.concatenate([np.random.default_rng(0).standard_normal(50).astype(np.float32) * 1e3, SPECIALS])
    _check_cast(_cast_kernel("cuda", values.size), values)


def test_elementwise_arithmetic_rounds_where_it_is_stored() -> None:
    n = 37
    a = te.placeholder((n,), "bfloat16", name="a")
    b = te.placeholder((n,), "bfloat16", name="b")
    c = te.compute((n,), lambda i: a[i] * b[i] + te.exp(a[i]), name="c")
    s = tcomp.create_schedule(c)
    s[c].vectorize(s[c].split(c.op.axis[0], 16)[1])
    f = tcomp.build(s, [a, b, c], target="llvm")
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal(n).astype(BF16), rng.standard_normal(n).astype(BF16)
    out = np.zeros(n, BF16)
    f(x, y, out)
    x32, y32 = x.astype(np.float32), y.astype(np.float32)
    assert np.array_equal(out, (x32 * y32 + np.exp(x32)).astype(BF16))


def _model(nodes: list[onnx.NodeProto], inputs: dict[str, list[int]], outputs: list[str],
           initializers: list[TensorProto] = ()) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g",
                              [helper.make_tensor_value_info(n, TensorProto.BFLOAT16, s) for n, s in inputs.items()],
                              [helper.make_tensor_value_info(n, TensorProto.BFLOAT16, None) for n in outputs],
                              list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


@pytest.mark.parametrize("target", ["llvm", "cuda"])
def test_a_sum_accumulates_in_float32(target: str) -> None:
    # in bfloat16, 256 + 1 rounds back to 256: an accumulator of that type would stop there
    axes = onnx.numpy_helper.from_array(np.array([1], np.int64), "axes")
    model = _model([helper.make_node("ReduceSum", ["x", "axes"], ["y"])], {"x": [3, 1000]}, ["y"], [axes])
    [y] = tg.compile(model, target=target).run([np.ones((3, 1000), BF16)])
    assert y.dtype == BF16
    np.testing.assert_array_equal(y.astype(np.float32), [[1000.0]] * 3)


def test_a_deep_matmul_rounds_once() -> None:
    rng = np.random.default_rng(4)
    a = rng.standard_normal((8, 4096)).astype(BF16)
    b = rng.standard_normal((4096, 24)).astype(BF16)
    model = _model([helper.make_node("MatMul", ["a", "b"], ["c"])], {"a": [8, 4096], "b": [4096, 24]}, ["c"])
    [c] = tg.compile(model, target="llvm").run([a, b])
    once = (a.astype(np.float64) @ b.astype(np.float64)).astype(np.float32).astype(BF16)
    # within one unit in the last place of the exact sum rounded once
    ulp = np.abs(once.astype(np.float32)) * 2**-7
    assert (np.abs(c.astype(np.float32) - once.astype(np.float32)) <= ulp + 1e-30).all()


def test_moves_keep_bfloat16_and_arithmetic_widens() -> None:
    nodes = [helper.make_node("Transpose", ["x"], ["t"], perm=[1, 0]),
             helper.make_node("Relu", ["t"], ["r"]),
             helper.make_node("Add", ["r", "t"], ["y"])]
    graph = from_onnx(_model(nodes, {"x": [4, 6]}, ["y"]))
    rewritten = bfloat16_arithmetic(graph)
    dtypes = {node.op: rewritten.type_of(node.outputs[0]).dtype for node in rewritten.nodes if node.op != "cast"}
    assert dtypes == {"transpose": "bfloat16", "relu": "float32", "add": "float32"}
    # t widened once for both readers; relu's and add's results narrowed (ONNX rounds each); r widened again
    assert [node.op for node in rewritten.nodes].count("cast") == 4
    assert rewritten.type_of("y").dtype == "bfloat16"
    assert bfloat16_arithmetic(rewritten) is rewritten


def test_float32_inputs_are_rounded_and_an_export_loads_back(tmp_path: Path) -> None:
    weight = onnx.numpy_helper.from_array(np.arange(12, dtype=np.float32).reshape(4, 3).astype(BF16), "w")
    model = _model([helper.make_node("MatMul", ["x", "w"], ["y"])], {"x": [2, 4]}, ["y"], [weight])
    executor = tg.compile(model, target="llvm")
    x = np.random.default_rng(5).standard_normal((2, 4)).astype(np.float32)
    [y] = executor.run([x])
    [want] = executor.run([x.astype(BF16)])
    assert y.dtype == BF16 and np.array_equal(y, want)
    executor.export(str(tmp_path))
    [loaded] = tg.load_executor(str(tmp_path)).run([x])
    assert np.array_equal(loaded.view(np.uint16), y.view(np.uint16))


def test_a_bfloat16_model_compiles_for_cuda_and_runs_in_emulation() -> None:
    """The bfloat16 BERT of ``torch_models`` for ``cuda`` (its float32 twin and the llvm run are in
    ``test_torch_models``): within two bfloat16 units of PyTorch's output, and every kernel compiled by nvcc where it
    exists."""
    path = DATA / "bert_bf16.onnx"
    with np.load(path.with_suffix(".npz")) as data:
        inputs = {key[4:]: data[key] for key in data.files if key.startswith("in0_")}
        want = data["out0"]
    executor = tg.compile(path, target="cuda")
    [got] = executor.run(inputs)
    assert float(np.abs(got.astype(np.float32) - want).max() / np.abs(want).max()) <= 2**-6
    if nvcc_available():
        target = Target("cuda")
        graph = tg.compile_graph(onnx.load(path), target)
        sources = {}
        for node in graph.nodes:
            func, _, _ = lower_node(graph, node, target)
            sources.setdefault(func.name, compile_artifact(func, target=target).artifact.source)
        assert len(kernel_resources("\n".join(sources.values()), target.arch)) >= len(sources)
