"""Quantized convolutions on the integer GEMM (``tcomp/ops/quantized.py``: ``im2col``, ``quantized_conv2d``; the graph
passes ``integer_products``, ``quantized_weights`` and ``alter_layout``): ConvInteger and QDQ models exactly as
onnxruntime runs them, the operators against numpy, the errors, and the channels-last rows kept between
convolutions."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import tcomp
import tcomp.graph as tg
from tcomp import te
from tcomp.graph.infer import infer_types
from tcomp.graph.ir import Graph, GraphError, Node, TensorType, make_node
from tcomp.ops.cpu.common import CpuTarget
from tcomp.ops.cpu.dispatch import schedule_cpu
from tcomp.ops.cpu.quantized_matmul import integer_gemm_pays, panel_group, quantized_plan
from tcomp.ops.quantized import Window, conv_weight_matrix, im2col, pack_quantized_panels, quantized_conv2d
from tcomp.ops.utils import OpError
from tcomp.target import Target

RNG = np.random.default_rng(31)
TARGET = Target("llvm")
CPU = CpuTarget.of(TARGET)
# the passes rewrite where the CPU has vpdpbusd or pmaddwd at its register width; elsewhere the int32 conv2d stays
APPLIES = integer_gemm_pays(CPU)
X_ZERO = 131


# ------------------------------------------------------------------------------------------------------ references
def _onnxruntime(model: onnx.ModelProto, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session.run(None, dict(feeds))


def _windows(x: np.ndarray, pad_value: int, window: Window) -> np.ndarray:
    """``x[N, H, W, C]`` padded with ``pad_value``, as ``[N, OH, OW, KH, KW, C]``: every output pixel's window."""
    n, h, w, c = x.shape
    (kh, kw), (sh, sw), (top, left, bottom, right), (dh, dw) = window.kernel, window.strides, window.pads, \
        window.dilations
    padded = np.full((n, top + h + bottom, left + w + right, c), pad_value, x.dtype)
    padded[:, top:top + h, left:left + w] = x
    oh, ow = window.output(h, w)
    out = np.empty((n, oh, ow, kh, kw, c), x.dtype)
    for ry in range(kh):
        for rx in range(kw):
            rows = slice(ry * dh, ry * dh + (oh - 1) * sh + 1, sh)
            columns = slice(rx * dw, rx * dw + (ow - 1) * sw + 1, sw)
            out[:, :, :, ry, rx] = padded[:, rows, columns]
    return out


def _im2col_reference(x: np.ndarray, pad_value: int, window: Window) -> np.ndarray:
    windows = _windows(x, pad_value, window)
    n, oh, ow = windows.shape[:3]
    return windows.reshape(n * oh * ow, -1)


def _conv_reference(x: np.ndarray, weight: np.ndarray, x_zero: int, weight_zero: np.ndarray | int,
                    window: Window) -> np.ndarray:
    """The int32 convolution of ``x[N, C, H, W] - x_zero`` (padded with zeros) and ``weight[O, C, KH, KW] -
    weight_zero``, in int64 then narrowed."""
    offsets = x.astype(np.int64).transpose(0, 2, 3, 1) - x_zero
    windows = _windows(offsets, 0, window)
    kernel = weight.astype(np.int64) - np.asarray(weight_zero, np.int64)
    return np.einsum("nyxijc,ocij->noyx", windows, kernel).astype(np.int32)


def _kernel_ops(executor: tg.GraphExecutor | tg.SpecializingExecutor) -> list[str]:
    """The operators of every kernel of the compiled graph (the members of fused ones)."""
    graph = executor.graph
    assert graph is not None
    return [member.op for node in graph.nodes for member in node.members()]


def _gathering_windows(executor: tg.GraphExecutor | tg.SpecializingExecutor) -> list[Node]:
    """The ``im2col`` members of the compiled graph that gather windows (not the 1x1 ones that only move NCHW data
    into rows)."""
    graph = executor.graph
    assert graph is not None
    found = []
    for node in graph.nodes:
        for member in node.members():
            window = {key: member.attr(key) for key in ("kernel", "strides", "pads", "dilations")}
            if member.op == "im2col" and not Window.of("im2col", **window).pointwise:
                found.append(member)
    return found


def _compile_with_passes(model: onnx.ModelProto,
                         ) -> tuple[tg.GraphExecutor | tg.SpecializingExecutor, dict[str, Graph]]:
    """``model`` compiled, and the graph after each pass by the pass's name."""
    graphs: dict[str, Graph] = {}

    def dump(name: str, graph: Graph) -> None:
        graphs[name] = graph

    return tg.compile(model, dump=dump), graphs


