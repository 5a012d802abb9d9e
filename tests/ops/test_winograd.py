"""Winograd 3x3 convolution (``tcomp.ops.winograd``) against a float64 direct convolution, with the default CPU
schedule in both placements, epilogues, batches and odd sizes."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

import tcomp
from tcomp import te
from tcomp.ops import OpError
from tcomp.ops import testing as reference
from tcomp.ops.cpu import schedule_cpu
from tcomp.ops.utils import OpKind, op_kind
from tcomp.ops.winograd import WINOGRAD_TILES, conv2d_winograd_nchwc, winograd_kernel, winograd_matrices

RNG = np.random.default_rng(1234)


def to_blocked(x: np.ndarray, block: int) -> np.ndarray:
    n, c, h, w = x.shape
    return np.ascontiguousarray(x.reshape(n, c // block, block, h, w).transpose(0, 1, 3, 4, 2))


def transformed_kernel(w: np.ndarray, tile: int, ic: int, oc: int) -> np.ndarray:
    """The kernel transform computed by tcomp's own ``winograd_kernel`` (as the graph compiler folds it)."""
    kernel = te.placeholder(w.shape, name="w")
    u = winograd_kernel(kernel, tile, ic, oc)
    module = tcomp.build(schedule_cpu([u]), [kernel, u])
    out = np.empty([int(d) for d in u.shape], dtype=np.float32)
    module(w, out)
    return out


@pytest.mark.parametrize("tile", WINOGRAD_TILES)
def test_matrices_compute_a_correlation_exactly(tile: int) -> None:
    bt, g, at = winograd_matrices(tile)
    size = tile + 2
    for trial in range(3):
        d = [Fraction(int(v)) for v in np.random.default_rng(trial).integers(-9, 9, size)]
        f = [Fraction(int(v)) for v in np.random.default_rng(trial + 10).integers(-9, 9, 3)]
        gg = [sum(g[r][j] * f[j] for j in range(3)) for r in range(size)]
        bd = [sum(bt[r][j] * d[j] for j in range(size)) for r in range(size)]
        y = [sum(at[i][r] * gg[r] * bd[r] for r in range(size)) for i in range(tile)]
        assert y == [sum(d[i + j] * f[j] for j in range(3)) for i in range(tile)]


CASES = [
    # batch, channels, out channels, height, width, padding, tile, ic, oc
    (1, 8, 24, 9, 13, 1, 4, 8, 8),  # odd sizes: partial tiles at the bottom and right
    (2, 16, 8, 7, 7, 1, 4, 8, 8),  # a batch: tiles of two images
    (1, 12, 20, 6, 11, 0, 2, 4, 4),  # no padding, F(2x2, 3x3), blocks of 4
    (1, 8, 8, 5, 6, (2, 1, 0, 2), 2, 8, 8),  # asymmetric padding, an output of 3 x 5
    (1, 16, 32, 30, 30, 1, 4, 8, 16),  # 64 tiles: the blocks-of-tiles placement
]


@pytest.mark.parametrize(("batch", "channels", "out_channels", "height", "width", "padding", "tile", "ic", "oc"),
                         CASES)
