"""ONNX ``If`` and ``Loop`` (``frontend/onnx_control.py``): branches and bodies inlined at compile time, checked
against onnxruntime on random inputs of odd shapes; conditions and trip counts that graph inputs decide specialize;
what cannot be unrolled fails with a clear error."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto as TP
from onnx import helper

import tcomp.graph as tg

RNG = np.random.default_rng(31)


def _value(name: str, elem: int, shape: list[int | str] | None) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem, shape)


def _model(nodes: list[onnx.NodeProto], inputs: list[onnx.ValueInfoProto], outputs: list[onnx.ValueInfoProto],
           initializers: list[onnx.TensorProto] | None = None, opset: int = 17) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "control", inputs, outputs, initializers or [])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _ort(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def _check(model: onnx.ModelProto, feeds: dict[str, np.ndarray], executor: object = None) -> object:
    executor = executor or tg.compile(model)
    got = executor.run(feeds)  # type: ignore[attr-defined]
    want = _ort(model, feeds)
    assert got is not None and len(got) == len(want)
    for g, w in zip(got, want):
        assert g.shape == w.shape and g.dtype == w.dtype
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)
    return executor


def _branches(outer: str) -> tuple[onnx.GraphProto, onnx.GraphProto]:
    """then: ``outer * 2`` ; else: ``outer - 1`` (both read ``outer`` from the enclosing graph)."""
    two = helper.make_tensor("two", TP.FLOAT, [], [2.0])
    then = helper.make_graph([helper.make_node("Mul", [outer, "two"], ["then_out"])], "then", [],
                             [_value("then_out", TP.FLOAT, None)], [two])
    one = helper.make_node("Constant", [], ["one"], value=helper.make_tensor("c", TP.FLOAT, [], [1.0]))
    other = helper.make_graph([one, helper.make_node("Sub", [outer, "one"], ["else_out"])], "else", [],
                              [_value("else_out", TP.FLOAT, None)])
    return then, other


@pytest.mark.parametrize("rank", [2, 3])
def test_if_on_a_condition_shapes_decide(rank: int) -> None:
    """``If(rank(x) == 2)`` as exporters write it: folded at compile time, one branch inlined."""
    then, other = _branches("y")
    nodes = [
        helper.make_node("Shape", ["x"], ["shape"]),
        helper.make_node("Size", ["shape"], ["rank"]),
        helper.make_node("Constant", [], ["two_dims"], value=helper.make_tensor("t", TP.INT64, [], [2])),
        helper.make_node("Equal", ["rank", "two_dims"], ["is_2d"]),
        helper.make_node("Relu", ["x"], ["y"]),  # defined after the If in the node list: order follows the reads
        helper.make_node("If", ["is_2d"], ["out"], then_branch=then, else_branch=other),
    ]
    nodes = [*nodes[:4], nodes[5], nodes[4]]
    shape = [5, 7] if rank == 2 else [3, 5, 7]
    model = _model(nodes, [_value("x", TP.FLOAT, shape)], [_value("out", TP.FLOAT, shape)])
    executor = _check(model, {"x": RNG.normal(0, 1, shape).astype(np.float32)})
    assert isinstance(executor, tg.GraphExecutor)


def test_if_on_a_graph_input_specializes_on_its_value() -> None:
    then, other = _branches("x")
    model = _model([helper.make_node("If", ["cond"], ["out"], then_branch=then, else_branch=other)],
                   [_value("cond", TP.BOOL, []), _value("x", TP.FLOAT, [3, 5])], [_value("out", TP.FLOAT, [3, 5])])
    executor = tg.compile(model)
    x = RNG.normal(0, 1, (3, 5)).astype(np.float32)
    for cond in (True, False, True):
        _check(model, {"cond": np.array(cond), "x": x}, executor)
    assert executor.compilations == 2
    fixed = tg.compile(model, input_values={"cond": np.array(False)})
    assert isinstance(fixed, tg.GraphExecutor)
    np.testing.assert_allclose(fixed.run({"x": x})[0], x - 1)


def _loop_body(with_exit: bool) -> onnx.GraphProto:
    """Carries ``acc`` (``acc + x * i``, reading ``x`` from outside), scans ``acc`` and, through a nested ``If``
    that reads the body's own ``acc``, ``relu(acc)`` or ``-acc`` by the parity of ``i``; with ``with_exit`` it
    continues while ``i < 3``."""
    relu = helper.make_graph([helper.make_node("Relu", ["acc_next"], ["r"])], "relu", [], [_value("r", TP.FLOAT, None)])
    neg = helper.make_graph([helper.make_node("Neg", ["acc_next"], ["n"])], "neg", [], [_value("n", TP.FLOAT, None)])
    nodes = [
        helper.make_node("Cast", ["i"], ["i_float"], to=TP.FLOAT),
        helper.make_node("Mul", ["x", "i_float"], ["step"]),
        helper.make_node("Add", ["acc", "step"], ["acc_next"]),
        helper.make_node("Constant", [], ["two"], value=helper.make_tensor("two", TP.INT64, [], [2])),
        helper.make_node("Mod", ["i", "two"], ["parity"]),
        helper.make_node("Cast", ["parity"], ["odd"], to=TP.BOOL),
        helper.make_node("If", ["odd"], ["shaped"], then_branch=relu, else_branch=neg),
    ]
    if with_exit:
        nodes += [helper.make_node("Constant", [], ["three"], value=helper.make_tensor("3", TP.INT64, [], [3])),
                  helper.make_node("Less", ["i", "three"], ["cond_out"])]
    else:
        nodes.append(helper.make_node("Identity", ["cond_in"], ["cond_out"]))
    nodes.append(helper.make_node("Identity", ["acc_next"], ["scan"]))
    return helper.make_graph(
        nodes, "body", [_value("i", TP.INT64, []), _value("cond_in", TP.BOOL, []), _value("acc", TP.FLOAT, None)],
        [_value("cond_out", TP.BOOL, []), _value("acc_next", TP.FLOAT, None), _value("scan", TP.FLOAT, None),
         _value("shaped", TP.FLOAT, None)])


@pytest.mark.parametrize("trips", [0, 1, 5])
def test_loop_with_a_constant_trip_count_unrolls(trips: int) -> None:
    trip = helper.make_tensor("trips", TP.INT64, [], [trips])
    body = _loop_body(with_exit=False)
    if trips == 0:  # no iteration: the scan outputs take the shapes the body declares
        for position in (2, 3):
            body.output[position].CopyFrom(_value(body.output[position].name, TP.FLOAT, [3, 5]))
    loop = helper.make_node("Loop", ["trips", "", "x0"], ["acc", "scans", "shaped"], body=body)
    model = _model([loop], [_value("x0", TP.FLOAT, [3, 5]), _value("x", TP.FLOAT, [3, 5])],
                   [_value("acc", TP.FLOAT, None), _value("scans", TP.FLOAT, None), _value("shaped", TP.FLOAT, None)],
                   [trip])
    feeds = {"x0": RNG.normal(0, 1, (3, 5)).astype(np.float32), "x": RNG.normal(0, 1, (3, 5)).astype(np.float32)}
    _check(model, feeds)


def test_loop_ends_on_a_condition_known_at_compile_time() -> None:
    """No trip count: the body's ``i < 3`` ends it after four iterations."""
    true = helper.make_tensor("go", TP.BOOL, [], [True])
    loop = helper.make_node("Loop", ["", "go", "x0"], ["acc", "scans", "shaped"], body=_loop_body(with_exit=True))
    model = _model([loop], [_value("x0", TP.FLOAT, [2, 3, 5]), _value("x", TP.FLOAT, [3, 5])],
                   [_value("acc", TP.FLOAT, None), _value("scans", TP.FLOAT, None), _value("shaped", TP.FLOAT, None)],
                   [true])
    feeds = {"x0": RNG.normal(0, 1, (2, 3, 5)).astype(np.float32), "x": RNG.normal(0, 1, (3, 5)).astype(np.float32)}
    executor = _check(model, feeds)
    assert executor.run(feeds)[1].shape == (4, 2, 3, 5)