# ---------------------------------------------------------------------------------------------------- ConvInteger
def _conv_integer(x_shape: list, weight: np.ndarray, weight_zero: np.ndarray | None, x_zero_input: bool,
                  **attrs: object) -> onnx.ModelProto:
    """``ConvInteger(x, w, zx, zw)``: ``zx`` a scalar input (where ``x_zero_input``) or the initializer
    ``X_ZERO``, ``zw`` a constant (none where None)."""
    inputs = [helper.make_tensor_value_info("x", TensorProto.UINT8, x_shape)]
    inits = [numpy_helper.from_array(weight, "w")]
    if x_zero_input:
        inputs.append(helper.make_tensor_value_info("zx", TensorProto.UINT8, []))
    else:
        inits.append(numpy_helper.from_array(np.array(X_ZERO, np.uint8), "zx"))
    names = ["x", "w", "zx"]
    if weight_zero is not None:
        inits.append(numpy_helper.from_array(weight_zero, "zw"))
        names.append("zw")
    node = helper.make_node("ConvInteger", names, ["y"], **attrs)
    graph = helper.make_graph([node], "conv_integer", inputs,
                              [helper.make_tensor_value_info("y", TensorProto.INT32, None)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 10)])


def _int8(shape: tuple) -> np.ndarray:
    return RNG.integers(-128, 128, shape).astype(np.int8)


# (x [N, C, H, W], output channels, kernel, ConvInteger attributes, zx an input, zw)
CONV_INTEGER_CASES = {
    "3x3 pad 1": ((2, 5, 7, 9), 17, (3, 3), {"pads": [1, 1, 1, 1]}, True, np.array(3, np.int8)),
    "3x3 stride 2 asymmetric pads": ((2, 13, 9, 7), 3, (3, 3), {"strides": [2, 2], "pads": [0, 1, 2, 0]}, False, None),
    "5x3 dilation 2": ((1, 5, 9, 7), 17, (5, 3), {"dilations": [2, 2], "pads": [2, 1, 1, 2]}, True, None),
    "5x3 strides 2x1": ((1, 3, 7, 9), 3, (5, 3), {"strides": [2, 1]}, False, np.array(-5, np.int8)),
    "1x1": ((2, 13, 7, 9), 17, (1, 1), {}, True, None),
    "1x1 stride 2": ((1, 5, 7, 9), 3, (1, 1), {"strides": [2, 2]}, False, None),
    "1x1 padded": ((1, 5, 7, 9), 3, (1, 1), {"pads": [1, 0, 0, 1]}, True, None),
    "same upper stride 2": ((1, 13, 7, 9), 17, (3, 3), {"auto_pad": "SAME_UPPER", "strides": [2, 2]}, True, None),
    "kernel the whole input": ((2, 64, 3, 5), 3, (3, 5), {}, False, None),
}


@pytest.mark.parametrize("case", list(CONV_INTEGER_CASES))
def test_conv_integer_matches_onnxruntime(case: str) -> None:
    """A ConvInteger with a constant int8 weight runs as ``im2col`` (none for a 1x1 stride-1 unpadded window) and
    ``quantized_matmul`` on channels-last rows, the padding the input's zero point: exact, as onnxruntime."""
    x_shape, channels, kernel, attrs, zero_input, weight_zero = CONV_INTEGER_CASES[case]
    shift = 0 if weight_zero is None else int(weight_zero)
    weight = RNG.integers(max(-128, -128 + shift), min(128, 128 + shift), (channels, x_shape[1], *kernel))
    model = _conv_integer(list(x_shape), weight.astype(np.int8), weight_zero, zero_input, **attrs)
    executor = tg.compile(model)
    ops = _kernel_ops(executor)
    if APPLIES:
        assert "quantized_matmul" in ops and "conv2d" not in ops
        pointwise = kernel == (1, 1) and "strides" not in attrs and "pads" not in attrs
        assert bool(_gathering_windows(executor)) != pointwise, ops
    else:
        assert "conv2d" in ops
    feeds = {"x": RNG.integers(0, 256, x_shape).astype(np.uint8)}
    if zero_input:
        feeds["zx"] = np.array(77, np.uint8)
    (got,) = executor.run(feeds)
    (want,) = _onnxruntime(model, feeds)
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize(("x_shape", "attrs"), [((1, 5, 11), {"pads": [1, 1]}),
                                               ((2, 13, 30), {"strides": [2], "pads": [1, 0], "dilations": [2]})])
def test_one_dimensional_conv_integer(x_shape: tuple, attrs: dict) -> None:
    """A 1-D ConvInteger (imported as a 2-D convolution over its operands viewed with a row of one) runs on the
    integer GEMM too: exact, as onnxruntime."""
    weight = RNG.integers(-126, 128, (17, x_shape[1], 3)).astype(np.int8)  # minus its zero point 2: within int8
    model = _conv_integer(list(x_shape), weight, np.array(2, np.int8), True, **attrs)
    executor = tg.compile(model)
    ops = _kernel_ops(executor)
    assert ("quantized_matmul" in ops and "conv2d" not in ops) == APPLIES
    feeds = {"x": RNG.integers(0, 256, x_shape).astype(np.uint8), "zx": np.array(201, np.uint8)}
    (got,) = executor.run(feeds)
    (want,) = _onnxruntime(model, feeds)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("target", ["llvm -num-cores=2 -mattr=-avx512vnni,-avxvnni", "llvm -mcpu=znver3 -num-cores=2"],
                         ids=["without-vnni", "avx2"])
