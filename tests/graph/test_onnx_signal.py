"""The signal operators (``frontend/onnx_signal.py``): ``DFT`` (definitions 17 and 20) and ``STFT`` against numpy's
FFTs on random inputs of odd and even lengths, ``MelWeightMatrix`` against onnx's reference, and the clear errors
for values not known at compile time and malformed inputs."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
import pytest
from onnx.reference import ReferenceEvaluator

import tcomp.graph as tg
from tests.graph.ort_reference import single_node_model

RNG = np.random.default_rng(17)


def _signal(shape: tuple[int, ...], dtype: str = "float32") -> np.ndarray:
    return RNG.normal(0, 1, shape).astype(dtype)


def _as_complex(x: np.ndarray) -> np.ndarray:
    """An ONNX signal (last dimension 1 or 2) as numpy complex values without that dimension."""
    return x[..., 0] + 1j * x[..., 1] if x.shape[-1] == 2 else x[..., 0].astype(np.complex128)


def _as_onnx(z: np.ndarray) -> np.ndarray:
    return np.stack([z.real, z.imag], -1)


def _run(op: str, inputs: dict[str, np.ndarray], attrs: dict[str, Any], opset: int,
         constants: tuple[str, ...] = ()) -> np.ndarray:
    """tcomp's output of one ``op`` node; ``constants`` name the inputs that are initializers."""
    model = single_node_model(op, inputs, 1, attrs, opset, constants)
    executor = tg.compile(model, target="llvm")
    result = executor.run({n: a for n, a in inputs.items() if n and n not in constants})
    assert result is not None
    return result[0]


def _dft(x: np.ndarray, axis: int, length: int | None, inverse: bool, onesided: bool) -> np.ndarray:
    """numpy's answer, in ONNX's layout."""
    z = _as_complex(x.astype(np.float64))
    if inverse and onesided:
        return np.fft.irfft(z, n=length, axis=axis)[..., None]
    if inverse:
        return _as_onnx(np.fft.ifft(z, n=length, axis=axis))
    if onesided:
        return _as_onnx(np.fft.rfft(z.real, n=length, axis=axis))
    return _as_onnx(np.fft.fft(z, n=length, axis=axis))


DFT_CASES = [  # (opset, shape, axis (None: the default), dft_length, inverse, onesided)
    (17, (2, 7, 1), None, None, 0, 0),  # real, the default axis 1
    (17, (3, 5, 4, 2), -3, 8, 0, 0),  # complex, zero-padded
    (17, (3, 7, 1), 1, None, 0, 1),  # one-sided, odd length
    (17, (1, 5, 3, 2), 1, 7, 1, 1),  # IRFFT of an odd length
    (20, (2, 9, 3, 1), 1, 5, 0, 1),  # truncated, one-sided
    (20, (4, 6, 2), None, None, 1, 0),  # inverse, the default axis -2
    (20, (5, 2, 3, 2), 0, 6, 1, 0),  # axis 0, padded inverse
    (20, (2, 6, 2), -2, None, 1, 1),  # IRFFT, the default length 2 * (6 - 1)
]


@pytest.mark.parametrize(("opset", "shape", "axis", "length", "inverse", "onesided"), DFT_CASES)
def test_dft_against_numpy(opset: int, shape: tuple[int, ...], axis: int | None, length: int | None,
                           inverse: int, onesided: int) -> None:
    x = _signal(shape)
    inputs = {"x": x, "": np.zeros(0)}  # "": dft_length left out
    if length:
        inputs = {"x": x, "dft_length": np.array(length, np.int64)}
    attrs: dict[str, Any] = {"inverse": inverse, "onesided": onesided}
    if axis is not None and opset == 17:
        attrs["axis"] = axis
    if axis is not None and opset >= 20:
        inputs["axis"] = np.array(axis, np.int64)
    if "axis" not in inputs and not length:
        del inputs[""]
    got = _run("DFT", inputs, attrs, opset, tuple(n for n in inputs if n not in ("x", "")))
    default_axis = 1 if opset == 17 else -2
    want = _dft(x, (default_axis if axis is None else axis) % len(shape), length, bool(inverse), bool(onesided))
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=2e-5)