def test_loop_trip_count_from_graph_inputs_specializes() -> None:
    """Range written as a Loop (onnx's function body of Range): the trip count comes from the inputs' values."""
    body = helper.make_graph(
        [helper.make_node("Identity", ["cond"], ["cond_out"]), helper.make_node("Add", ["prev", "delta"], ["cur"]),
         helper.make_node("Identity", ["prev"], ["range"])], "body",
        [_value("i", TP.INT64, []), _value("cond", TP.BOOL, []), _value("prev", TP.INT32, [])],
        [_value("cond_out", TP.BOOL, []), _value("cur", TP.INT32, []), _value("range", TP.INT32, [])])
    nodes = [
        helper.make_node("Sub", ["limit", "start"], ["span"]),
        helper.make_node("Cast", ["span"], ["span_f"], to=TP.FLOAT),
        helper.make_node("Cast", ["delta"], ["delta_f"], to=TP.FLOAT),
        helper.make_node("Div", ["span_f", "delta_f"], ["ratio"]),
        helper.make_node("Ceil", ["ratio"], ["ceiled"]),
        helper.make_node("Relu", ["ceiled"], ["count_f"]),
        helper.make_node("Cast", ["count_f"], ["count"], to=TP.INT64),
        helper.make_node("Cast", ["count_f"], ["go"], to=TP.BOOL),
        helper.make_node("Loop", ["count", "go", "start"], ["last", "out"], body=body),
    ]
    scalars = [_value(n, TP.INT32, []) for n in ("start", "limit", "delta")]
    model = _model(nodes, scalars, [_value("out", TP.INT32, None)])
    executor = tg.compile(model)
    for start, limit, delta in ((1, 8, 3), (10, 2, -2), (1, 8, 3), (5, 5, 1)):  # the last: no iteration
        feeds = {"start": np.array(start, np.int32), "limit": np.array(limit, np.int32),
                 "delta": np.array(delta, np.int32)}
        [got] = executor.run(feeds)
        np.testing.assert_array_equal(got, np.arange(start, limit, delta, dtype=np.int32))
    assert executor.compilations == 3