def test_conv_integer_on_int16_pairs(target: str) -> None:
    """Without VNNI the weight is packed in int16 pairs for ``pmaddwd`` (AVX-512 or AVX2 code): the same windows,
    exact."""
    if not integer_gemm_pays(CpuTarget.of(Target(target))):
        pytest.skip("the integer GEMM does not pay for this target")
    model = _conv_integer([2, 13, 9, 7], _int8((17, 13, 3, 3)), None, True, strides=[2, 1], pads=[0, 1, 2, 0],
                          dilations=[1, 2])
    executor = tg.compile(model, target)
    assert "quantized_matmul" in _kernel_ops(executor) and _gathering_windows(executor)
    feeds = {"x": RNG.integers(0, 256, (2, 13, 9, 7)).astype(np.uint8), "zx": np.array(255, np.uint8)}
    (got,) = executor.run(feeds)
    np.testing.assert_array_equal(got, _onnxruntime(model, feeds)[0])


@pytest.mark.parametrize("dtype", ["int8", "uint8"])
def test_conv_integer_weight_zero_points(dtype: str) -> None:
    """A weight zero point per output channel (int8; onnxruntime's ConvInteger takes none, so against numpy) and
    uint8 weights about 128: their offsets fit int8, so they run on the integer GEMM too."""
    window = Window.of("test", (3, 3), (1, 2), (1, 0, 1, 2), (1, 1))
    if dtype == "int8":
        weight = RNG.integers(-100, 100, (17, 5, 3, 3)).astype(np.int8)
        weight_zero = RNG.integers(-20, 20, 17).astype(np.int8)
        zero_shape: tuple = (17, 1, 1, 1)
    else:
        weight = RNG.integers(0, 256, (17, 5, 3, 3)).astype(np.uint8)
        weight_zero = np.array(128, np.uint8)
        zero_shape = ()
    model = _conv_integer([2, 5, 7, 9], weight, weight_zero, False, strides=[1, 2], pads=[1, 0, 1, 2])
    executor = tg.compile(model)
    assert ("quantized_matmul" in _kernel_ops(executor)) == APPLIES
    x = RNG.integers(0, 256, (2, 5, 7, 9)).astype(np.uint8)
    (got,) = executor.run({"x": x})
    np.testing.assert_array_equal(got, _conv_reference(x, weight, X_ZERO, weight_zero.reshape(zero_shape), window))


def test_conv_integer_the_passes_leave() -> None:
    """Weight offsets beyond int8 (zero point -100 under weights up to 127) and two groups keep the int32
    convolution; still exact."""
    weight = _int8((6, 5, 3, 3))
    weight[0, 0, 0, 0] = 127
    wide = _conv_integer([1, 5, 7, 9], weight, np.array(-100, np.int8), False, pads=[1, 1, 1, 1])
    grouped = _conv_integer([1, 6, 7, 9], _int8((6, 3, 3, 3)), None, False, group=2)
    for model, shape in ((wide, (1, 5, 7, 9)), (grouped, (1, 6, 7, 9))):
        executor = tg.compile(model)
        ops = _kernel_ops(executor)
        assert "quantized_matmul" not in ops and "im2col" not in ops and "conv2d" in ops
        x = RNG.integers(0, 256, shape).astype(np.uint8)
        (got,) = executor.run({"x": x})
        np.testing.assert_array_equal(got, _onnxruntime(model, {"x": x})[0])


def test_conv_integer_with_a_symbolic_batch() -> None:
    """A symbolic batch: each batch size compiles its own windows over the one packed weight."""
    weight = _int8((7, 5, 3, 3))
    model = _conv_integer(["batch", 5, 7, 9], weight, None, False, pads=[0, 1, 2, 0], strides=[1, 2])
    executor = tg.compile(model)
    assert isinstance(executor, tg.SpecializingExecutor)
    window = Window.of("test", (3, 3), (1, 2), (0, 1, 2, 0), (1, 1))
    for batch in (1, 3):
        x = RNG.integers(0, 256, (batch, 5, 7, 9)).astype(np.uint8)
        (got,) = executor.run({"x": x})
        np.testing.assert_array_equal(got, _conv_reference(x, weight, X_ZERO, 0, window))


