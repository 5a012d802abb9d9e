"""The elementwise math family (``frontend/onnx_math.py``, ``opdefs/math.py``) against onnxruntime on random inputs
of odd shapes, with every attribute, and broadcasting for the binary operators."""

from __future__ import annotations

import numpy as np
import pytest

from tests.graph.ort_reference import check_node

RNG = np.random.default_rng(11)
SHAPE = (3, 5, 7)


def _floats(low: float, high: float, shape: tuple[int, ...] = SHAPE, dtype: str = "float32") -> np.ndarray:
    return RNG.uniform(low, high, shape).astype(dtype)


UNARY = [
    ("Sin", -4, 4), ("Cos", -4, 4), ("Tan", -1.4, 1.4), ("Asin", -1, 1), ("Acos", -1, 1), ("Atan", -9, 9),
    ("Sinh", -5, 5), ("Cosh", -5, 5), ("Asinh", -9, 9), ("Acosh", 1, 9), ("Atanh", -0.99, 0.99),
    ("Reciprocal", 0.5, 4), ("Floor", -9, 9), ("Ceil", -9, 9), ("Softsign", -9, 9), ("Mish", -9, 9),
]


@pytest.mark.parametrize(("op", "low", "high"), UNARY, ids=[u[0] for u in UNARY])
def test_float_unary(op: str, low: float, high: float) -> None:
    check_node(op, {"x": _floats(low, high)}, rtol=2e-5, atol=1e-6)


def test_round_halves_to_even_and_float64() -> None:
    x = np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 0.49, -3.7, 7.0], np.float32)
    check_node("Round", {"x": x})
    check_node("Round", {"x": _floats(-9, 9, (4, 9), "float64")})


@pytest.mark.parametrize(("op", "attrs"), [
    ("Elu", {}), ("Elu", {"alpha": 0.3}), ("Selu", {}), ("Selu", {"alpha": 2.0, "gamma": 0.7}),
    ("Celu", {}), ("Celu", {"alpha": 2.5}), ("ThresholdedRelu", {}), ("ThresholdedRelu", {"alpha": -0.4}),
    ("HardSigmoid", {"alpha": 0.3, "beta": 0.4}),
])
def test_activations_with_attributes(op: str, attrs: dict[str, float]) -> None:
    check_node(op, {"x": _floats(-4, 4)}, attrs, rtol=1e-5, atol=1e-6)


def test_swish_opset_24() -> None:
    x = _floats(-6, 6, (2, 9))
    alpha = 0.75
    [got] = check_node_tcomp_only("Swish", x, {"alpha": alpha}, opset=24)
    np.testing.assert_allclose(got, x / (1 + np.exp(-alpha * x)), rtol=1e-5, atol=1e-6)


def check_node_tcomp_only(op: str, x: np.ndarray, attrs: dict[str, float], opset: int) -> list[np.ndarray]:
    """For definitions newer than onnxruntime implements: tcomp's result, to compare with numpy."""
    import tcomp.graph as tg
    from tests.graph.ort_reference import single_node_model

    executor = tg.compile(single_node_model(op, {"x": x}, 1, attrs, opset))
    result = executor.run({"x": x})
    assert result is not None
    return result


def test_prelu_broadcasts_the_slope() -> None:
    x = _floats(-3, 3, (2, 3, 5, 7))
    check_node("PRelu", {"x": x, "slope": _floats(0, 1, (3, 1, 1))})
    check_node("PRelu", {"x": x, "slope": _floats(0, 1, (7,))}, constants=["slope"])


def test_sign_nan_and_special_values() -> None:
    x = np.array([-3.5, -0.0, 0.0, 2.0, np.inf, -np.inf, np.nan], np.float32)
    for dtype in ("float32", "float64"):
        check_node("Sign", {"x": x.astype(dtype)})
    check_node("Sign", {"x": RNG.integers(-5, 6, (3, 7)).astype(np.int32)})
    check_node("Sign", {"x": RNG.integers(0, 3, (11,)).astype(np.uint8)})


@pytest.mark.parametrize("attrs", [{}, {"detect_positive": 0}, {"detect_negative": 0}])
def test_isinf_isnan(attrs: dict[str, int]) -> None:
    x = np.array([[1.0, np.inf, -np.inf, np.nan, -0.0], [3.0, np.nan, np.inf, 2.0, -1.0]], np.float32)
    check_node("IsInf", {"x": x}, attrs)
    if not attrs:
        check_node("IsNaN", {"x": x.astype(np.float64)})


