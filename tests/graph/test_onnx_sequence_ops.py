"""ONNX sequences and optionals (``frontend/onnx_sequence.py``), resolved at import, against onnxruntime on models
whose inputs and outputs are tensors: every way to split, concatenate, insert, erase and index (negative positions
included), sequences built by loops and branches, ``SequenceMap`` bodies, optionals, positions given as graph inputs
(the executor specializes on them), and every error."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import tcomp.graph as tg
from tests.graph.ort_reference import assert_same, run_both

RNG = np.random.default_rng(31)
X = RNG.standard_normal((3, 7, 5)).astype(np.float32)


def _model(nodes: list[onnx.NodeProto], constants: dict[str, np.ndarray] | None = None,
           inputs: dict[str, np.ndarray] | None = None, opset: int = 18) -> onnx.ModelProto:
    inputs = {"x": X} if inputs is None else inputs
    declared = [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)
                for n, a in inputs.items()]
    graph = helper.make_graph(nodes, "sequences", declared, [onnx.ValueInfoProto(name="y")],
                              [numpy_helper.from_array(v, n) for n, v in (constants or {}).items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _check(model: onnx.ModelProto, inputs: dict[str, np.ndarray] | None = None) -> np.ndarray:
    got, want = run_both(model, {"x": X} if inputs is None else inputs)
    assert_same(got[0], want[0], 1e-6, 1e-6, "y")
    return got[0]


def _node(op: str, inputs: list[str], outputs: list[str], **attrs: Any) -> onnx.NodeProto:
    return helper.make_node(op, inputs, outputs, **attrs)


@pytest.mark.parametrize("split, attrs, concat", [
    (None, {"axis": 1}, {"axis": 1}),
    (None, {"axis": -2, "keepdims": 0}, {"axis": 1, "new_axis": 1}),
    (np.array(3, np.int64), {"axis": 1}, {"axis": -2}),
    (np.array([1, 4, 2], np.int32), {"axis": 1}, {"axis": 1}),
    (None, {"axis": 2}, {"axis": 0, "new_axis": 1}),
])
def test_split_to_sequence_then_concat(split: np.ndarray | None, attrs: dict[str, Any],
                                       concat: dict[str, Any]) -> None:
    constants = {"split": split} if split is not None else {}
    nodes = [_node("SplitToSequence", ["x", "split" if split is not None else ""], ["s"], **attrs),
             _node("ConcatFromSequence", ["s"], ["y"], **concat)]
    _check(_model(nodes, constants))


def test_construct_insert_erase_at_length() -> None:
    a, b = (RNG.standard_normal((2, 3)).astype(np.float32) for _ in range(2))
    constants = {"b": b, "front": np.array(0, np.int64), "back": np.array(-1, np.int32), "two": np.array(2, np.int64)}
    nodes = [_node("SequenceConstruct", ["x", "x"], ["s0"]),
             _node("SequenceInsert", ["s0", "b", "front"], ["s1"]),    # b x x
             _node("SequenceInsert", ["s1", "x"], ["s2"]),              # b x x x
             _node("SequenceErase", ["s2", "back"], ["s3"]),            # b x x
             _node("SequenceErase", ["s3"], ["s4"]),                    # b x
             _node("SequenceInsert", ["s4", "b", "two"], ["s5"]),       # b x b
             _node("SequenceAt", ["s5", "back"], ["last"]),
             _node("SequenceLength", ["s5"], ["n"]),
             _node("Cast", ["n"], ["nf"], to=TensorProto.FLOAT),
             _node("Mul", ["last", "nf"], ["y"])]
    got = _check(_model(nodes, constants, {"x": a}), {"x": a})
    np.testing.assert_allclose(got, b * 3)


def test_a_loop_builds_a_sequence() -> None:
    """The pattern PyTorch's TorchScript exporter writes for a list filled in a loop."""
    body = helper.make_graph(
        [_node("SequenceAt", ["parts", "i"], ["part"]), _node("Relu", ["part"], ["r"]),
         _node("SequenceInsert", ["acc", "r"], ["acc_out"]), _node("Identity", ["cond"], ["cond_out"])],
        "body", [helper.make_tensor_value_info("i", TensorProto.INT64, []),
                 helper.make_tensor_value_info("cond", TensorProto.BOOL, []),
                 helper.make_tensor_sequence_value_info("acc", TensorProto.FLOAT, None)],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_sequence_value_info("acc_out", TensorProto.FLOAT, None)])
    nodes = [_node("SplitToSequence", ["x", "two"], ["parts"], axis=1),
             _node("SequenceLength", ["parts"], ["n"]),
             _node("SequenceEmpty", [], ["empty"], dtype=TensorProto.FLOAT),
             _node("Loop", ["n", "", "empty"], ["out"], body=body),
             _node("ConcatFromSequence", ["out"], ["y"], axis=1)]
    got = _check(_model(nodes, {"two": np.array(2, np.int64)}))
    np.testing.assert_array_equal(got, np.maximum(X, 0))


def test_if_branches_give_sequences() -> None:
    def branch(name: str, op: str) -> onnx.GraphProto:
        return helper.make_graph([_node(op, ["x"], ["v"]), _node("SequenceConstruct", ["v", "x"], ["s"])], name, [],
                                 [helper.make_tensor_sequence_value_info("s", TensorProto.FLOAT, None)])

    for flag in (True, False):
        nodes = [_node("If", ["c"], ["s"], then_branch=branch("then", "Neg"), else_branch=branch("else", "Abs")),
                 _node("ConcatFromSequence", ["s"], ["y"], axis=0)]
        _check(_model(nodes, {"c": np.array(flag)}))