# ------------------------------------------------------------------------------------------------------------ QDQ
def _float_conv_net(x_shape: tuple) -> onnx.ModelProto:
    """conv + bias + relu, conv + bias, a residual add, relu, 2x2 max pool, 1x1 conv + bias + relu, global average
    pool, flatten, Gemm: random weights."""

    def weight(name: str, shape: tuple, scale: float) -> onnx.TensorProto:
        return numpy_helper.from_array(RNG.normal(0, scale, shape).astype(np.float32), name)

    channels = x_shape[1]
    inits = [weight("w1", (8, channels, 3, 3), 0.3), weight("b1", (8,), 0.1),
             weight("w2", (8, 8, 3, 3), 0.15), weight("b2", (8,), 0.1),
             weight("w3", (13, 8, 1, 1), 0.3), weight("b3", (13,), 0.1),
             weight("wf", (5, 13), 0.3), weight("bf", (5,), 0.1)]
    node = helper.make_node
    nodes = [node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]), node("Relu", ["c1"], ["r1"]),
             node("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1]), node("Add", ["c2", "r1"], ["sum"]),
             node("Relu", ["sum"], ["r2"]), node("MaxPool", ["r2"], ["pooled"], kernel_shape=[2, 2], strides=[2, 2]),
             node("Conv", ["pooled", "w3", "b3"], ["c3"]), node("Relu", ["c3"], ["r3"]),
             node("GlobalAveragePool", ["r3"], ["mean"]), node("Flatten", ["mean"], ["flat"]),
             node("Gemm", ["flat", "wf", "bf"], ["y"], transB=1)]
    graph = helper.make_graph(nodes, "conv_net", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [x_shape[0], 5])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def _quantize_static(model: onnx.ModelProto, x_shape: tuple, tmp_path: Path, per_channel: bool = False,
                     ) -> onnx.ModelProto:
    """``model`` quantized by onnxruntime's ``quantize_static`` (QDQ, uint8 activations, int8 weights), calibrated
    on three random draws of its input ``x``."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter([{"x": RNG.normal(0, 1, x_shape).astype(np.float32)} for _ in range(3)])

        def get_next(self) -> dict | None:
            return next(self.batches, None)

    onnx.save(model, tmp_path / "float.onnx")
    quantize_static(tmp_path / "float.onnx", tmp_path / "qdq.onnx", Reader(), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=per_channel)
    return onnx.load(tmp_path / "qdq.onnx")


def _assert_within_steps(model: onnx.ModelProto, got: np.ndarray, want: np.ndarray) -> None:
    """Within three steps of the quantization of the output ``y``: an activation computed an ulp apart may round to
    the next step, and the output moves by a few of its own."""
    [last] = [n for n in model.graph.node if n.op_type == "DequantizeLinear" and n.output[0] == "y"]
    step = float(numpy_helper.to_array(next(i for i in model.graph.initializer if i.name == last.input[1])))
    assert got.shape == want.shape
    assert np.abs(got - want).max() <= 3 * step


@pytest.mark.parametrize("per_channel", [False, True])
def test_statically_quantized_conv_net(per_channel: bool, tmp_path: Path) -> None:
    """A float conv net quantized by onnxruntime's ``quantize_static`` (QDQ, uint8 activations, int8 weights, per
    tensor or per output channel): its convolutions run on the integer GEMM, and its Gemm where its transposed
    weight is quantized per tensor; against onnxruntime on the same quantized model, within a few steps of the
    output's quantization."""
    x_shape = (2, 3, 11, 13)
    model = _quantize_static(_float_conv_net(x_shape), x_shape, tmp_path, per_channel)
    assert sum(n.op_type == "Conv" for n in model.graph.node) == 3
    executor = tg.compile(model)
    ops = _kernel_ops(executor)
    if APPLIES:
        # the Gemm (a transposed weight) too where its weight is quantized per tensor
        products = 3 if per_channel else 4
        assert ops.count("quantized_matmul") == products and len(_gathering_windows(executor)) == 2
        assert "conv2d" not in ops and ("packed_matvec" in ops) == per_channel
    x = RNG.normal(0, 1, x_shape).astype(np.float32)
    (got,) = executor.run({"x": x})
    (want,) = _onnxruntime(model, {"x": x})
    _assert_within_steps(model, got, want)


# ------------------------------------------------------------------------------------------------ the operators
def _window(kernel: tuple, strides: tuple, pads: tuple, dilations: tuple) -> Window:
    return Window.of("test", kernel, strides, pads, dilations)


IM2COL_CASES = {
    "C=1 3x3 pads stride 2": ((2, 7, 9, 1), _window((3, 3), (2, 2), (1, 0, 2, 1), (1, 1))),
    "C=3 dilation 2 strides 2x1": ((2, 7, 9, 3), _window((3, 3), (2, 1), (1, 2, 0, 1), (2, 2))),
    "C=64 5x3": ((1, 6, 5, 64), _window((5, 3), (1, 2), (2, 1, 2, 0), (1, 2))),
    "C=13 1x1 stride 2": ((1, 7, 9, 13), _window((1, 1), (2, 2), (0, 0, 0, 0), (1, 1))),
    # few channels, padded first: a kernel row's taps one run; many channels: a bounds test per tap
    "C=3 7x7 stride 2 runs": ((1, 11, 12, 3), _window((7, 7), (2, 2), (3, 3, 3, 3), (1, 1))),
    "C=16 3x3 pad 1": ((1, 5, 6, 16), _window((3, 3), (1, 1), (1, 1, 1, 1), (1, 1))),
}


@pytest.mark.parametrize("channels_last", [True, False])
@pytest.mark.parametrize("case", list(IM2COL_CASES))
def test_im2col_gathers_the_windows(case: str, channels_last: bool) -> None:
    """The rows ``[N * OH * OW, KH * KW * C]``, steps of K (kernel row, kernel column, channel), the pad value
    outside; from ``[N, H, W, C]`` or (``channels_last=False``) ``[N, C, H, W]`` data."""
    shape, window = IM2COL_CASES[case]
    value = RNG.integers(0, 256, shape).astype(np.uint8)
    stored = value if channels_last else value.transpose(0, 3, 1, 2).copy()
    x = te.placeholder(stored.shape, name="x", dtype="uint8")
    zero = te.placeholder((), name="zero", dtype="int32")
    out = im2col(x, zero, window, channels_last=channels_last)
    module = tcomp.build(schedule_cpu(out), [x, zero, out], target="llvm", check_bounds=True)
    got = np.empty(tuple(int(d) for d in out.shape), np.uint8)
    module(stored, np.array(201, np.int32), got)
    np.testing.assert_array_equal(got, _im2col_reference(value, 201, window))