@pytest.mark.parametrize("dtype", ["int32", "int64", "int8"])
@pytest.mark.parametrize("fmod", [0, 1])
def test_integer_mod_mixed_signs(dtype: str, fmod: int) -> None:
    a = RNG.integers(-50, 50, (3, 7)).astype(dtype)
    b = RNG.integers(1, 9, (7,)).astype(dtype) * RNG.choice([-1, 1], 7).astype(dtype)
    check_node("Mod", {"a": a, "b": b}, {"fmod": fmod}, opset=13)


def test_float_fmod_broadcasts() -> None:
    a = _floats(-20, 20, (5, 1, 3))
    b = _floats(0.5, 4, (4, 3)) * RNG.choice([-1, 1], (4, 3)).astype(np.float32)
    check_node("Mod", {"a": a, "b": b}, {"fmod": 1}, opset=13)


def test_float_floor_mod_takes_the_divisor_sign() -> None:
    # opset 28's Mod allows fmod=0 on floats (onnxruntime has no such kernel): against numpy's mod
    a = np.concatenate([_floats(-20, 20, (40,)), np.array([0.0, -0.0, 6.0, -6.0], np.float32)])
    b = np.concatenate([_floats(0.5, 4, (40,)) * RNG.choice([-1, 1], 40), np.array([3.0, -3.0, 3.0, 3.0])])
    import tcomp.graph as tg
    from tests.graph.ort_reference import single_node_model

    inputs = {"a": a.astype(np.float32), "b": b.astype(np.float32)}
    [got] = tg.compile(single_node_model("Mod", inputs, 1, {"fmod": 0}, 28)).run(inputs)
    want = np.mod(inputs["a"], inputs["b"])
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    assert np.array_equal(np.signbit(got[want == 0]), np.signbit(want[want == 0]))


def test_integer_mod_by_zero_gives_zero_not_a_trap() -> None:
    import tcomp.graph as tg
    from tests.graph.ort_reference import single_node_model

    inputs = {"a": np.array([7, -7, 5], np.int32), "b": np.array([0, 3, 0], np.int32)}
    [got] = tg.compile(single_node_model("Mod", inputs, 1, {}, 13)).run(inputs)
    np.testing.assert_array_equal(got, [0, 2, 0])


@pytest.mark.parametrize("op", ["And", "Or", "Xor"])
def test_logical_broadcast(op: str) -> None:
    a = RNG.integers(0, 2, (3, 1, 5)).astype(bool)
    b = RNG.integers(0, 2, (4, 5)).astype(bool)
    check_node(op, {"a": a, "b": b}, opset=9)


@pytest.mark.parametrize("opset", [9, 13])
def test_comparisons_of_old_and_new_definitions(opset: int) -> None:
    a = RNG.integers(-3, 3, (5, 7)).astype(np.int32)
    b = RNG.integers(-3, 3, (7,)).astype(np.int32)
    for op in ("Equal", "Less", "Greater"):
        check_node(op, {"a": a, "b": b}, opset=opset)


def test_cast_like_and_size() -> None:
    x = _floats(-100, 100, (3, 5))
    check_node("CastLike", {"x": x, "like": np.zeros((2,), np.int32)}, opset=15)
    check_node("CastLike", {"x": x, "like": np.zeros((1,), np.float16)}, opset=19, rtol=1e-3, atol=1e-3)
    check_node("Size", {"x": x}, opset=13)


def test_mean_of_broadcast_inputs() -> None:
    a, b, c = (RNG.standard_normal(shape).astype(np.float32) for shape in [(3, 1, 5), (4, 5), (1,)])
    check_node("Mean", {"a": a, "b": b, "c": c}, opset=13)
    check_node("Mean", {"a": a}, opset=13)
    check_node("Mean", {"a": a, "b": b}, opset=8)


@pytest.mark.parametrize(("lambd", "bias"), [(0.5, 0.0), (1.5, 1.0), (0.0, -0.25)])
def test_shrink(lambd: float, bias: float) -> None:
    x = (RNG.standard_normal((4, 7)) * 2).astype(np.float32)
    x[0, :3] = [lambd, -lambd, 0.0]  # on the thresholds
    check_node("Shrink", {"x": x}, {"lambd": lambd, "bias": bias}, opset=9)
    ints = RNG.integers(-5, 6, (3, 5)).astype(np.int32)
    check_node("Shrink", {"x": ints}, {"lambd": lambd, "bias": bias}, opset=9)