def test_dft_float64_keeps_precision() -> None:
    x = _signal((2, 11, 2), "float64")
    got = _run("DFT", {"x": x}, {"axis": 1}, 17)
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, _dft(x, 1, None, False, False), rtol=1e-10, atol=1e-11)


def _stft(x: np.ndarray, step: int, window: np.ndarray | None, length: int, onesided: bool) -> np.ndarray:
    frames = 1 + (x.shape[1] - length) // step
    z = _as_complex(x.astype(np.float64))
    framed = np.stack([z[:, f * step:f * step + length] for f in range(frames)], 1)
    if window is not None:
        framed = framed * window
    spectrum = np.fft.fft(framed, axis=-1)
    return _as_onnx(spectrum[..., :length // 2 + 1] if onesided else spectrum)


@pytest.mark.parametrize(("parts", "window", "frame_length", "onesided"), [
    (1, True, None, 1),  # a run-time window sets the frame length
    (1, False, 9, 1),  # a rectangular window of frame_length
    (2, True, 8, 0),  # complex signal, window and frame_length
    (1, False, None, 0),  # one frame: the whole signal
])
def test_stft_against_numpy(parts: int, window: bool, frame_length: int | None, onesided: int) -> None:
    x, step = _signal((2, 37, parts)), 5
    length = frame_length or (8 if window else 37)
    hann = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(length) / length)).astype(np.float32)
    inputs = {"signal": x, "frame_step": np.array(step, np.int64), "window": hann if window else np.zeros(0)}
    if frame_length:
        inputs["frame_length"] = np.array(frame_length, np.int64)
    if not window:
        inputs = {("" if n == "window" else n): a for n, a in inputs.items()}
    got = _run("STFT", inputs, {"onesided": onesided}, 17, ("frame_step", "frame_length")[:1 + bool(frame_length)])
    want = _stft(x, step, hann if window else None, length, bool(onesided))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=3e-5)