def test_im2col_of_float_data() -> None:
    """Any element type: float NCHW data as rows (what ``alter_layout`` makes of values entering channels-last rows,
    a 1x1 window), and padded windows of it, the int32 pad value converted."""
    value = RNG.standard_normal((2, 3, 5, 7)).astype(np.float32)
    x = te.placeholder(value.shape, name="x")
    zero = te.placeholder((), name="zero", dtype="int32")
    pointwise = _window((1, 1), (1, 1), (0, 0, 0, 0), (1, 1))
    padded = _window((3, 2), (2, 1), (1, 0, 1, 1), (1, 3))
    rows = im2col(x, None, pointwise, channels_last=False, name="rows")
    windows = im2col(x, zero, padded, channels_last=False, name="windows")
    assert rows.dtype == windows.dtype == "float32"
    module = tcomp.build(schedule_cpu([rows, windows]), [x, zero, rows, windows], target="llvm", check_bounds=True)
    got_rows = np.empty(tuple(int(d) for d in rows.shape), np.float32)
    got_windows = np.empty(tuple(int(d) for d in windows.shape), np.float32)
    module(value, np.array(-3, np.int32), got_rows, got_windows)
    channels_last = value.transpose(0, 2, 3, 1)
    np.testing.assert_array_equal(got_rows, channels_last.reshape(-1, 3))
    np.testing.assert_array_equal(got_windows, _im2col_reference(channels_last, -3, padded))


@pytest.mark.parametrize(("shape", "channels", "window"), [
    ((2, 5, 7, 9), 17, _window((3, 3), (2, 1), (1, 0, 2, 1), (1, 2))),
    ((1, 13, 6, 5), 3, _window((5, 3), (1, 2), (2, 1, 2, 1), (1, 1))),
    ((1, 64, 3, 3), 33, _window((1, 1), (1, 1), (0, 0, 0, 0), (1, 1))),
])
def test_quantized_conv2d_is_exact(shape: tuple, channels: int, window: Window) -> None:
    """``quantized_conv2d`` (NCHW in and out) with the weight packed as ``quantized_weights`` packs it, against
    numpy's int32 convolution."""
    n, c, h, w = shape
    weight = _int8((channels, c, *window.kernel))
    matrix = conv_weight_matrix(weight)
    assert matrix.shape == (window.kernel[0] * window.kernel[1] * c, channels)
    oh, ow = window.output(h, w)
    plan = quantized_plan(n * oh * ow, channels, matrix.shape[0], CPU)
    panels_value = pack_quantized_panels(matrix, plan.blocking.nr, plan.Kp, panel_group(CPU))
    x = te.placeholder(shape, name="x", dtype="uint8")
    panels = te.placeholder(panels_value.shape, name="panels", dtype=str(panels_value.dtype))
    sums = te.placeholder((channels,), name="sums", dtype="int32")
    zero = te.placeholder((), name="zero", dtype="int32")
    out = quantized_conv2d(x, panels, sums, zero, window, channels)
    module = tcomp.build(schedule_cpu(out), [x, panels, sums, zero, out], target=TARGET, check_bounds=True)
    x_value = RNG.integers(0, 256, shape).astype(np.uint8)
    got = np.empty((n, channels, oh, ow), np.int32)
    module(x_value, panels_value, matrix.astype(np.int32).sum(axis=0, dtype=np.int32), np.array(99, np.int32), got)
    np.testing.assert_array_equal(got, _conv_reference(x_value, weight, 99, 0, window))


def test_conv_weight_matrix_order() -> None:
    """Row ``(ry KW + rx) C + c`` of the matrix is the weight's tap ``(ry, rx)`` of channel ``c``."""
    weight = _int8((4, 3, 2, 5))
    matrix = conv_weight_matrix(weight)
    for ry, rx, c, o in ((0, 0, 0, 0), (1, 3, 2, 1), (1, 4, 1, 3)):
        assert matrix[(ry * 5 + rx) * 3 + c, o] == weight[o, c, ry, rx]


# ------------------------------------------------------------------------------------------------------- errors
@pytest.mark.parametrize(("arguments", "message"), [
    (((0, 3), 1, 0, 1), r"test: kernel must be positive, got \(0, 3\)"),
    (((3, 3), (1, 0), 0, 1), r"test: strides must be positive, got \(1, 0\)"),
    (((3, 3), 1, 0, (1, -1)), r"test: dilations must be positive, got \(1, -1\)"),
    (((3, 3), 1, (0, -1, 0, 0), 1), r"test: pad.* non-negative, got \(0, -1, 0, 0\)"),
    (((3, 3), 1, (0, 1, 0), 1), "test: padding must be an int, a 2-tuple"),
    (((3, 3, 3), 1, 0, 1), "test: kernel must be an int or a tuple of 2 ints"),
])
def test_window_of_rejects_bad_windows(arguments: tuple, message: str) -> None:
    with pytest.raises(OpError, match=message):
        Window.of("test", *arguments)


