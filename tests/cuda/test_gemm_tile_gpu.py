"""The GEMM tile kernel on a GPU (skipped without CuPy and a device): every tile family of ``test_gemm_tile`` and the
default tiles of each precision, run on the device on odd sizes against numpy with the operands rounded as the
precision rounds them, so the tensor cores' fragment layouts, ``ldmatrix``, ``cp.async`` zero fill, swizzles and
dynamic shared memory are checked on the hardware, not only in the emulation."""

from __future__ import annotations

import numpy as np
import pytest

from tcomp import ops, te
from tcomp.backend.cuda import CudaRuntime
from tcomp.backend.cuda.build import build_cuda
from tcomp.ops.cuda.gemm_choice import default_tile, matmul_problem
from tcomp.ops.cuda.gemm_intrin import schedule_conv2d_tile, schedule_matmul_tile
from tcomp.ops.cuda.gemm_tile import GemmTile, SmemLayout
from tcomp.ops.testing import conv2d_nchw_python
from tcomp.runtime.cuda_device import gpu_available
from tcomp.schedule import create_schedule
from tcomp.target import Precision, Target
from tests.cuda.test_gemm_tile import FAMILIES, LAYOUTS, check_product, matmul_schedule, rounded

pytestmark = pytest.mark.skipif(not gpu_available(), reason="needs CuPy and a CUDA device")


def _device_target(precision: Precision = Precision.FP32) -> Target:
    import cupy

    return Target(f"cuda -arch=sm_{cupy.cuda.Device().compute_capability}").with_precision(precision)


def _run_product(schedule, tensors, precision: Precision, transposes: tuple[bool, bool], k: int) -> None:  # type: ignore[no-untyped-def]
    module = build_cuda(schedule, tensors, _device_target(precision), runtime=CudaRuntime.DEVICE)
    rng = np.random.default_rng(11)
    a = rng.uniform(-1, 1, tuple(int(d) for d in tensors[0].shape)).astype(tensors[0].dtype)
    b = rng.uniform(-1, 1, tuple(int(d) for d in tensors[1].shape)).astype(tensors[1].dtype)
    c = np.full(tuple(int(d) for d in tensors[2].shape), np.nan, np.float32)
    module(a, b, c)
    lhs = np.swapaxes(a, -1, -2) if transposes[0] else a
    rhs = np.swapaxes(b, -1, -2) if transposes[1] else b
    check_product(c, lhs, rhs, precision, k)


@pytest.mark.parametrize("family", FAMILIES)
def test_tile_families_on_the_gpu(family: str) -> None:
    s, tensors = matmul_schedule(67, 91, 75, family, target=_device_target(FAMILIES[family][0]))
    _run_product(s, tensors, FAMILIES[family][0], LAYOUTS[family], 75)


@pytest.mark.parametrize("precision", list(Precision))
def test_default_tiles_on_the_gpu(precision: Precision) -> None:
    """The default tile of a large product, on a shape its tiles do not divide."""
    dtype = "float16" if precision is Precision.FP16 else "float32"
    M, N, K = 1000, 1030, 777
    target = _device_target(precision)
    tile = default_tile(matmul_problem(2048, 2048, 2048, dtype, precision), 2048, 2048, target=target)
    A = te.placeholder((M, K), dtype, "A")
    B = te.placeholder((K, N), dtype, "B")
    C = ops.matmul(A, B, out_dtype="float32")
    s = create_schedule(C)
    schedule_matmul_tile(s, C, tile, precision, target)
    _run_product(s, [A, B, C], precision, (False, False), K)


@pytest.mark.parametrize("tile", [GemmTile(128, 256, 32, 2, 4, stages=4, layout=SmemLayout.SWIZZLE),
                                  GemmTile(256, 128, 8, 4, 4, stages=4, lanes_m=8, k_outer=True)],
                         ids=["fp16_dynamic_shared", "fp32_dynamic_shared"])
def test_tiles_over_48_kb_of_shared_memory_on_the_gpu(tile: GemmTile) -> None:
    precision = Precision.FP16 if tile.block_k == 32 else Precision.FP32
    dtype = "float16" if precision is Precision.FP16 else "float32"
    target = _device_target(precision)
    if target.max_shared_memory_per_block < 64 * 1024:
        pytest.skip(f"{target} has no more than 64 KB of shared memory per block")
    A = te.placeholder((300, 200), dtype, "A")
    B = te.placeholder((200, 520), dtype, "B")
    C = ops.matmul(A, B, out_dtype="float32")
    s = create_schedule(C)
    schedule_matmul_tile(s, C, tile, precision, target)
    _run_product(s, [A, B, C], precision, (False, False), 200)


@pytest.mark.parametrize("precision", [Precision.TF32, Precision.FP16, Precision.BF16])
def test_conv_tiles_on_the_gpu(precision: Precision) -> None:
    data = te.placeholder((2, 19, 23, 21), "float32", "data")
    kernel = te.placeholder((40, 19, 3, 3), "float32", "kernel")
    out = ops.conv2d_nchw(data, kernel, 2, 1)
    s = create_schedule(out)
    schedule_conv2d_tile(s, out, GemmTile(64, 64, 16, 2, 2, stages=3), 8, 8, precision, _device_target(precision))
    module = build_cuda(s, [data, kernel, out], _device_target(precision), runtime=CudaRuntime.DEVICE)
    rng = np.random.default_rng(4)
    x = rng.uniform(-1, 1, (2, 19, 23, 21)).astype(np.float32)
    w = rng.uniform(-1, 1, (40, 19, 3, 3)).astype(np.float32)
    got = np.zeros(tuple(int(d) for d in out.shape), np.float32)
    module(x, w, got)
    exact = conv2d_nchw_python(rounded(x, precision), rounded(w, precision), 2, 1)
    scale = float(conv2d_nchw_python(np.abs(x), np.abs(w), 2, 1).max())
    np.testing.assert_allclose(got, exact, rtol=0, atol=19 * 9 * 2.0 ** -21 * scale)