def test_dropout_in_training_mode_with_ratio_zero_drops_nothing() -> None:
    x = RNG.standard_normal((3, 5, 7)).astype(np.float32)
    inputs = {"x": x, "ratio": np.array(0.0, np.float32), "training": np.array(True)}
    out, mask = check_node("Dropout", inputs, outputs=2, constants=["ratio", "training"], opset=13)
    np.testing.assert_array_equal(out, x)
    assert mask.all()


def _ints(dtype: str, shape: tuple[int, ...]) -> np.ndarray:
    info = np.iinfo(dtype)
    return RNG.integers(info.min, info.max, shape, dtype=dtype, endpoint=True)


@pytest.mark.parametrize("dtype", ["int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"])
def test_bitwise_operators_broadcast(dtype: str) -> None:
    for op in ("BitwiseAnd", "BitwiseOr", "BitwiseXor"):
        check_node(op, {"x": _ints(dtype, (3, 5, 7)), "y": _ints(dtype, (5, 1))})
    check_node("BitwiseNot", {"x": _ints(dtype, (2, 9, 3))})


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "uint32", "uint64"])
@pytest.mark.parametrize("direction", ["LEFT", "RIGHT"])
def test_bit_shift_unsigned(dtype: str, direction: str) -> None:
    amounts = RNG.integers(0, np.iinfo(dtype).bits, (5, 7)).astype(dtype)
    check_node("BitShift", {"x": _ints(dtype, (3, 5, 7)), "y": amounts}, {"direction": direction}, opset=11)
    check_node("BitShift", {"x": _ints(dtype, (3, 1, 7)), "y": amounts[:, :1]}, {"direction": direction}, opset=11)


@pytest.mark.parametrize("dtype", ["int8", "int16", "int32", "int64", "uint8", "uint32"])
@pytest.mark.parametrize("direction", ["LEFT", "RIGHT"])
def test_bit_shift_signed_and_out_of_range_against_onnx_reference(dtype: str, direction: str) -> None:
    """Definition 28 (signed types; amounts negative or past the width) is newer than onnxruntime: onnx's
    reference decides."""
    from onnx.reference import ReferenceEvaluator

    import tcomp.graph as tg
    from tests.graph.ort_reference import assert_same, single_node_model

    bits = np.iinfo(dtype).bits
    low = -bits - 2 if dtype.startswith("int") else 0
    inputs = {"x": _ints(dtype, (4, 9)), "y": RNG.integers(low, bits + 3, (9,)).astype(dtype)}
    model = single_node_model("BitShift", inputs, 1, {"direction": direction}, 28)
    got = tg.compile(model).run(inputs)
    want = ReferenceEvaluator(model).run(None, inputs)
    assert got is not None
    assert_same(got[0], want[0], 0, 0, f"BitShift {direction} {dtype}")


def test_bitwise_operators_refuse_floats_and_bools() -> None:
    import tcomp.graph as tg
    from tests.graph.ort_reference import single_node_model

    for x in (np.ones(3, np.float32), np.ones(3, np.bool_)):
        model = single_node_model("BitwiseAnd", {"x": x, "y": x}, 1, {}, 18)
        with pytest.raises(tg.GraphError, match="must be integers"):
            tg.compile(model)


@pytest.mark.parametrize("folded", [False, True])
def test_negation_flips_the_sign_of_zero(folded: bool) -> None:
    """``Neg(+0)`` is -0 and ``Neg(-0)`` +0, as IEEE 754 negation and onnxruntime give them (``1 / Neg(0)`` is
    -inf): computed by the kernel, or folded from a constant."""
    from onnx import TensorProto, helper, numpy_helper

    import tcomp.graph as tg

    x = np.array([0.0, -0.0, 1.5, -np.inf, 3e-39, -2.0], np.float32)
    inputs = [] if folded else [helper.make_tensor_value_info("x", TensorProto.FLOAT, [6])]
    inits = [numpy_helper.from_array(x, "x")] if folded else []
    graph = helper.make_graph([helper.make_node("Neg", ["x"], ["y"]), helper.make_node("Reciprocal", ["y"], ["z"])],
                              "neg", inputs, [helper.make_tensor_value_info(v, TensorProto.FLOAT, [6]) for v in "yz"],
                              inits)
    executor = tg.compile(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), target="llvm")
    y, z = executor.run({} if folded else {"x": x})
    assert y.tobytes() == np.negative(x).tobytes()
    assert z[0] == -np.inf and z[1] == np.inf