def test_im2col_errors() -> None:
    window = _window((3, 3), (1, 1), (1, 1, 1, 1), (1, 1))
    x = te.placeholder((1, 4, 4, 2), name="x", dtype="uint8")
    zero = te.placeholder((), name="zero", dtype="int32")
    with pytest.raises(OpError, match=r"im2col: argument pad_value must have 0 dimensions, got shape \(1\)"):
        im2col(x, te.placeholder((1,), name="zeros", dtype="int32"), window)
    with pytest.raises(OpError, match="im2col: .*pad_value must be int32"):
        im2col(x, te.placeholder((), name="narrow", dtype="uint8"), window)
    with pytest.raises(OpError, match=r"im2col: a window with pads \(1, 1, 1, 1\) needs a pad value"):
        im2col(x, None, window)
    with pytest.raises(OpError, match=r"im2col: argument x must have 4 dimensions, got shape \(4, 4, 2\)"):
        im2col(te.placeholder((4, 4, 2), name="x3", dtype="uint8"), zero, window)
    with pytest.raises(OpError, match=r"im2col: the window .*dilations=\(2, 2\).* does not fit x\(1, 4, 4, 2\)"):
        im2col(x, zero, _window((3, 3), (1, 1), (0, 0, 0, 0), (2, 2)))
    with pytest.raises(OpError, match=r"im2col: x\(n, 4, 4, 2\) must have a constant shape"):
        im2col(te.placeholder((te.var("n"), 4, 4, 2), name="xn", dtype="uint8"), zero, window)


def _graph(node: Node, x_shape: tuple, params: dict[str, np.ndarray]) -> Graph:
    return Graph("g", ("x",), (node.outputs[0],), (node,), params, {"x": TensorType(x_shape, "uint8")})


