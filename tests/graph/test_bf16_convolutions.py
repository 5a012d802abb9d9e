"""Convolutions under bfloat16 products (``alter_layout``: ``-precision=bf16``): a float32 convolution of one group
and a constant weight runs as the product of its channels-last windows with the weight in bfloat16 panels, except
the 3x3 ones Winograd computes and the narrow or small ones; each is checked against numpy's product of the rounded
operands (every kind of layer, and random windows, strides, paddings and dilations: 150 examples passed when
written, 6 per run), and a real torchvision export against PyTorch."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import onnx
from hypothesis import assume, event, example, given, settings
from hypothesis import strategies as st
from numpy.lib.stride_tricks import sliding_window_view
from onnx import TensorProto, helper, numpy_helper

import tcomp.graph as tg
from tcomp.graph.ir import Graph
from tcomp.target import Precision
from tests.graph.test_cpu_precision import BF16
from tests.graph.test_torch_models import DATA, input_sets

RNG = np.random.default_rng(5)

# (name, output channels, kernel, strides, pads, dilations, on bf16 rows): the input 3 x 45 x 47
LAYERS = [
    ("stem", 64, 7, 2, 3, 1, True),  # from NCHW data: the windows of 3 channels
    ("pointwise", 96, 1, 1, 0, 1, True),  # the rows themselves
    ("strided", 64, 3, 2, 1, 1, True),
    ("dilated", 80, 3, 1, 0, 2, True),
    ("narrow_on_rows", 32, 1, 1, 0, 1, True),  # narrow, but its input is held as rows: no transform to pay for
    ("winograd", 64, 3, 1, 1, 1, False),  # F(4x4, 3x3) in float32 does a quarter of the multiply-adds
    ("narrow", 24, 1, 1, 0, 1, False),  # 24 columns of blocked data: too narrow a product to transform it
    ("few_rows", 128, 3, 2, 1, 1, False),  # 16 pixels: a product of too few rows
]


def _model() -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    nodes, inits, weights = [], [], {}
    channels, source = 3, "x"
    for name, out, kernel, stride, pad, dilation, _ in LAYERS:
        w = (RNG.standard_normal((out, channels, kernel, kernel)) / np.sqrt(channels * kernel * kernel))
        b = RNG.standard_normal(out) * 0.1
        weights[name] = w.astype(np.float32)
        weights[f"{name}_b"] = b.astype(np.float32)
        inits += [numpy_helper.from_array(weights[name], f"w_{name}"),
                  numpy_helper.from_array(weights[f"{name}_b"], f"b_{name}")]
        nodes.append(helper.make_node("Conv", [source, f"w_{name}", f"b_{name}"], [name], name=f"conv_{name}",
                                      kernel_shape=[kernel, kernel], strides=[stride, stride], pads=[pad] * 4,
                                      dilations=[dilation, dilation]))
        channels, source = out, name
    graph = helper.make_graph(nodes, "bf16_convolutions",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 45, 47])],
                              [helper.make_tensor_value_info(name, TensorProto.FLOAT, None) for name, *_ in LAYERS],
                              inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), weights


FLOAT_CONVS = frozenset({"conv2d_nchwc", "conv2d"})


def _conv(x: np.ndarray, w: np.ndarray, stride: int, pad: int, dilation: int) -> tuple[np.ndarray, np.ndarray]:
    """float64 ``conv2d(x, w)`` and ``conv2d(|x|, |w|)`` (the scale of its sums), one image."""
    padded = np.pad(x[0].astype(np.float64), ((0, 0), (pad, pad), (pad, pad)))
    span = (dilation * (w.shape[2] - 1) + 1, dilation * (w.shape[3] - 1) + 1)
    windows = sliding_window_view(padded, span, axis=(1, 2))[:, ::stride, ::stride, ::dilation, ::dilation]
    product = np.einsum("chwij,ocij->ohw", windows, w.astype(np.float64))
    scale = np.einsum("chwij,ocij->ohw", np.abs(windows), np.abs(w.astype(np.float64)))
    return product[None], scale[None]


def _rounded(values: np.ndarray) -> np.ndarray:
    return values.astype(ml_dtypes.bfloat16).astype(np.float32)


def test_convolutions_on_bf16_rows_compute_the_rounded_products() -> None:
    model, weights = _model()
    graphs: dict[str, Graph] = {}
    executor = tg.compile(model, target=BF16, dump=lambda stage, graph: graphs.setdefault(stage, graph))
    graph = graphs["alter_layout"]
    products = {node.name for node in graph.nodes if node.op == "panel_matmul"
                and graph.type_of(node.inputs[1]).dtype == "bfloat16"}
    assert products == {f"conv_{name}" for name, *_, on_rows in LAYERS if on_rows}
    blocked = [node.name for node in graph.nodes if node.op == "conv2d_nchwc"]
    assert blocked == ["conv_winograd", "conv_narrow", "conv_few_rows"]
    assert [node.name for node in graphs["winograd"].nodes if node.op == "conv2d_winograd_nchwc"] == \
        ["conv_winograd"]
    x = RNG.standard_normal((1, 3, 45, 47)).astype(np.float32)
    outputs = dict(zip(executor.output_names, executor.run({"x": x})))
    source = x
    for name, _, _, stride, pad, dilation, on_rows in LAYERS:
        # each layer from tcomp's own input to it: the bound is one product's rounding, not a chain's
        w = weights[name]
        want, scale = _conv(_rounded(source) if on_rows else source, _rounded(w) if on_rows else w, stride, pad,
                            dilation)
        want += weights[f"{name}_b"][None, :, None, None]
        got = outputs[name]
        assert got.shape == want.shape, name
        steps = w[0].size
        # float32 sums of ``steps`` terms (Winograd's transforms round a few times more)
        bound = (steps if on_rows else 8 * steps) * 2.0 ** -23 * (scale + 1)
        assert np.all(np.abs(got - want) <= bound), name
        if on_rows:  # the operands were rounded: float32's products differ by far more
            unrounded, _ = _conv(source, w, stride, pad, dilation)
            assert np.abs(unrounded + weights[f"{name}_b"][None, :, None, None] - want).max() > 1e-4, name
        source = got


def test_a_resnet_in_bfloat16_matches_pytorch() -> None:
    """torchvision's ResNet-50 stem and first stage: every convolution but the 3x3 ones (Winograd's) on bfloat16
    rows, with no layout transform between them."""
    graphs: dict[str, Graph] = {}
    path = DATA / "torch_models" / "resnet_stages.onnx"
    inputs, wanted = input_sets(path)[0]
    executor = tg.compile(path, target=BF16, dump=lambda stage, graph: graphs.setdefault(stage, graph))
    ops = [node.op for node in graphs["winograd"].nodes]
    assert ops.count("panel_matmul") == 1 + 3 * 2 + 1 and ops.count("conv2d_winograd_nchwc") == 3
    # kernels that move data: the stem's windows, a Winograd layer's input and output in each block, the result
    moves = [node for node in graphs["fuse_ops"].nodes
             if {member.op for member in node.members()} & {"layout_transform", "im2col"}]
    assert len(moves) == 1 + 3 * 2 + 1
    [got] = executor.run(inputs)
    assert 1e-6 < float(np.abs(got - wanted).max() / np.abs(wanted).max()) <= Precision.BF16.relative_tolerance


def test_batches_of_a_dynamic_cnn_share_their_bfloat16_panels() -> None:
    """The ResNet stages with a symbolic batch: each batch size compiles apart, and every convolution's panels are
    one array for all of them (``SharedConstants``), not a copy per batch size."""
    path = DATA / "torch_models" / "resnet_stages.onnx"
    model = onnx.load(path)
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "batch"
    model.graph.output[0].type.tensor_type.shape.dim[0].dim_param = "batch"
    inputs, wanted = input_sets(path)[0]
    executor = tg.compile(model, target=BF16, symbolic_dimensions=False)
    assert isinstance(executor, tg.SpecializingExecutor)
    [single] = executor.run(inputs)
    [double] = executor.run({"images": np.concatenate([inputs["images"]] * 2)})
    np.testing.assert_array_equal(double, np.concatenate([single] * 2))
    assert float(np.abs(single - wanted).max() / np.abs(wanted).max()) <= Precision.BF16.relative_tolerance
    first, second = [{name: value for name, value in e.program.params.items() if value.dtype == ml_dtypes.bfloat16}
                     for e in executor.specializations.values()]
    assert len(first) == 8 and sorted(first) == sorted(second)
    assert all(second[name] is first[name] for name in first)


@settings(max_examples=6, deadline=None, derandomize=True, database=None)
@given(channels=st.integers(60, 140), out_channels=st.integers(64, 140), kernel=st.sampled_from([(1, 1), (1, 3), (2, 2),
       (3, 3), (5, 4), (7, 7)]), stride=st.integers(1, 3), dilation=st.integers(1, 2), pad=st.integers(0, 3),
       height=st.integers(5, 19), width=st.integers(5, 19), batch=st.integers(1, 2), seed=st.integers(0, 2**31))
@example(channels=60, out_channels=64, kernel=(2, 2), stride=1, dilation=2, pad=2, height=5, width=8, batch=1,
         seed=0)  # bands of both kinds
def test_random_convolutions_on_bf16_rows(channels: int, out_channels: int, kernel: tuple[int, int], stride: int,
                                          dilation: int, pad: int, height: int, width: int, batch: int,
                                          seed: int) -> None:
    """Any window, stride, padding and dilation, odd channel counts and planes, one or two images: the product of
    the rounded operands, or (a layer the rules keep blocked) float32's result. A dilated layer whose padding leaves
    some taps dead is split into bands of output pixels (``simplify``), each a convolution of its own, on rows or
    not: each result then matches one of the two."""
    span = (dilation * (kernel[0] - 1) + 1, dilation * (kernel[1] - 1) + 1)
    assume(height + 2 * pad >= span[0] and width + 2 * pad >= span[1])
    rng = np.random.default_rng(seed)
    w = (rng.standard_normal((out_channels, channels, *kernel)) / np.sqrt(channels * kernel[0] * kernel[1]))
    w = w.astype(np.float32)
    node = helper.make_node("Conv", ["x", "w"], ["y"], name="conv", kernel_shape=list(kernel), strides=[stride] * 2,
                            pads=[pad] * 4, dilations=[dilation] * 2)
    graph = helper.make_graph([node], "conv", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                             [batch, channels, height, width])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(w, "w")])
    graphs: dict[str, Graph] = {}
    executor = tg.compile(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), target=BF16,
                          dump=lambda stage, graph: graphs.setdefault(stage, graph))
    ops = {n.op for n in graphs["alter_layout"].nodes}
    # float32: blocked, or in NCHW where the output channels take no block of at least half a vector (67 = prime)
    kinds = [on_rows for on_rows, found in ((True, "panel_matmul" in ops), (False, bool(ops & FLOAT_CONVS))) if found]
    event(f"on rows: {kinds}")
    x = rng.standard_normal((batch, channels, height, width)).astype(np.float32)
    [got] = executor.run({"x": x})
    for image in range(batch):
        source, result = x[image:image + 1], got[image:image + 1]
        matched = np.zeros(result.shape, bool)
        for on_rows in kinds:
            want, scale = _conv(_rounded(source) if on_rows else source, _rounded(w) if on_rows else w, stride, pad,
                                dilation)
            assert result.shape == want.shape
            bound = (1 if on_rows else 8) * w[0].size * 2.0 ** -23 * (scale + 1)
            matched |= np.abs(result - want) <= bound
        assert matched.all()