def test_sequence_map_with_a_tensor_and_a_sequence() -> None:
    body = helper.make_graph(
        [_node("Add", ["a", "b"], ["sum"]), _node("Shape", ["a"], ["shape"])], "body",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, None),
         helper.make_tensor_value_info("b", TensorProto.FLOAT, None)],
        [helper.make_tensor_value_info("sum", TensorProto.FLOAT, None),
         helper.make_tensor_value_info("shape", TensorProto.INT64, None)])
    bias = RNG.standard_normal((3, 1, 5)).astype(np.float32)
    nodes = [_node("SplitToSequence", ["x", "sizes"], ["parts"], axis=1),
             _node("SequenceMap", ["parts", "bias"], ["sums", "shapes"], body=body),
             _node("ConcatFromSequence", ["sums"], ["y"], axis=1)]
    _check(_model(nodes, {"sizes": np.array([1, 4, 2], np.int64), "bias": bias}))


def test_optionals() -> None:
    present = helper.make_graph([_node("OptionalGetElement", ["opt"], ["v"]), _node("Neg", ["v"], ["w"])], "then", [],
                                [helper.make_tensor_value_info("w", TensorProto.FLOAT, None)])
    absent = helper.make_graph([_node("Identity", ["x"], ["w"])], "else", [],
                               [helper.make_tensor_value_info("w", TensorProto.FLOAT, None)])
    for holds in (True, False):
        optional = (_node("Optional", ["x"], ["opt"]) if holds else
                    _node("Optional", [], ["opt"], type=helper.make_tensor_type_proto(TensorProto.FLOAT, None)))
        nodes = [optional, _node("OptionalHasElement", ["opt"], ["has"]),
                 _node("If", ["has"], ["y"], then_branch=present, else_branch=absent)]
        got = _check(_model(nodes))
        np.testing.assert_array_equal(got, -X if holds else X)


def test_a_position_from_a_graph_input_specializes() -> None:
    nodes = [_node("SplitToSequence", ["x"], ["s"], axis=1), _node("SequenceAt", ["s", "p"], ["y"])]
    model = _model(nodes, inputs={"x": X, "p": np.array(0, np.int64)})
    executor = tg.compile(model)
    for position in (-1, 3, 0):
        [got] = executor.run({"x": X, "p": np.array(position, np.int64)})
        np.testing.assert_array_equal(got, X[:, position:position + 1 if position != -1 else None])
    assert executor.compilations == 3


@pytest.mark.parametrize("nodes, constants, message", [
    ([_node("SplitToSequence", ["x"], ["s"], axis=1), _node("SequenceAt", ["s", "p"], ["y"])],
     {"p": np.array(7, np.int64)}, "position 7 is out of range for a sequence of 7"),
    ([_node("SequenceEmpty", [], ["s"]), _node("SequenceErase", ["s"], ["t"]),
      _node("ConcatFromSequence", ["t"], ["y"], axis=0)], {}, "cannot erase from an empty sequence"),
    ([_node("SequenceEmpty", [], ["s"]), _node("ConcatFromSequence", ["s"], ["y"], axis=0)], {},
     "cannot concatenate an empty sequence"),
    ([_node("SequenceConstruct", ["x", "i"], ["s"]), _node("SequenceAt", ["s", "p"], ["y"])],
     {"i": np.ones((2,), np.int64), "p": np.array(0, np.int64)}, "a sequence of float32 cannot hold"),
    ([_node("SplitToSequence", ["x", "split"], ["s"], axis=1), _node("ConcatFromSequence", ["s"], ["y"], axis=1)],
     {"split": np.array([2, 2], np.int64)}, r"split \[2, 2\] does not add up to the axis' length 7"),
    ([_node("SplitToSequence", ["x"], ["y"], axis=1)], {}, "graph output 'y' is a sequence \\(of 7 tensors\\)"),
    ([_node("SplitToSequence", ["big"], ["s"]), _node("ConcatFromSequence", ["s"], ["y"], axis=0)],
     {"big": np.zeros(100000, np.float32)}, "a sequence of 100000 tensors: .* stops at 1024"),
    ([_node("SplitToSequence", ["x"], ["s"], axis=1), _node("Relu", ["s"], ["y"])], {},
     "is a sequence, where a tensor is needed"),
    ([_node("SequenceAt", ["x", "p"], ["y"])], {"p": np.array(0, np.int64)}, "must be a sequence"),
    ([_node("Optional", [], ["o"], type=helper.make_tensor_type_proto(TensorProto.FLOAT, None)),
      _node("OptionalGetElement", ["o"], ["y"])], {}, "is an empty optional|the optional .* is empty"),
])
def test_errors(nodes: list[onnx.NodeProto], constants: dict[str, np.ndarray], message: str) -> None:
    with pytest.raises(tg.GraphError, match=message):
        tg.compile(_model(nodes, constants))


def test_sequence_inputs_are_refused_clearly() -> None:
    graph = helper.make_graph([_node("ConcatFromSequence", ["s"], ["y"], axis=0)], "g",
                              [helper.make_tensor_sequence_value_info("s", TensorProto.FLOAT, None)],
                              [onnx.ValueInfoProto(name="y")])
    with pytest.raises(tg.GraphError, match="graph input 's' is not a tensor \\(sequence_type\\)"):
        tg.compile(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]))