def _conv_params(weight: np.ndarray) -> dict[str, np.ndarray]:
    matrix = conv_weight_matrix(weight)
    depth = -(-matrix.shape[0] // panel_group(CPU)) * panel_group(CPU)
    return {"panels": pack_quantized_panels(matrix, 16, depth, panel_group(CPU)),
            "sums": matrix.sum(axis=0, dtype=np.int32), "zero": np.array(7, np.int32)}


WINDOW_ATTRS = {"kernel": (3, 3), "strides": (1, 1), "pads": (0, 0, 0, 0), "dilations": (1, 1)}


@pytest.mark.parametrize(("x_shape", "changes", "message"), [
    ((1, 2, 2, 4), {}, r"node conv \(quantized_conv2d\): the window Window\(.*\) does not fit a 2 x 4 input"),
    ((1, 2, 5, 4), {"dilations": (3, 1)}, "does not fit a 5 x 4 input"),
    ((1, 2, 5, 4), {"strides": (0, 1)}, r"node conv \(quantized_conv2d\): .*strides must be positive"),
    ((1, 2, 5, 4), {"pads": (0, -1, 0, 0)}, r"node conv \(quantized_conv2d\): .*non-negative"),
    ((1, 2, 5, 5), {"kernel": (3, 5)}, "do not match the panels"),
    ((2, 5, 5), {}, r"expects \[N, C, H, W\] data, got uint8\[2, 5, 5\]"),
])
def test_quantized_conv2d_node_errors(x_shape: tuple, changes: dict, message: str) -> None:
    """Windows that do not fit the input, or do not match the packed weight: a GraphError naming the node."""
    params = _conv_params(_int8((6, 2, 3, 3)))
    good = make_node("quantized_conv2d", "conv", ["x", "panels", "sums", "zero"], ["y"], columns=6, **WINDOW_ATTRS)
    assert infer_types(_graph(good, (1, 2, 5, 4), params)).types["y"] == TensorType((1, 6, 3, 2), "int32")
    node = make_node("quantized_conv2d", "conv", ["x", "panels", "sums", "zero"], ["y"], columns=6,
                     **{**WINDOW_ATTRS, **changes})
    with pytest.raises(GraphError, match=message):
        infer_types(_graph(node, x_shape, params))


def test_depthwise_node_of_bytes() -> None:
    """A blocked depthwise node reads uint8 data (a float result) and pads it with ``pad_value``; other types and a
    pad value for float data are errors."""
    weight = {"w": np.ones((1, 1, 3, 3, 1, 8), np.float32)}
    attrs = {"strides": (1, 1), "pads": (1, 1, 1, 1), "dilations": (1, 1)}

    def typed(dtype: str, **changes: int) -> Graph:
        node = make_node("depthwise_conv2d_nchwc", "dw", ["x", "w"], ["y"], **attrs, **changes)
        return infer_types(Graph("g", ("x",), ("y",), (node,), weight, {"x": TensorType((1, 1, 5, 5, 8), dtype)}))

    assert typed("uint8", pad_value=9).types["y"] == TensorType((1, 1, 5, 5, 8), "float32")
    with pytest.raises(GraphError, match=r"node dw \(depthwise_conv2d_nchwc\): data .* must be of the kernel's"):
        typed("int8")
    with pytest.raises(GraphError, match="pad_value 9 must be 0, or a byte for uint8 data"):
        typed("float32", pad_value=9)
    with pytest.raises(GraphError, match="pad_value 300 must be"):
        typed("uint8", pad_value=300)


@pytest.mark.parametrize(("x_shape", "pad", "changes", "message"), [
    ((1, 5, 2, 2), "zero", {}, r"node cols \(im2col\): the window Window\(.*\) does not fit a 5 x 2 input"),
    ((1, 5, 4, 2), "zero", {"kernel": (0, 3)}, r"node cols \(im2col\): .*kernel must be positive"),
    ((1, 5, 4, 2), "sums", {}, r"node cols \(im2col\): .*pad value, got uint8\[1, 5, 4, 2\] and int32\[6\]"),
    ((1, 5, 4, 2), "", {"pads": (1, 0, 0, 0)}, r"a window with pads \(1, 0, 0, 0\) needs a pad value"),
])
def test_im2col_node_errors(x_shape: tuple, pad: str, changes: dict, message: str) -> None:
    params = _conv_params(_int8((6, 2, 3, 3)))
    good = make_node("im2col", "cols", ["x", "zero"], ["rows"], **WINDOW_ATTRS)
    assert infer_types(_graph(good, (1, 5, 4, 2), params)).types["rows"] == TensorType((6, 18), "uint8")
    nchw = make_node("im2col", "cols", ["x", "zero"], ["rows"], channels_last=False, **WINDOW_ATTRS)
    assert infer_types(_graph(nchw, (1, 2, 5, 4), params)).types["rows"] == TensorType((6, 18), "uint8")
    node = make_node("im2col", "cols", ["x", pad], ["rows"], **{**WINDOW_ATTRS, **changes})
    with pytest.raises(GraphError, match=message):
        infer_types(_graph(node, x_shape, params))


# -------------------------------------------------------------------------------------------------- alter_layout
def _qdq_conv_chain() -> onnx.ModelProto:
    """``Q(x)`` -> conv 3x3 pad 1 -> relu -> ``Q`` -> conv 3x3 stride 2, both weights dequantized int8 constants:
    two quantized convolutions with the requantized activation between them."""
    inits = [numpy_helper.from_array(_int8((6, 5, 3, 3)), "w1"), numpy_helper.from_array(_int8((7, 6, 3, 3)), "w2")]
    for name, value in (("sw", np.array(0.02, np.float32)), ("zw", np.array(0, np.int8)),
                        ("sx", np.array(0.05, np.float32)), ("zx", np.array(128, np.uint8)),
                        ("sr", np.array(0.5, np.float32)), ("zr", np.array(0, np.uint8))):
        inits.append(numpy_helper.from_array(value, name))
    node = helper.make_node
    nodes = [node("QuantizeLinear", ["x", "sx", "zx"], ["xq"]), node("DequantizeLinear", ["xq", "sx", "zx"], ["xd"]),
             node("DequantizeLinear", ["w1", "sw", "zw"], ["w1d"]),
             node("DequantizeLinear", ["w2", "sw", "zw"], ["w2d"]),
             node("Conv", ["xd", "w1d"], ["c1"], pads=[1, 1, 1, 1]), node("Relu", ["c1"], ["r1"]),
             node("QuantizeLinear", ["r1", "sr", "zr"], ["rq"]), node("DequantizeLinear", ["rq", "sr", "zr"], ["rd"]),
             node("Conv", ["rd", "w2d"], ["y"], strides=[2, 2])]
    graph = helper.make_graph(nodes, "chain", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 5, 9, 7])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def _between(graph: Graph, first: Node, second: Node) -> list[Node]:
    """The nodes on the paths from ``first``'s output to ``second``'s data input."""
    producers = graph.producers()
    found: list[Node] = []
    pending = [second.inputs[0]]
    while pending:
        node = producers.get(pending.pop())
        if node is None or node is first or node in found:
            continue
        found.append(node)
        pending.extend(node.inputs)
    return found


@pytest.mark.skipif(not APPLIES, reason="the integer GEMM does not pay on this CPU")
def test_rows_stay_between_quantized_convolutions() -> None:
    """After ``alter_layout`` the activation between two quantized convolutions stays in channels-last rows: the
    relu and requantization run on the rows and the second convolution's windows are gathered from them (no
    transpose or layout transform between); the result converts back to NCHW once, at the end."""
    model = _qdq_conv_chain()
    executor, graphs = _compile_with_passes(model)
    laid_out = graphs["alter_layout"]
    products = [n for n in laid_out.nodes if n.op == "quantized_matmul"]
    assert len(products) == 2 and not any(n.op in ("quantized_conv2d", "conv2d") for n in laid_out.nodes)
    path = _between(laid_out, *products)
    ops = [n.op for n in path]
    assert "relu" in ops and "im2col" in ops and "cast" in ops
    assert not {"transpose", "layout_transform"} & set(ops), ops
    assert all(n.attr("channels_last", True) for n in path if n.op == "im2col")
    assert all(laid_out.type_of(n.outputs[0]).ndim == 2 for n in path if n.op not in ("reshape", "im2col"))
    x = RNG.normal(0, 3, (2, 5, 9, 7)).astype(np.float32)
    (got,) = executor.run({"x": x})
    (want,) = _onnxruntime(model, {"x": x})
    # the two convolutions are exact; their float scales may round an ulp apart
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4 * np.abs(want).max())


