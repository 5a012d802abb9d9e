"""ONNX signal-processing operators: ``DFT`` (definitions 17 and 20), ``STFT`` and ``MelWeightMatrix``.

ONNX holds a complex value as a last dimension of size 2 (real, imaginary); a real signal has a last dimension of
size 1. ``DFT`` along ``axis`` (an attribute in definition 17, default 1; an input known at compile time in 20,
default -2; negative counts from the back; never the last, complex dimension) of an ``N``-point signal is

    forward: ``y[k] = sum_n x[n] exp(-2 pi i k n / N)``        inverse: ``x[n] = 1/N sum_k y[k] exp(2 pi i k n / N)``

with ``N = dft_length`` (known at compile time; default the axis's length): a longer axis is truncated to its first
``N`` values, a shorter one zero-padded. The output is complex, ``N`` long on the axis, or ``N // 2 + 1`` long with
``onesided`` (the non-redundant half of a real signal's spectrum; onnx's reference also cuts a complex signal's
spectrum so, which is what tcomp does). ``inverse`` with ``onesided`` is the inverse of a one-sided spectrum
(numpy's ``irfft``): the first ``N // 2 + 1`` values of the axis are the spectrum, the rest follows from conjugate
symmetry (the imaginary parts at frequency 0 and, for an even ``N``, ``N / 2`` are ignored), the output is the real
``N``-point signal (last dimension 1) and ``N`` defaults to ``2 * (axis length - 1)``.

The transform is a matrix product: the axis is moved next to the complex dimension, the two are flattened into
``samples * parts`` values and multiplied by a constant ``[samples * parts, bins * parts']`` matrix of cosines and
sines (computed with numpy here, in float64, then cast to the signal's type), and the result is unflattened and moved
back. This is ``O(N^2)`` work per transformed line, not an FFT's ``O(N log N)``, but it runs on the tuned matrix
kernels; the matrix may not exceed ``MAX_MATRIX_BYTES``.

``STFT`` slides a frame of ``frame_length`` samples (default: the window's length, else the whole signal) over a
``[batch, length, 1 or 2]`` signal in steps of ``frame_step`` (known at compile time); the
``1 + (length - frame_length) // frame_step`` frames (one ``take`` with constant indices) are multiplied by the
optional 1-D ``window`` and transformed as ``DFT`` does along the frame (``onesided`` defaults to 1), giving
``[batch, frames, bins, 2]``.

``MelWeightMatrix`` is computed here as onnx's reference computes it, from its scalar inputs (all known at compile
time): ``num_mel_bins + 2`` points equally spaced on the mel scale (``mel(f) = 2595 log10(1 + f / 700)``) with step
``(mel(upper) - mel(lower)) / (num_mel_bins + 2)`` from ``mel(lower)``, converted back to hertz and to spectrogram bin
indices ``floor((dft_length + 1) * f / sample_rate)``; mel bin ``i`` is the triangle rising from index ``i`` to
``i + 1`` and falling to ``i + 2`` with peak 1, in a ``[dft_length // 2 + 1, num_mel_bins]`` matrix of
``output_datatype`` (default float32).
"""

from __future__ import annotations

import numpy as np
import onnx

from tcomp.graph.frontend.onnx_builder import Builder
from tcomp.graph.frontend.onnx_common import Attrs, converts, optional, reshape
from tcomp.graph.frontend.onnx_data import onnx_dtype
from tcomp.graph.infer import check_size
from tcomp.graph.ir import TensorType
from tcomp.ir import dtype as dt

MAX_MATRIX_BYTES = 1 << 28  # the largest DFT matrix (256 MiB) a converter makes


def _check_signal(b: Builder, name: str, what: str) -> tuple[int, ...]:
    """The shape of a signal ``[..., 1 or 2]`` of floats."""
    t = b.type(name)
    if not dt.is_float(t.dtype):
        raise b.error(f"the {what} must be floats, got {t.dtype}")
    if t.ndim < 2 or t.shape[-1] not in (1, 2):
        raise b.error(f"the {what} {list(t.shape)} must have a signal dimension and a last dimension of 1 (real) "
                      "or 2 (complex)")
    return t.shape


def _angles(rows: int, columns: int, length: int) -> np.ndarray:
    """``2 pi (r c mod length) / length`` for every row ``r`` and column ``c`` (the reduction keeps it exact)."""
    products = np.outer(np.arange(rows, dtype=np.int64), np.arange(columns, dtype=np.int64)) % length
    return 2 * np.pi * products / length


def dft_matrix(samples: int, parts: int, length: int, bins: int, inverse: bool) -> np.ndarray:
    """The ``[samples * parts, bins * 2]`` float64 matrix taking a ``length``-point signal's first ``samples``
    values (real, or interleaved real and imaginary for ``parts`` 2) to its first ``bins`` complex DFT values
    (interleaved), divided by ``length`` when ``inverse``."""
    theta = _angles(samples, bins, length)
    cos, sin = np.cos(theta), np.sin(theta) * (1.0 if inverse else -1.0)
    matrix = np.zeros((samples, parts, bins, 2))
    matrix[:, 0, :, 0], matrix[:, 0, :, 1] = cos, sin  # x_re * e^{+-i theta}
    if parts == 2:
        matrix[:, 1, :, 0], matrix[:, 1, :, 1] = -sin, cos  # i x_im * e^{+-i theta}
    scale = 1.0 / length if inverse else 1.0
    return matrix.reshape(samples * parts, bins * 2) * scale


