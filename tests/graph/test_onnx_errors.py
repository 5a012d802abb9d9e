"""Malformed and unsupported models fail at import with one clear ``GraphError``."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import tcomp.graph as tg


def small_model(opset: int = 13, input_shape: list[int | str] | None = None) -> onnx.ModelProto:
    w = numpy_helper.from_array(np.ones((4, 3, 3, 3), np.float32), "w")
    shape = np.array([1, -1], np.int64)
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("Reshape", ["r", "shape"], ["y"], name="flat"),
    ]
    graph = helper.make_graph(
        nodes, "small", [helper.make_tensor_value_info("x", TensorProto.FLOAT, input_shape or [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [w, numpy_helper.from_array(shape, "shape")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def test_small_model_compiles() -> None:
    executor = tg.compile(small_model())
    [y] = executor.run([np.ones((1, 3, 8, 8), np.float32)])
    assert y.shape == (1, 256)


# ---------------------------------------------------------------------------------------------------------------------
# malformed files
@pytest.mark.parametrize("data", [b"\xff\xff\xff\xff garbage", b"\x0a\xff\xff\xff\xff\x0f", b"not onnx at all"])
def test_garbage_bytes(data: bytes) -> None:
    with pytest.raises(tg.GraphError, match="malformed ONNX file"):
        tg.from_onnx(data)


def test_empty_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "empty.onnx"
    path.write_bytes(b"")
    with pytest.raises(tg.GraphError, match="no graph"):
        tg.from_onnx(path)


def test_missing_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(tg.GraphError, match="does not exist"):
        tg.from_onnx(tmp_path / "nothing.onnx")


def test_truncated_file() -> None:
    data = small_model().SerializeToString()
    with pytest.raises(tg.GraphError, match="malformed|never defined|reads|no outputs|raw data|needs"):
        tg.from_onnx(data[: len(data) // 2])


# ---------------------------------------------------------------------------------------------------------------------
# unsupported operators: all listed at once, before anything else
def test_unsupported_operators_listed_together() -> None:
    model = small_model()
    model.graph.node.insert(1, helper.make_node("GridSample", ["c", "w"], ["l"], name="my_grid"))
    model.graph.node.insert(2, helper.make_node("StringNormalizer", ["c"], ["n"], name="strings"))
    model.graph.node.insert(3, helper.make_node("Fancy", ["c"], ["f"], name="custom", domain="com.example"))
    model.graph.initializer[0].raw_data = b"broken"  # would fail later: the unsupported list comes first
    with pytest.raises(tg.UnsupportedOperatorError) as info:
        tg.from_onnx(model)
    message = str(info.value)
    for fragment in ("my_grid (GridSample, opset 13)", "strings (StringNormalizer, opset 13)",
                     "custom (com.example.Fancy"):
        assert fragment in message
    assert [name for name, _, _ in info.value.nodes] == ["my_grid", "strings", "custom"]


def test_old_opset_converts_where_the_definitions_are_known() -> None:
    # Conv-1, Relu-6 and Reshape-5 are the definitions in effect at opset 7, and tcomp implements them
    executor = tg.compile(small_model(opset=7))
    [y] = executor.run([np.ones((1, 3, 8, 8), np.float32)])
    assert y.shape == (1, 256)
    model = small_model(opset=6)
    model.graph.node.insert(2, helper.make_node("Add", ["r", "r"], ["s"], name="legacy_add", broadcast=0))
    with pytest.raises(tg.UnsupportedOperatorError, match=r"legacy_add \(Add, opset 6\).*onnx.version_converter"):
        tg.from_onnx(model)


def test_no_default_opset() -> None:
    model = small_model()
    del model.opset_import[:]
    model.opset_import.append(helper.make_opsetid("com.example", 1))
    with pytest.raises(tg.GraphError, match="no opset"):
        tg.from_onnx(model)


# ---------------------------------------------------------------------------------------------------------------------
# shapes
def test_dynamic_dimensions_need_input_shapes() -> None:
    model = small_model(input_shape=["N", 3, 8, 8])
    with pytest.raises(tg.GraphError, match=r"dynamic dimensions.*--input-shapes x:\[1,3,8,8\]"):
        tg.from_onnx(model)
    graph = tg.from_onnx(model, input_shapes={"x": [2, 3, 8, 8]})
    assert graph.types["x"].shape == (2, 3, 8, 8)


@pytest.mark.parametrize("shapes, message", [
    ({"z": [1, 3, 8, 8]}, "not inputs of the model"),
    ({"x": [1, 3, 8]}, "3 dimensions, the model declares 4"),
    ({"x": [1, 4, 8, 8]}, "the model fixes it to 3"),
    ({"x": [1, -3, 8, 8]}, "non-negative dimensions"),
    ({"x": "1,3,8,8"}, "list of ints"),
])
def test_bad_input_shapes(shapes: dict[str, object], message: str) -> None:
    with pytest.raises(tg.GraphError, match=message):
        tg.from_onnx(small_model(input_shape=["N", 3, 8, 8]), input_shapes=shapes)  # type: ignore[arg-type]


def test_negative_input_dimension() -> None:
    model = small_model()
    model.graph.input[0].type.tensor_type.shape.dim[2].dim_value = -8
    with pytest.raises(tg.GraphError, match="negative dimension"):
        tg.from_onnx(model)


def test_huge_input_is_refused_before_allocation() -> None:
    model = small_model()
    model.graph.input[0].type.tensor_type.shape.dim[2].dim_value = 1 << 40
    with pytest.raises(tg.GraphError, match="bytes"):
        tg.from_onnx(model)


# ---------------------------------------------------------------------------------------------------------------------
# graph structure
def test_dangling_input() -> None:
    model = small_model()
    model.graph.node[1].input[0] = "nowhere"
    with pytest.raises(tg.GraphError, match="reads 'nowhere'"):
        tg.from_onnx(model)


def test_cycle() -> None:
    model = small_model()
    model.graph.node[0].input[0] = "r"  # conv reads relu, relu reads conv
    with pytest.raises(tg.GraphError, match="cycle"):
        tg.from_onnx(model)


def test_value_defined_twice() -> None:
    model = small_model()
    model.graph.node[1].output[0] = "c"
    with pytest.raises(tg.GraphError, match="defined twice"):
        tg.from_onnx(model)


def test_undefined_output() -> None:
    model = small_model()
    model.graph.output[0].name = "ghost"
    with pytest.raises(tg.GraphError, match="never defined"):
        tg.from_onnx(model)


# ---------------------------------------------------------------------------------------------------------------------
# tensors and attributes
def test_raw_data_size_mismatch() -> None:
    model = small_model()
    model.graph.initializer[0].raw_data = model.graph.initializer[0].raw_data[:-4]
    with pytest.raises(tg.GraphError, match="needs 432 bytes of raw data, found 428"):
        tg.from_onnx(model)


def test_typed_data_count_mismatch() -> None:
    model = small_model()
    model.graph.initializer[1].ClearField("raw_data")
    model.graph.initializer[1].int64_data.extend([1, 2, 3])
    with pytest.raises(tg.GraphError, match="needs 2 values, int64_data holds 3"):
        tg.from_onnx(model)


@pytest.mark.parametrize("dims, message", [([-1, 3, 3, 3], "negative dimension"), ([1 << 20, 1 << 20, 3, 3], "bytes")])
def test_bad_initializer_dims(dims: list[int], message: str) -> None:
    model = small_model()
    del model.graph.initializer[0].dims[:]
    model.graph.initializer[0].dims.extend(dims)
    with pytest.raises(tg.GraphError, match=message):
        tg.from_onnx(model)


def test_unsupported_element_type() -> None:
    model = small_model()
    model.graph.initializer[0].data_type = TensorProto.STRING
    with pytest.raises(tg.GraphError, match="STRING is not supported"):
        tg.from_onnx(model)


@pytest.mark.parametrize("attribute, message", [
    (helper.make_attribute("strides", [0, 0]), "positive"),
    (helper.make_attribute("strides", 2.5), "must be INTS"),
    (helper.make_attribute("pads", [1, 1]), "4 non-negative ints"),
    (helper.make_attribute("group", 2), "groups"),
    (helper.make_attribute("kernel_shape", [5, 5]), "kernel_shape"),
    (helper.make_attribute("auto_pad", "MIDDLE"), "auto_pad"),
])
def test_bad_attributes(attribute: onnx.AttributeProto, message: str) -> None:
    model = small_model()
    conv = model.graph.node[0]
    kept = [a for a in conv.attribute if a.name != attribute.name]
    del conv.attribute[:]
    conv.attribute.extend([*kept, attribute])
    with pytest.raises(tg.GraphError, match=message):
        tg.from_onnx(model)


def test_missing_required_attribute() -> None:
    model = small_model()
    model.graph.node.append(helper.make_node("Concat", ["y", "y"], ["z"], name="cat"))
    model.graph.output[0].name = "z"
    with pytest.raises(tg.GraphError, match="attribute 'axis' is required"):
        tg.from_onnx(model)


def test_shape_input_must_be_constant() -> None:
    model = small_model()
    model.graph.input.append(helper.make_tensor_value_info("shape_in", TensorProto.INT64, [2]))
    model.graph.node[2].input[1] = "shape_in"
    with pytest.raises(tg.GraphError, match="must be known at compile time"):
        tg.from_onnx(model)


# ---------------------------------------------------------------------------------------------------------------------
# what the schema does not allow: onnxruntime refuses these models, and tcomp used to ignore the difference
def _relu_model(edit: object) -> onnx.ModelProto:
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="relu"), helper.make_node("Neg", ["r"], ["y"], name="neg")]
    graph = helper.make_graph(nodes, "relu", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    edit(model)  # type: ignore[operator]
    return model


def _extra_input(model: onnx.ModelProto) -> None:
    model.graph.node[0].input.append("x")


def _unknown_attribute(model: onnx.ModelProto) -> None:
    model.graph.node[0].attribute.append(helper.make_attribute("alpha", 0.5))


def _declared_output(model: onnx.ModelProto) -> None:
    model.graph.output[0].type.tensor_type.elem_type = TensorProto.INT64


def _declared_value(model: onnx.ModelProto) -> None:
    model.graph.value_info.append(helper.make_tensor_value_info("r", TensorProto.INT32, [2, 3]))


@pytest.mark.parametrize("edit, message", [
    (_extra_input, r"node relu \(Relu, opset 13\): 2 inputs; the operator takes at most 1"),
    (_unknown_attribute, r"node relu \(Relu, opset 13\): unknown attribute 'alpha' \(the operator's attributes: "
                         r"none\)"),
    (_declared_output, "graph output 'y' is declared int64, but its node computes float32"),
    (_declared_value, "value 'r' is declared int32, but its node computes float32"),
], ids=["extra input", "unknown attribute", "output dtype", "value dtype"])
def test_what_the_schema_does_not_allow_is_refused_as_onnxruntime_does(edit: object, message: str) -> None:
    import onnxruntime as ort

    model = _relu_model(edit)
    with pytest.raises(tg.GraphError, match=message):
        tg.from_onnx(model)
    options = ort.SessionOptions()
    options.log_severity_level = 4
    with pytest.raises(Exception):  # noqa: B017 - onnxruntime's own error types
        ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def test_an_opset_beyond_int32_is_a_graph_error() -> None:
    from tcomp.graph.frontend.onnx_common import schema_version

    assert schema_version("Relu", 13) == 13
    for opset in (2**40, 0, -1):
        with pytest.raises(tg.GraphError, match=f"opset {opset} is not an ONNX opset version"):
            schema_version("Relu", opset)  # onnx's get_schema raised TypeError for 2**40
    with pytest.raises(tg.GraphError, match="newer than this onnx package knows"):
        tg.from_onnx(_relu_model(lambda m: m.opset_import[0].__setattr__("version", 2**40)))