def test_winograd_against_direct_convolution(batch: int, channels: int, out_channels: int, height: int, width: int,
                                             padding: object, tile: int, ic: int, oc: int) -> None:
    x = RNG.standard_normal((batch, channels, height, width)).astype(np.float32)
    w = (RNG.standard_normal((out_channels, channels, 3, 3)) / np.sqrt(9 * channels)).astype(np.float32)
    expected = reference.conv2d_nchw_python(x.astype(np.float64), w.astype(np.float64), 1, padding)
    data = te.placeholder((batch, channels // ic, height, width, ic), name="data")
    u = te.placeholder((tile + 2, tile + 2, out_channels // oc, channels // ic, ic, oc), name="u")
    out = conv2d_winograd_nchwc(data, u, padding, tile)
    assert op_kind(out.op) is OpKind.WINOGRAD_OUTPUT
    assert tuple(int(d) for d in out.shape) == (batch, out_channels // oc, *expected.shape[2:], oc)
    module = tcomp.build(schedule_cpu([out]), [data, u, out])
    got = np.empty([int(d) for d in out.shape], dtype=np.float32)
    module(to_blocked(x, ic), transformed_kernel(w, tile, ic, oc), got)
    scale = np.abs(expected).max()
    np.testing.assert_allclose(got, to_blocked(expected, oc), rtol=0, atol=(3e-6 if tile == 2 else 2e-5) * scale)


@pytest.mark.parametrize("size", [7, 28])  # stage by stage, and by blocks of tiles
def test_winograd_with_fused_epilogue(size: int) -> None:
    channels, block = 16, 8
    x = RNG.standard_normal((1, channels, size, size)).astype(np.float32)
    w = (RNG.standard_normal((channels, channels, 3, 3)) / 12).astype(np.float32)
    bias = RNG.standard_normal((1, channels // block, 1, 1, block)).astype(np.float32)
    residual = RNG.standard_normal((1, channels // block, size, size, block)).astype(np.float32)
    data = te.placeholder(x.shape[:1] + (channels // block, size, size, block), name="data")
    u = te.placeholder((6, 6, channels // block, channels // block, block, block), name="u")
    b = te.placeholder(bias.shape, name="bias")
    r = te.placeholder(residual.shape, name="residual")
    conv = conv2d_winograd_nchwc(data, u, 1, 4)
    shifted = te.compute(conv.shape, lambda n, c, y, xx, o: conv[n, c, y, xx, o] + b[0, c, 0, 0, o], name="bias_add")
    out = te.compute(conv.shape, lambda n, c, y, xx, o: te.max(shifted[n, c, y, xx, o] + r[n, c, y, xx, o], 0.0),
                     name="relu")
    s = schedule_cpu([out])
    lowered = str(tcomp.lower(s, [data, u, b, r, out]))
    assert "relu[" in lowered and f"{conv.name}[" not in lowered  # the output transform runs inside the epilogue
    module = tcomp.build(s, [data, u, b, r, out])
    got = np.empty(residual.shape, dtype=np.float32)
    module(to_blocked(x, block), transformed_kernel(w, 4, block, block), bias, residual, got)
    direct = to_blocked(reference.conv2d_nchw_python(x.astype(np.float64), w.astype(np.float64), 1, 1), block)
    expected = np.maximum(direct + bias + residual, 0)
    np.testing.assert_allclose(got, expected, rtol=0, atol=2e-5 * np.abs(expected).max())


@pytest.mark.parametrize("size", [7, 28])  # stage by stage, and by blocks of tiles
def test_winograd_over_a_symbolic_batch(size: int) -> None:
    """A batch given at run time (a model compiled once for its batch): the transforms' rows run over
    ``batch * tiles``, the schedule tiles the rest as for one image, and the output transform still runs inside the
    epilogue (a ReLU); each batch size against the direct convolution."""
    channels, block = 16, 8
    batch = te.var("batch", "int32", min_value=1)
    data = te.placeholder((batch, channels // block, size, size, block), name="data")
    u = te.placeholder((6, 6, channels // block, channels // block, block, block), name="u")
    conv = conv2d_winograd_nchwc(data, u, 1, 4)
    out = te.compute(conv.shape, lambda n, c, y, xx, o: te.max(conv[n, c, y, xx, o], 0.0), name="relu")
    s = schedule_cpu([out])
    assert f"{conv.name}[" not in str(tcomp.lower(s, [data, u, out]))
    module = tcomp.build(s, [data, u, out])
    w = (RNG.standard_normal((channels, channels, 3, 3)) / 12).astype(np.float32)
    kernel = transformed_kernel(w, 4, block, block)
    for images in (1, 3, 2):
        x = RNG.standard_normal((images, channels, size, size)).astype(np.float32)
        got = np.empty((images, channels // block, size, size, block), dtype=np.float32)
        module(to_blocked(x, block), kernel, got)
        direct = reference.conv2d_nchw_python(x.astype(np.float64), w.astype(np.float64), 1, 1)
        expected = to_blocked(np.maximum(direct, 0), block)
        np.testing.assert_allclose(got, expected, rtol=0, atol=2e-5 * np.abs(expected).max())


def test_winograd_errors() -> None:
    data = te.placeholder((1, 2, 8, 8, 8), name="data")
    with pytest.raises(OpError, match="tile 3 is not one of|output tile 3"):
        conv2d_winograd_nchwc(data, te.placeholder((5, 5, 2, 2, 8, 8), name="u"), 1, 3)
    for tile in ([4], "4", True):
        with pytest.raises(OpError, match="output tile"):
            conv2d_winograd_nchwc(data, te.placeholder((6, 6, 2, 2, 8, 8), name="u"), 1, tile)  # type: ignore[arg-type]
    with pytest.raises(OpError, match="transformed for tile 4"):
        conv2d_winograd_nchwc(data, te.placeholder((4, 4, 2, 2, 8, 8), name="u"), 1, 4)
    with pytest.raises(OpError, match="output plane"):
        conv2d_winograd_nchwc(te.placeholder((1, 2, 1, 1, 8), name="d"),
                              te.placeholder((6, 6, 2, 2, 8, 8), name="u"), 0, 4)
    with pytest.raises(OpError, match="3x3 kernel"):
        winograd_kernel(te.placeholder((8, 8, 5, 5), name="w"), 4, 8, 8)
    with pytest.raises(OpError, match="blocks of 3"):
        winograd_kernel(te.placeholder((8, 8, 3, 3), name="w"), 4, 3, 8)