def test_loop_past_the_unroll_limit_is_a_clear_error() -> None:
    from tcomp.graph.frontend.onnx_control import MAX_UNROLLED_ITERATIONS

    trip = helper.make_tensor("trips", TP.INT64, [], [MAX_UNROLLED_ITERATIONS + 1])
    body = helper.make_graph(
        [helper.make_node("Identity", ["cond"], ["cond_out"]), helper.make_node("Neg", ["v"], ["v_out"])], "body",
        [_value("i", TP.INT64, []), _value("cond", TP.BOOL, []), _value("v", TP.FLOAT, [2])],
        [_value("cond_out", TP.BOOL, []), _value("v_out", TP.FLOAT, [2])])
    model = _model([helper.make_node("Loop", ["trips", "", "x"], ["y"], body=body)], [_value("x", TP.FLOAT, [2])],
                   [_value("y", TP.FLOAT, [2])], [trip])
    with pytest.raises(tg.GraphError, match=f"more than {MAX_UNROLLED_ITERATIONS} iterations"):
        tg.compile(model)


def test_unsupported_nodes_inside_subgraphs_are_listed_up_front() -> None:
    then = helper.make_graph([helper.make_node("RegexFullMatch", ["x"], ["s"]),
                              helper.make_node("Identity", ["x"], ["t"])], "then", [], [_value("t", TP.FLOAT, None)])
    other = helper.make_graph([helper.make_node("StringNormalizer", ["x"], ["u"])], "else", [],
                              [_value("u", TP.FLOAT, None)])
    model = _model([helper.make_node("If", ["cond"], ["out"], then_branch=then, else_branch=other, name="choose")],
                   [_value("cond", TP.BOOL, []), _value("x", TP.FLOAT, [4])], [_value("out", TP.FLOAT, None)])
    with pytest.raises(tg.UnsupportedOperatorError) as caught:
        tg.compile(model)
    message = str(caught.value)
    assert "choose/then_branch/RegexFullMatch_0 (RegexFullMatch" in message
    assert "choose/else_branch/StringNormalizer_0 (StringNormalizer" in message