@pytest.mark.parametrize(("values", "datatype"), [
    ((8, 64, 16000, 0.0, 8000.0), None),
    ((5, 33, 8000, 120.0, 3000.0), onnx.TensorProto.DOUBLE),
])
def test_mel_weight_matrix_matches_onnx_reference(values: tuple[float, ...], datatype: int | None) -> None:
    names = ["num_mel_bins", "dft_length", "sample_rate", "lower_edge_hertz", "upper_edge_hertz"]
    inputs = {n: np.array(v, np.int64 if i < 3 else np.float32) for i, (n, v) in enumerate(zip(names, values))}
    attrs = {} if datatype is None else {"output_datatype": datatype}
    model = single_node_model("MelWeightMatrix", inputs, 1, attrs, 17, tuple(names))
    got = tg.compile(model, target="llvm").run({})
    assert got is not None
    [want] = ReferenceEvaluator(model).run(None, {})
    assert got[0].dtype == want.dtype and got[0].shape == (int(values[1]) // 2 + 1, int(values[0]))
    np.testing.assert_array_equal(got[0], want)


# ---------------------------------------------------------------------------------------------------------------------
# errors
def _import(op: str, inputs: dict[str, np.ndarray], attrs: dict[str, Any], opset: int,
            constants: tuple[str, ...] = ()) -> None:
    tg.from_onnx(single_node_model(op, inputs, 1, attrs, opset, constants))


def test_huge_mel_weight_matrix_is_refused_before_it_is_made() -> None:
    names = ["num_mel_bins", "dft_length", "sample_rate", "lower_edge_hertz", "upper_edge_hertz"]
    values = (1 << 20, 1 << 20, 16000, 0.0, 8000.0)
    inputs = {n: np.array(v, np.int64 if i < 3 else np.float32) for i, (n, v) in enumerate(zip(names, values))}
    with pytest.raises(tg.GraphError, match="the mel weight matrix would take .* more than the limit"):
        _import("MelWeightMatrix", inputs, {}, 17, tuple(names))


def test_dft_length_and_axis_must_be_known_at_compile_time() -> None:
    x, four = _signal((2, 6, 1)), np.array(4, np.int64)
    with pytest.raises(tg.GraphError, match="dft_length .* must be known at compile time"):
        _import("DFT", {"x": x, "dft_length": four}, {}, 17)
    with pytest.raises(tg.GraphError, match="the axis .* must be known at compile time"):
        _import("DFT", {"x": x, "": np.zeros(0), "axis": np.array(1, np.int64)}, {}, 20)


@pytest.mark.parametrize(("shape", "attrs", "match"), [
    ((2, 6, 1), {"axis": -1}, r"axis=-1 must be in \[-3, -2\] or \[0, 1\]"),
    ((2, 6, 1), {"axis": 2}, r"axis=2 must be in"),
    ((2, 6, 3), {}, r"last dimension of 1 \(real\) or 2 \(complex\)"),
    ((6,), {"axis": 0}, "must have a signal dimension"),
    ((2, 6, 1), {"inverse": 2}, "inverse=2 must be 0 or 1"),
])
def test_dft_bad_shapes_and_attributes(shape: tuple[int, ...], attrs: dict[str, Any], match: str) -> None:
    with pytest.raises(tg.GraphError, match=match):
        _import("DFT", {"x": _signal(shape)}, attrs, 17)


def test_dft_length_must_be_positive() -> None:
    inputs = {"x": _signal((2, 6, 1)), "dft_length": np.array(0, np.int64)}
    with pytest.raises(tg.GraphError, match="dft_length=0 must be positive"):
        _import("DFT", inputs, {}, 17, ("dft_length",))


@pytest.mark.parametrize(("signal", "step", "window", "frame_length", "match"), [
    ((37, 1), 4, None, None, r"must be \[batch, length, 1 or 2\]"),
    ((1, 37, 1), None, None, 8, "frame_step .* must be known at compile time"),
    ((1, 37, 1), 0, None, 8, "frame_step=0 must be positive"),
    ((1, 37, 1), 4, 6, 8, "window's length 6 must equal frame_length=8"),
    ((1, 37, 1), 4, None, 40, r"frame_length=40 must be in \[1, 37\]"),
])
def test_stft_errors(signal: tuple[int, ...], step: int | None, window: int | None, frame_length: int | None,
                     match: str) -> None:
    inputs = {"signal": _signal(signal), "frame_step": np.array(4 if step is None else step, np.int64),
              "window": _signal((window or 1,)), "frame_length": np.array(frame_length or 1, np.int64)}
    if window is None:
        inputs = {("" if n == "window" else n): a for n, a in inputs.items()}
    if frame_length is None:
        del inputs["frame_length"]
    constants = tuple(n for n in inputs if n == "frame_length" or (n == "frame_step" and step is not None))
    with pytest.raises(tg.GraphError, match=match):
        _import("STFT", inputs, {}, 17, constants)


def test_mel_weight_matrix_errors() -> None:
    names = ["num_mel_bins", "dft_length", "sample_rate", "lower_edge_hertz", "upper_edge_hertz"]
    values: list[Any] = [np.array(8, np.int64), np.array(64, np.int64), np.array(16000, np.int64),
                         np.array(0.0, np.float32), np.array(8000.0, np.float32)]
    with pytest.raises(tg.GraphError, match="num_mel_bins .* must be known at compile time"):
        _import("MelWeightMatrix", dict(zip(names, values)), {}, 17, tuple(names[1:]))
    values[0] = np.array(0, np.int64)
    with pytest.raises(tg.GraphError, match="num_mel_bins=0 must be positive"):
        _import("MelWeightMatrix", dict(zip(names, values)), {}, 17, tuple(names))
    values[0], values[4] = np.array(8, np.int64), np.array(30000.0, np.float32)
    with pytest.raises(tg.GraphError, match="outside the 33 bins of a 64-point DFT"):
        _import("MelWeightMatrix", dict(zip(names, values)), {}, 17, tuple(names))


def test_dft_matrix_size_is_bounded() -> None:
    inputs = {"x": _signal((1, 1 << 13, 2)), "dft_length": np.array(1 << 13, np.int64)}
    with pytest.raises(tg.GraphError, match="8192-point DFT needs a 1024 MiB matrix"):
        _import("DFT", inputs, {}, 17, ("dft_length",))
