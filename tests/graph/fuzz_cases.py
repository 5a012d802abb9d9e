"""Mutations of valid models for the import fuzz test, and a runner (``python -m tests.graph.fuzz_cases``).

Each mutation is ``(name, bytes, must_fail)``: the model file after the mutation, and whether it is invalid by
construction (wrong raw-data sizes, negative or huge dimensions, dangling inputs, cycles, bad attributes). Blind
mutations (truncations, byte flips) may happen to leave a valid model. The runner compiles every case with a time
limit and prints one JSON line per case: ``{"name", "outcome": "ok" | "graph_error" | "<exception type>", ...}``.
"""

from __future__ import annotations

import json
import signal
import sys
import time
from collections.abc import Callable, Iterator

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

Case = tuple[str, bytes, bool]


def base_model() -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "w"),
        numpy_helper.from_array(rng.standard_normal(4).astype(np.float32), "b"),
        numpy_helper.from_array(np.array([1, 64], np.int64), "shape"),
        numpy_helper.from_array(rng.standard_normal((64, 5)).astype(np.float32), "fc"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv", pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("Reshape", ["r", "shape"], ["f"], name="flat"),
        helper.make_node("MatMul", ["f", "fc"], ["m"], name="fc"),
        helper.make_node("Softmax", ["m"], ["y"], name="softmax", axis=1),
    ]
    graph = helper.make_graph(nodes, "fuzz", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 5])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def _mutated(edit: Callable[[onnx.ModelProto], None]) -> bytes:
    model = base_model()
    edit(model)
    return model.SerializeToString()


def _set_attr(node_index: int, attribute: onnx.AttributeProto) -> Callable[[onnx.ModelProto], None]:
    def edit(model: onnx.ModelProto) -> None:
        node = model.graph.node[node_index]
        kept = [a for a in node.attribute if a.name != attribute.name]
        del node.attribute[:]
        node.attribute.extend([*kept, attribute])

    return edit


def _dims(init_index: int, dims: list[int]) -> Callable[[onnx.ModelProto], None]:
    def edit(model: onnx.ModelProto) -> None:
        del model.graph.initializer[init_index].dims[:]
        model.graph.initializer[init_index].dims.extend(dims)

    return edit


def _input_dim(position: int, value: int) -> Callable[[onnx.ModelProto], None]:
    def edit(model: onnx.ModelProto) -> None:
        model.graph.input[0].type.tensor_type.shape.dim[position].dim_value = value

    return edit


def _raw(init_index: int, delta: int) -> Callable[[onnx.ModelProto], None]:
    def edit(model: onnx.ModelProto) -> None:
        tensor = model.graph.initializer[init_index]
        tensor.raw_data = tensor.raw_data[:delta] if delta < 0 else tensor.raw_data + b"\0" * delta

    return edit


def _rename_input(node_index: int, position: int, name: str) -> Callable[[onnx.ModelProto], None]:
    def edit(model: onnx.ModelProto) -> None:
        model.graph.node[node_index].input[position] = name

    return edit


def _drop_initializer(index: int) -> Callable[[onnx.ModelProto], None]:
    def edit(model: onnx.ModelProto) -> None:
        del model.graph.initializer[index]

    return edit


def _elem_type(code: int) -> Callable[[onnx.ModelProto], None]:
    def edit(model: onnx.ModelProto) -> None:
        model.graph.input[0].type.tensor_type.elem_type = code

    return edit


def _opset(version: int) -> Callable[[onnx.ModelProto], None]:
    def edit(model: onnx.ModelProto) -> None:
        model.opset_import[0].version = version

    return edit


def _shape_value(values: list[int]) -> Callable[[onnx.ModelProto], None]:
    def edit(model: onnx.ModelProto) -> None:
        model.graph.initializer[2].CopyFrom(numpy_helper.from_array(np.array(values, np.int64), "shape"))

    return edit


INVALID: dict[str, Callable[[onnx.ModelProto], None]] = {
    "raw_data_short": _raw(0, -4),
    "raw_data_long": _raw(0, 8),
    "raw_data_bias_empty": _raw(1, -16),
    "init_negative_dim": _dims(0, [4, -3, 3, 3]),
    "init_huge_dims": _dims(0, [1 << 30, 1 << 30, 3, 3]),
    "init_wrong_rank": _dims(0, [108]),
    "input_negative_dim": _input_dim(2, -8),
    "input_huge_dim": _input_dim(3, 1 << 45),
    "input_zero_dim": _input_dim(0, 0),
    "dangling_input": _rename_input(1, 0, "missing_value"),
    "dangling_weight": _drop_initializer(0),
    "cycle": _rename_input(0, 0, "r"),
    "self_loop": _rename_input(1, 0, "r"),
    "attr_zero_stride": _set_attr(0, helper.make_attribute("strides", [0, 0])),
    "attr_negative_pad": _set_attr(0, helper.make_attribute("pads", [-1, -1, -1, -1])),
    "attr_wrong_type": _set_attr(0, helper.make_attribute("strides", "two")),
    "attr_short_list": _set_attr(0, helper.make_attribute("dilations", [1])),
    "attr_bad_group": _set_attr(0, helper.make_attribute("group", 0)),
    "attr_huge_dilation": _set_attr(0, helper.make_attribute("dilations", [1 << 40, 1 << 40])),
    "attr_kernel_mismatch": _set_attr(0, helper.make_attribute("kernel_shape", [7, 7])),
    "attr_softmax_axis": _set_attr(4, helper.make_attribute("axis", 9)),
    "reshape_mismatch": _shape_value([3, 7]),
    "reshape_huge": _shape_value([1 << 62, 1 << 62]),
    "reshape_two_minus_one": _shape_value([-1, -1]),
    "elem_type_undefined": _elem_type(0),
    "elem_type_string": _elem_type(TensorProto.STRING),
    "opset_ancient": _opset(3),
    "opset_future": _opset(10_000),
}


def cases(seed: int = 0, truncations: int = 24, flips: int = 24) -> Iterator[Case]:
    for name, edit in INVALID.items():
        yield name, _mutated(edit), True
    data = base_model().SerializeToString()
    rng = np.random.default_rng(seed)
    for cut in sorted({int(c) for c in rng.integers(1, len(data), truncations)}):
        yield f"truncated_{cut}", data[:cut], False
    for index in range(flips):
        mutated = bytearray(data)
        for position in rng.integers(0, len(data), 3):
            mutated[int(position)] = int(rng.integers(0, 256))
        yield f"flipped_{index}", bytes(mutated), False


def _on_alarm(signum: int, frame: object) -> None:
    raise TimeoutError("the case took too long")


def run_all(per_case_seconds: int = 30) -> None:
    import tcomp.graph as tg

    signal.signal(signal.SIGALRM, _on_alarm)
    for name, data, must_fail in cases():
        start = time.perf_counter()
        signal.alarm(per_case_seconds)
        try:
            tg.compile(data)
            outcome = "ok"
        except tg.GraphError:
            outcome = "graph_error"
        except Exception as exc:  # noqa: BLE001 - reported to the test, which fails on it
            outcome = f"{type(exc).__name__}: {exc}"[:300]
        finally:
            signal.alarm(0)
        print(json.dumps({"name": name, "outcome": outcome, "must_fail": must_fail,
                          "seconds": round(time.perf_counter() - start, 3)}), flush=True)


if __name__ == "__main__":
    run_all(int(sys.argv[1]) if len(sys.argv) > 1 else 30)