def irfft_matrix(samples: int, parts: int, length: int) -> np.ndarray:
    """The ``[samples * parts, length]`` float64 matrix taking the first ``samples`` values of a one-sided spectrum
    to the real ``length``-point signal whose spectrum it is (numpy's ``irfft``)."""
    theta = _angles(samples, length, length)
    weight = np.full((samples, 1), 2.0)
    weight[0] = 1.0
    if length % 2 == 0 and length // 2 < samples:
        weight[length // 2] = 1.0
    matrix = np.zeros((samples, parts, length))
    matrix[:, 0] = weight * np.cos(theta) / length
    if parts == 2:
        matrix[:, 1] = -weight * np.sin(theta) / length
        matrix[0, 1] = 0.0  # the imaginary parts at frequencies 0 and length / 2 do not count
        if length % 2 == 0 and length // 2 < samples:
            matrix[length // 2, 1] = 0.0
    return matrix.reshape(samples * parts, length)


def transform(b: Builder, x: str, axis: int, length: int, inverse: bool, onesided: bool) -> str:
    """``x`` (a checked signal, ``axis`` non-negative and not the last) transformed as the module docstring says."""
    shape = b.type(x).shape
    rank, parts = len(shape), shape[-1]
    irfft = inverse and onesided
    samples = min(shape[axis], length // 2 + 1 if irfft else length)
    bins = length if irfft or not onesided else length // 2 + 1
    out_parts = 1 if irfft else 2
    nbytes = samples * parts * bins * out_parts * np.dtype(dt.to_numpy(b.type(x).dtype)).itemsize
    if nbytes > MAX_MATRIX_BYTES:
        raise b.error(f"a {length}-point DFT needs a {nbytes >> 20} MiB matrix, more than the "
                      f"{MAX_MATRIX_BYTES >> 20} MiB this converter makes")
    if irfft:
        matrix = irfft_matrix(samples, parts, length)
    else:
        matrix = dft_matrix(samples, parts, length, bins, inverse)
    if samples < shape[axis]:
        x = b.add1("strided_slice", [x], begin=(0,), end=(samples,), strides=(1,), axes=(axis,))
    perm = tuple(d for d in range(rank - 1) if d != axis) + (axis, rank - 1)
    moved = x if perm == tuple(range(rank)) else b.add1("transpose", [x], perm=perm)
    batch = tuple(shape[d] for d in perm[:-2])
    flat = reshape(b, moved, (*batch, samples * parts))
    weights = b.param(matrix.astype(dt.to_numpy(b.type(x).dtype)), f"{b.node_name}/dft_matrix")
    product = b.add1("matmul", [flat, weights])
    result = reshape(b, product, (*batch, bins, out_parts))
    if perm == tuple(range(rank)):
        return result
    return b.add1("transpose", [result], perm=tuple(int(p) for p in np.argsort(perm)))


@converts("DFT", (17, 20))
def _dft(b: Builder, node: onnx.NodeProto, ins: list[str], a: Attrs, v: int) -> list[str]:
    shape = _check_signal(b, ins[0], "input")
    rank = len(shape)
    inverse, onesided = a.flag("inverse", 0), a.flag("onesided", 0)
    if v >= 20:
        axis_name = optional(ins, 2)
        axis = int(_scalar(b, axis_name, "the axis", "iu")) if axis_name else -2
    else:
        axis = a.int("axis", 1)
    if not (-rank <= axis <= -2 or 0 <= axis <= rank - 2):
        raise b.error(f"axis={axis} must be in [{-rank}, -2] or [0, {rank - 2}] for an input of rank {rank} "
                      "(the last dimension holds the real and imaginary parts)")
    axis = axis + rank if axis < 0 else axis
    length_name = optional(ins, 1)
    if length_name:
        length = int(_scalar(b, length_name, "dft_length", "iu"))
    elif inverse and onesided:
        length = 2 * (shape[axis] - 1)
    else:
        length = shape[axis]
    if length < 1:
        raise b.error(f"dft_length={length} must be positive")
    return [transform(b, ins[0], axis, length, inverse, onesided)]


@converts("STFT", (17,))
def _stft(b: Builder, node: onnx.NodeProto, ins: list[str], a: Attrs, v: int) -> list[str]:
    shape = _check_signal(b, ins[0], "signal")
    if len(shape) != 3:
        raise b.error(f"the signal {list(shape)} must be [batch, length, 1 or 2]")
    onesided = a.flag("onesided", 1)
    step = int(_scalar(b, ins[1], "frame_step", "iu"))
    if step < 1:
        raise b.error(f"frame_step={step} must be positive")
    window, length_name = optional(ins, 2), optional(ins, 3)
    frame_length = int(_scalar(b, length_name, "frame_length", "iu")) if length_name else None
    if window:
        window_type = b.type(window)
        if window_type.ndim != 1 or window_type.dtype != b.type(ins[0]).dtype:
            raise b.error(f"the window {window_type} must be 1-D, of the signal's type {b.type(ins[0]).dtype}")
        if frame_length is not None and frame_length != window_type.shape[0]:
            raise b.error(f"the window's length {window_type.shape[0]} must equal frame_length={frame_length}")
        frame_length = window_type.shape[0]
    if frame_length is None:
        frame_length = shape[1]
    if not 1 <= frame_length <= shape[1]:
        raise b.error(f"frame_length={frame_length} must be in [1, {shape[1]}] (the signal's length)")
    frames = 1 + (shape[1] - frame_length) // step
    starts = np.arange(frames, dtype=np.int64)[:, None] * step
    indices = b.param(starts + np.arange(frame_length, dtype=np.int64)[None, :], f"{b.node_name}/frames")
    framed = b.add1("take", [ins[0], indices], axis=1)  # [batch, frames, frame_length, parts]
    if window:
        framed = b.add1("multiply", [framed, reshape(b, window, (frame_length, 1))])
    return [transform(b, framed, 2, frame_length, False, onesided)]


def _scalar(b: Builder, name: str, what: str, kinds: str) -> np.ndarray:
    """The one value of ``name`` (known at compile time, of a numpy kind in ``kinds``) as a 0-d array."""
    value = b.require_const(name, what)
    if value.size != 1 or value.dtype.kind not in kinds:
        kind = "an integer" if kinds == "iu" else "a float"
        raise b.error(f"{what} must be {kind} scalar, got {value.dtype} of shape {list(value.shape)}")
    return value.reshape(())


def mel_weight_matrix(b: Builder, num_mel_bins: np.ndarray, dft_length: np.ndarray, sample_rate: np.ndarray,
                      lower_edge_hertz: np.ndarray, upper_edge_hertz: np.ndarray) -> np.ndarray:
    """The float64 ``[dft_length // 2 + 1, num_mel_bins]`` matrix (see the module docstring), with onnx reference's
    arithmetic on the inputs' own types."""
    mel_bins, spectrogram_bins = int(num_mel_bins), int(dft_length) // 2 + 1
    lower_mel = 2595 * np.log1p(lower_edge_hertz / 700) / np.log(10)
    upper_mel = 2595 * np.log1p(upper_edge_hertz / 700) / np.log(10)
    points = np.arange(0, mel_bins + 2)
    mels = points * ((upper_mel - lower_mel) / points.shape[0]) + lower_mel
    hertz = 700 * np.expm1(mels / 2595 * np.log(10))
    edges = (((dft_length + 1) * hertz) // sample_rate).astype(int)
    written = edges[:-1]  # the last point only bounds the last triangle
    if written.min() < 0 or written.max() >= spectrogram_bins:
        raise b.error(f"the mel bands fall on spectrogram bins {written.min()} to {written.max()}, outside the "
                      f"{spectrogram_bins} bins of a {int(dft_length)}-point DFT (check the edge frequencies)")
    check_size(TensorType((spectrogram_bins, mel_bins), "float64"), f"node {b.node_name}: the mel weight matrix")
    matrix = np.zeros((spectrogram_bins, mel_bins))
    for band in range(mel_bins):
        left, center, right = (int(e) for e in edges[band:band + 3])
        if center == left:
            matrix[center, band] = 1.0
        else:
            for index in range(left, center + 1):  # rising edge, to 1 at the center
                matrix[index, band] = (index - left) / (center - left)
        for index in range(center, right):  # falling edge
            matrix[index, band] = (right - index) / (right - center)
    return matrix


@converts("MelWeightMatrix", (17,))
def _mel_weight_matrix(b: Builder, node: onnx.NodeProto, ins: list[str], a: Attrs, v: int) -> list[str]:
    why = "(it sets the output's shape)"
    num_mel_bins = _scalar(b, ins[0], f"num_mel_bins {why}", "iu")
    dft_length = _scalar(b, ins[1], f"dft_length {why}", "iu")
    sample_rate = _scalar(b, ins[2], "sample_rate", "iu")
    lower = _scalar(b, ins[3], "lower_edge_hertz", "f")
    upper = _scalar(b, ins[4], "upper_edge_hertz", "f")
    for what, value in (("num_mel_bins", num_mel_bins), ("dft_length", dft_length), ("sample_rate", sample_rate)):
        if int(value) < 1:
            raise b.error(f"{what}={int(value)} must be positive")
    dtype = onnx_dtype(a.int("output_datatype", onnx.TensorProto.FLOAT),
                       f"node {b.node_name}: attribute 'output_datatype'")
    matrix = mel_weight_matrix(b, num_mel_bins, dft_length, sample_rate, lower, upper)
    return [b.param(matrix.astype(dt.to_numpy(dtype)), node.output[0])]