def test_dynamically_quantized_conv_net_reads_rows(tmp_path: Path) -> None:
    """onnxruntime's ``quantize_dynamic`` of a conv net (``DynamicQuantizeLinear`` before every ``ConvInteger``): the
    range of each activation is reduced from the rows it is held in, with no transform back to NCHW; the results
    within a few steps of onnxruntime's."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    x_shape = (1, 3, 11, 13)
    onnx.save(_float_conv_net(x_shape), tmp_path / "float.onnx")
    quantize_dynamic(tmp_path / "float.onnx", tmp_path / "dynamic.onnx", weight_type=QuantType.QInt8,
                     op_types_to_quantize=["Conv"])
    model = onnx.load(tmp_path / "dynamic.onnx")
    assert sum(n.op_type == "ConvInteger" for n in model.graph.node) == 3
    executor, graphs = _compile_with_passes(model)
    if APPLIES:
        laid_out = graphs["alter_layout"]
        ranges = [n for n in laid_out.nodes if n.op in ("max", "min")]
        # the input's range is taken in NCHW (it was never rows); every later one from rows
        assert len(ranges) == 6 and sum(laid_out.type_of(n.inputs[0]).ndim == 2 for n in ranges) == 4
    x = RNG.normal(0, 1, x_shape).astype(np.float32)
    (got,) = executor.run({"x": x})
    (want,) = _onnxruntime(model, {"x": x})
    np.testing.assert_allclose(got, want, rtol=0, atol=0.05 * np.abs(want).max())


def _float_inverted_residual(x_shape: tuple, expanded: int, expansion_relu6: bool = True) -> onnx.ModelProto:
    """MobileNetV2's inverted residual: 1x1 expansion + relu6, depthwise 3x3 + relu6, 1x1 projection, the residual
    added; random weights. Without ``expansion_relu6`` the expansion is linear (its quantized values then have a
    zero point above 0)."""
    channels = x_shape[1]

    def weight(name: str, shape: tuple) -> onnx.TensorProto:
        return numpy_helper.from_array(RNG.normal(0, 0.3, shape).astype(np.float32), name)

    inits = [weight("we", (expanded, channels, 1, 1)), weight("be", (expanded,)),
             weight("wd", (expanded, 1, 3, 3)), weight("bd", (expanded,)),
             weight("wp", (channels, expanded, 1, 1)), weight("bp", (channels,)),
             numpy_helper.from_array(np.array(0.0, np.float32), "low"),
             numpy_helper.from_array(np.array(6.0, np.float32), "high")]
    node = helper.make_node
    expansion = node("Clip", ["e", "low", "high"], ["e6"]) if expansion_relu6 else node("Identity", ["e"], ["e6"])
    nodes = [node("Conv", ["x", "we", "be"], ["e"]), expansion,
             node("Conv", ["e6", "wd", "bd"], ["d"], group=expanded, pads=[1, 1, 1, 1]),
             node("Clip", ["d", "low", "high"], ["d6"]), node("Conv", ["d6", "wp", "bp"], ["p"]),
             node("Add", ["p", "x"], ["y"])]
    graph = helper.make_graph(nodes, "inverted_residual",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, x_shape)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


@pytest.mark.parametrize(("expanded", "expansion_relu6"), [(24, True), (144, True), (40, False)])
def test_depthwise_convolutions_between_int8_ones_read_rows(expanded: int, expansion_relu6: bool,
                                                            tmp_path: Path) -> None:
    """A QDQ inverted residual: the depthwise convolution between the two int8 1x1 convolutions (it stays float)
    reads the rows as one block of all channels (``NCHW{C}c``, the same bytes: no layout transform), in chunks of
    vectors where that block is wide, and reads them as bytes (``quantized_depthwise``; padded with the zero point,
    above 0 after a linear expansion); against onnxruntime within a few steps of the output's quantization."""
    x_shape = (1, 16, 9, 11)
    model = _quantize_static(_float_inverted_residual(x_shape, expanded, expansion_relu6), x_shape, tmp_path)
    executor, graphs = _compile_with_passes(model)
    if APPLIES:
        laid_out = graphs["alter_layout"]
        products = [n for n in laid_out.nodes if n.op == "quantized_matmul"]
        assert len(products) == 2
        path = _between(laid_out, *products)
        [depthwise] = [n for n in path if n.op == "depthwise_conv2d_nchwc"]
        assert laid_out.type_of(depthwise.inputs[0]).shape == (1, 1, 9, 11, expanded)
        moved = [n for n in path if n.op in ("transpose", "layout_transform")
                 and not all(i in laid_out.params for i in n.inputs)]  # the kernel's own is folded later
        assert not moved, moved
        final = graphs["quantized_depthwise"]
        [depthwise] = [n for n in final.nodes if n.op == "depthwise_conv2d_nchwc"]
        assert final.type_of(depthwise.inputs[0]).dtype == "uint8"
        assert (depthwise.attr("pad_value", 0) > 0) == (not expansion_relu6)
    x = RNG.normal(0, 1, x_shape).astype(np.float32)
    (got,) = executor.run({"x": x})
    (want,) = _onnxruntime(model, {"x": x})
    _assert_within_steps(model, got, want)
