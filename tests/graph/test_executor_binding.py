"""``run(inputs)`` reads the caller's input arrays and writes the arrays it returns (``GraphExecutor``: values alone
in their storage are bound by pointer, see ``tcomp/graph/executor.py``): same results as copies, an array handed to
the caller is never written again, and a caller's array is never written at all."""

from __future__ import annotations

import weakref

import numpy as np
import pytest
from onnx import TensorProto, helper

import tcomp.graph as tg
from tcomp.graph import testing
from tcomp.graph.executor import bindable
from tests.graph.test_executor import expected, two_output_model

RNG = np.random.default_rng(7)


@pytest.fixture(scope="module")
def executor() -> tg.GraphExecutor:
    return tg.compile(two_output_model())


def _inputs() -> tuple[np.ndarray, np.ndarray]:
    return RNG.standard_normal((4, 2)).astype(np.float32), RNG.standard_normal((4, 3)).astype(np.float32)


def test_inputs_and_outputs_alone_in_their_storage_are_bound(executor: tg.GraphExecutor) -> None:
    assert bindable(executor.program) == {"a", "b", "y", "z"}


def test_returned_arrays_are_never_written_again(executor: tg.GraphExecutor) -> None:
    a1, b1 = _inputs()
    first = executor.run([a1, b1])
    kept = [out.copy() for out in first]  # type: ignore[union-attr]
    a2, b2 = _inputs()
    second = executor.run([a2, b2])
    for got, want in zip(first, kept):  # type: ignore[arg-type]
        np.testing.assert_array_equal(got, want)
    for got, want in zip(second, expected(a2, b2)):  # type: ignore[arg-type]
        np.testing.assert_allclose(got, want, rtol=1e-5)
    assert all(not np.shares_memory(x, y) for x in first for y in second)  # type: ignore[union-attr]


def test_the_memory_of_dropped_outputs_serves_later_runs(executor: tg.GraphExecutor) -> None:
    earlier: list[weakref.ref] = []  # the memory of every output returned (an array's base), not held
    for _ in range(3):
        earlier += [weakref.ref(out.base) for out in executor.run(list(_inputs()))]  # type: ignore[union-attr]
    outputs = executor.run(list(_inputs()))
    assert all(any(out.base is ref() for ref in earlier) for out in outputs)  # type: ignore[union-attr]
    view = outputs[0][1:]  # type: ignore[index]
    kept = view.copy()
    del outputs
    for _ in range(3):
        executor.run(list(_inputs()))
    np.testing.assert_array_equal(view, kept)  # the caller's view keeps its memory out of reuse


def test_the_callers_inputs_are_never_written(executor: tg.GraphExecutor) -> None:
    a1, b1 = _inputs()
    saved = a1.copy()
    executor.run([a1, b1])
    a2, _ = _inputs()
    executor.set_input("a", a2)  # into the executor's own storage, not into the array of the last run
    np.testing.assert_array_equal(a1, saved)
    executor.run()
    np.testing.assert_allclose(executor.get_output(0), expected(a2, b1)[0], rtol=1e-5)
    np.testing.assert_array_equal(executor.get_input("a"), a2)


def test_a_later_run_without_inputs_reads_the_arrays_of_the_last_run(executor: tg.GraphExecutor) -> None:
    a, b = _inputs()
    outputs = executor.run([a, b])
    executor.run()  # benchmark() and profile() run so
    for index, want in enumerate(expected(a, b)):
        np.testing.assert_allclose(executor.get_output(index), want, rtol=1e-5)
        np.testing.assert_allclose(outputs[index], want, rtol=1e-5)  # type: ignore[index]


@pytest.mark.parametrize("make", [
    lambda a, b: (a.astype(np.float64), b),  # another dtype: cast into the storage
    lambda a, b: (np.asfortranarray(a), b),  # not C-ordered
    lambda a, b: (np.repeat(a, 2, axis=1)[:, ::2], b[::1]),  # a strided view
    lambda a, b: (a.tolist(), b),  # not an array
], ids=["float64", "fortran", "strided", "list"])
def test_inputs_that_cannot_be_bound_are_copied(executor: tg.GraphExecutor, make) -> None:  # type: ignore[no-untyped-def]
    a, b = _inputs()
    for got, want in zip(executor.run(list(make(a, b))), expected(a, b)):  # type: ignore[arg-type]
        np.testing.assert_allclose(got, want, rtol=1e-5)


def test_values_that_share_storage_are_copied_and_correct() -> None:
    """A ResNet's planned storage is reused between values: what is bound and what is not, the results are those
    of set_input / run / get_output, run after run."""
    model = testing.random_weights(testing.resnet(depth=18, image_size=32, width=0.25, num_classes=10))
    executor = tg.compile(model)
    plain = tg.compile(model)
    shared = [n for n in executor.program.storage_of if n not in bindable(executor.program)]
    assert shared  # the intermediate values share storage
    for _ in range(3):
        x = RNG.standard_normal((1, 3, 32, 32)).astype(np.float32)
        [got] = executor.run([x])  # type: ignore[misc]
        plain.set_input(0, x)
        plain.run()
        np.testing.assert_array_equal(got, plain.get_output(0))


def test_an_output_that_is_an_input_is_copied() -> None:
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"]), helper.make_node("Neg", ["x"], ["z"])],
                              "id", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3])],
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3]),
                               helper.make_tensor_value_info("z", TensorProto.FLOAT, [3])])
    executor = tg.compile(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]))
    x = np.array([1, 2, 3], np.float32)
    x_out, z = executor.run([x])  # type: ignore[misc]
    assert "x" not in bindable(executor.program) and not np.shares_memory(x_out, x)
    np.testing.assert_array_equal(x_out, x)
    np.testing.assert_array_equal(z, -x)