def _scan_body() -> onnx.GraphProto:
    """State ``acc + a * w`` (``w`` read from outside); scan outputs ``acc`` and ``a - b``."""
    nodes = [helper.make_node("Mul", ["a", "w"], ["aw"]), helper.make_node("Add", ["acc", "aw"], ["acc_out"]),
             helper.make_node("Sub", ["a", "b_in"], ["diff"]), helper.make_node("Identity", ["acc_out"], ["trace"])]
    return helper.make_graph(
        nodes, "scan_body",
        [_value("acc", TP.FLOAT, None), _value("a", TP.FLOAT, None), _value("b_in", TP.FLOAT, None)],
        [_value("acc_out", TP.FLOAT, None), _value("trace", TP.FLOAT, None), _value("diff", TP.FLOAT, None)])


@pytest.mark.parametrize(("attrs", "a_shape", "b_shape"), [
    ({}, [5, 3, 4], [5, 3, 4]),
    ({"scan_input_axes": [1, -1], "scan_input_directions": [1, 0]}, [3, 5, 4], [3, 4, 5]),
    ({"scan_output_axes": [2, -3], "scan_output_directions": [1, 0]}, [5, 3, 4], [5, 3, 4]),
])
def test_scan_unrolls_along_its_axes_and_directions(attrs: dict[str, list[int]], a_shape: list[int],
                                                     b_shape: list[int]) -> None:
    scan = helper.make_node("Scan", ["acc0", "a", "b"], ["acc", "trace", "diff"], body=_scan_body(),
                            num_scan_inputs=2, **attrs)
    model = _model([scan], [_value("acc0", TP.FLOAT, [3, 4]), _value("a", TP.FLOAT, a_shape),
                            _value("b", TP.FLOAT, b_shape), _value("w", TP.FLOAT, [3, 4])],
                   [_value("acc", TP.FLOAT, None), _value("trace", TP.FLOAT, None), _value("diff", TP.FLOAT, None)],
                   opset=16)
    feeds = {name: RNG.normal(0, 1, shape).astype(np.float32)
             for name, shape in (("acc0", [3, 4]), ("a", a_shape), ("b", b_shape), ("w", [3, 4]))}
    _check(model, feeds)


def test_scan_8_scans_each_batch_entry() -> None:
    body = helper.make_graph(
        [helper.make_node("Add", ["s", "x"], ["s_out"]), helper.make_node("Mul", ["s_out", "x"], ["y"])], "body",
        [_value("s", TP.FLOAT, [4]), _value("x", TP.FLOAT, [4])],
        [_value("s_out", TP.FLOAT, [4]), _value("y", TP.FLOAT, [4])])
    scan = helper.make_node("Scan", ["", "s0", "x"], ["s", "ys"], body=body, num_scan_inputs=1, directions=[1])
    model = _model([scan], [_value("s0", TP.FLOAT, [2, 4]), _value("x", TP.FLOAT, [2, 5, 4])],
                   [_value("s", TP.FLOAT, [2, 4]), _value("ys", TP.FLOAT, [2, 5, 4])], opset=8)
    _check(model, {"s0": RNG.normal(0, 1, (2, 4)).astype(np.float32),
                   "x": RNG.normal(0, 1, (2, 5, 4)).astype(np.float32)})
