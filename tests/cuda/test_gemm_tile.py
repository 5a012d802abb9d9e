"""The block-level GEMM tile kernel (``tcomp.ops.cuda.gemm_*``): every precision and tile family run in CPU emulation
on odd sizes against numpy, first with the operands rounded as the precision rounds them (the emulation is exact
up to float32 summation), then against float32 within the precision's tolerance; transposed and batched operands;
convolutions; the exact CPU definitions of the warp intrinsics' conversions; nvcc/ptxas compiles of every variant
for sm_80 and sm_90 with the resources of the default tiles; the tile checks."""

from __future__ import annotations

import ctypes
from dataclasses import replace

import numpy as np
import pytest

from tcomp import ops, te
from tcomp.backend import compile_artifact
from tcomp.backend.cuda import CudaRuntime
from tcomp.backend.cuda.build import build_cuda
from tcomp.ops.cuda.gemm_choice import default_tile, matmul_problem
from tcomp.ops.cuda.gemm_intrin import schedule_conv2d_tile, schedule_matmul_tile
from tcomp.ops.cuda.gemm_tile import GemmError, GemmTile, SmemLayout, check_tile, shared_bytes
from tcomp.ops.testing import conv2d_nchw_python
from tcomp.runtime.nvcc import kernel_resources
from tcomp.schedule import create_schedule
from tcomp.target import Precision, Target

FP32, TF32, FP16, BF16 = Precision.FP32, Precision.TF32, Precision.FP16, Precision.BF16
SWIZZLE = SmemLayout.SWIZZLE


def rounded(x: np.ndarray, precision: Precision) -> np.ndarray:
    """``x`` (float32 or float16) with its values rounded as the tensor cores' operands are, in float64."""
    if x.dtype == np.float16 or precision is FP32:
        return x.astype(np.float64)
    if precision is FP16:
        return x.astype(np.float16).astype(np.float64)
    bits = x.astype(np.float32).view(np.uint32).astype(np.uint64)
    if precision is TF32:  # to nearest, ties away from zero
        out = ((bits + 0x1000) & 0xFFFFE000).astype(np.uint32)
    else:  # bfloat16, to nearest even
        out = (((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16) << 16).astype(np.uint32)
    return out.view(np.float32).astype(np.float64)


def check_product(got: np.ndarray, a: np.ndarray, b: np.ndarray, precision: Precision, k: int) -> None:
    exact = rounded(a, precision) @ rounded(b, precision)
    magnitude = np.abs(a.astype(np.float64)) @ np.abs(b.astype(np.float64))
    scale = max(1.0, float(magnitude.max()))
    np.testing.assert_allclose(got, exact, rtol=0, atol=k * 2.0 ** -23 * scale * 4)
    want = a.astype(np.float64) @ b.astype(np.float64)
    assert np.all(np.abs(got - want) <= precision.tolerance(k) * magnitude + 1e-30)


FAMILIES = {
    "simt_pad": (FP32, "float32", GemmTile(32, 32, 16, 2, 2, stages=2, lanes_m=4)),
    "simt_swizzle_kouter_lanes8": (FP32, "float32", GemmTile(32, 64, 16, 2, 2, stages=3, lanes_m=8,
                                                            layout=SWIZZLE, k_outer=True)),
    "simt_one_stage": (FP32, "float32", GemmTile(16, 32, 8, 1, 2, stages=1, lanes_m=4)),
    "tf32_pad": (TF32, "float32", GemmTile(32, 32, 16, 2, 2, stages=2)),
    "tf32_swizzle_kouter": (TF32, "float32", GemmTile(32, 32, 16, 2, 1, stages=3, layout=SWIZZLE, k_outer=True)),
    "fp16_words_4_stages": (FP16, "float32", GemmTile(32, 16, 16, 2, 1, stages=4)),
    "bf16_words_swizzle": (BF16, "float32", GemmTile(32, 32, 32, 1, 2, stages=2, layout=SWIZZLE)),
    "fp16_ldmatrix_swizzle": (FP16, "float16", GemmTile(32, 32, 32, 2, 2, stages=3, layout=SWIZZLE)),
    "fp16_ldmatrix_pad_x2": (FP16, "float16", GemmTile(32, 16, 16, 1, 2, stages=2)),
}
# (transpose_a, transpose_b) per family, so every operand layout meets every fragment path
LAYOUTS = {"simt_pad": (False, False), "simt_swizzle_kouter_lanes8": (True, False), "simt_one_stage": (False, True),
           "tf32_pad": (True, True), "tf32_swizzle_kouter": (False, True), "fp16_words_4_stages": (True, False),
           "bf16_words_swizzle": (False, False), "fp16_ldmatrix_swizzle": (True, True),
           "fp16_ldmatrix_pad_x2": (False, True)}


def matmul_schedule(M: int, N: int, K: int, family: str, batch: int = 0, target: Target | None = None):  # type: ignore[no-untyped-def]
    precision, dtype, tile = FAMILIES[family]
    transpose_a, transpose_b = LAYOUTS[family]
    a_shape = (K, M) if transpose_a else (M, K)
    b_shape = (N, K) if transpose_b else (K, N)
    if batch:
        a_shape, b_shape = (batch, *a_shape), (batch, *b_shape)
    A = te.placeholder(a_shape, dtype, "A")
    B = te.placeholder(b_shape, dtype, "B")
    product = ops.batch_matmul if batch else ops.matmul
    C = product(A, B, transpose_a=transpose_a, transpose_b=transpose_b, out_dtype="float32")
    s = create_schedule(C)
    schedule_matmul_tile(s, C, tile, precision, target)
    return s, [A, B, C]


def run_matmul(family: str, M: int, N: int, K: int, batch: int = 0) -> None:
    precision, dtype, _ = FAMILIES[family]
    transpose_a, transpose_b = LAYOUTS[family]
    s, tensors = matmul_schedule(M, N, K, family, batch)
    module = build_cuda(s, tensors, "cuda", name=f"gemm_{family}", runtime=CudaRuntime.EMULATOR)
    rng = np.random.default_rng(7)
    a = rng.uniform(-1, 1, tuple(int(d) for d in tensors[0].shape)).astype(dtype)
    b = rng.uniform(-1, 1, tuple(int(d) for d in tensors[1].shape)).astype(dtype)
    c = np.full(tuple(int(d) for d in tensors[2].shape), np.nan, np.float32)
    module(a, b, c)
    lhs = np.swapaxes(a, -1, -2) if transpose_a else a
    rhs = np.swapaxes(b, -1, -2) if transpose_b else b
    check_product(c, lhs, rhs, precision, K)


@pytest.mark.parametrize("family", FAMILIES)
def test_matmul_tiles_match_numpy_on_odd_sizes(family: str) -> None:
    run_matmul(family, 37, 45, 29)


def test_batched_matmul_tile() -> None:
    run_matmul("fp16_ldmatrix_swizzle", 19, 33, 40, batch=3)


@pytest.mark.parametrize("precision", list(Precision))
def test_conv_tiles_match_numpy(precision: Precision) -> None:
    """Padding 1 with a 3x3 window, stride 2 without padding, a 1x1 window (contiguous pixels), dilation 2."""
    shapes = [(1, 5, 9, 7, 6, 3, 1, 1, 1), (2, 3, 11, 7, 5, 3, 2, 0, 1), (1, 8, 6, 8, 20, 1, 1, 0, 1),
              (1, 4, 10, 9, 7, 3, 1, 2, 2)]
    n, ci, h, w, co, k, stride, pad, dilation = shapes[list(Precision).index(precision)]
    data = te.placeholder((n, ci, h, w), "float32", "data")
    kernel = te.placeholder((co, ci, k, k), "float32", "kernel")
    out = ops.conv2d_nchw(data, kernel, stride, pad, dilation)
    s = create_schedule(out)
    tile = GemmTile(32, 32, 16, 2, 2, stages=2, lanes_m=4, k_outer=precision is FP32)
    schedule_conv2d_tile(s, out, tile, 4, 8, precision)
    module = build_cuda(s, [data, kernel, out], "cuda", name=f"conv_{precision}", runtime=CudaRuntime.EMULATOR)
    rng = np.random.default_rng(3)
    x = rng.uniform(-1, 1, (n, ci, h, w)).astype(np.float32)
    wt = rng.uniform(-1, 1, (co, ci, k, k)).astype(np.float32)
    got = np.zeros(tuple(int(d) for d in out.shape), np.float32)
    module(x, wt, got)
    exact = conv2d_nchw_python(rounded(x, precision), rounded(wt, precision), stride, pad, dilation)
    scale = float(conv2d_nchw_python(np.abs(x), np.abs(wt), stride, pad, dilation).max())
    np.testing.assert_allclose(got, exact, rtol=0, atol=ci * k * k * 2.0 ** -21 * scale)


# ---------------------------------------------------------------------------------------------------------------------
CONVERSIONS = """
extern "C" void tc_convert(const float* x, unsigned short* h, unsigned short* b, unsigned* t, int n) {
  for (int i = 0; i < n; ++i) {
    h[i] = tc_f16_bits(x[i]);
    b[i] = tc_bf16_bits(x[i]);
    t[i] = tc_tf32(x[i]);
  }
}
"""


def test_emulated_conversions_round_as_the_hardware() -> None:
    from tcomp.codegen.cuda.warp_intrinsics import HELPER_SOURCE
    from tcomp.runtime.cuda_emu import compile_library
    from tcomp.runtime.cuda_emu_header import emulation_header

    library = ctypes.CDLL(str(compile_library(emulation_header() + HELPER_SOURCE + CONVERSIONS)))
    library.tc_convert.argtypes = [ctypes.c_void_p] * 4 + [ctypes.c_int]
    rng = np.random.default_rng(0)
    special = [0.0, -0.0, 1.0, 65504.0, 65519.99, 65520.0, 1e6, -1e6, 2.0 ** -24, 2.0 ** -25, 3 * 2.0 ** -26,
               2.0 ** -14, 2.0 ** -14 * (1 - 2.0 ** -11), 1 + 2.0 ** -11, 1 + 3 * 2.0 ** -11, np.inf, -np.inf,
               3.4e38, 1e-40, -1e-45]
    x = np.concatenate([np.array(special, np.float32), rng.standard_normal(2000).astype(np.float32) * 10.0 **
                        rng.integers(-9, 9, 2000)]).astype(np.float32)
    h = np.zeros(len(x), np.uint16)
    b = np.zeros(len(x), np.uint16)
    t = np.zeros(len(x), np.uint32)
    library.tc_convert(x.ctypes.data, h.ctypes.data, b.ctypes.data, t.ctypes.data, len(x))
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(h, x.astype(np.float16).view(np.uint16))
    np.testing.assert_array_equal(b.astype(np.uint32) << 16, rounded(x, BF16).astype(np.float32).view(np.uint32))
    finite = np.isfinite(x)
    np.testing.assert_array_equal(t[finite], rounded(x[finite], TF32).astype(np.float32).view(np.uint32))
    nan = np.array([np.nan], np.float32)
    library.tc_convert(nan.ctypes.data, h.ctypes.data, b.ctypes.data, t.ctypes.data, 1)
    assert np.isnan(h[:1].view(np.float16)[0]) and np.isnan((b[:1].astype(np.uint32) << 16).view(np.float32)[0])


# ---------------------------------------------------------------------------------------------------------------------
def test_tile_checks() -> None:
    problem = matmul_problem(64, 64, 64, "float32", TF32)
    with pytest.raises(GemmError, match="no multiple of the 16x8 mma tile"):
        check_tile(GemmTile(32, 32, 16, 4, 4), problem)
    with pytest.raises(GemmError, match="block_k must be a multiple of 8"):
        check_tile(GemmTile(32, 32, 4, 2, 2), problem)
    with pytest.raises(GemmError, match="exceed the 1024 per block"):
        check_tile(GemmTile(128, 128, 16, 2, 2), problem, Target("cuda -max-shared-memory-per-block=1024"))
    with pytest.raises(GemmError, match="float16 operands multiply on float16 tensor cores"):
        check_tile(GemmTile(), matmul_problem(64, 64, 64, "float16", BF16))
    with pytest.raises(GemmError, match="k_outer transposes 4-byte elements only"):
        check_tile(GemmTile(32, 32, 32, 2, 2, k_outer=True), matmul_problem(64, 64, 64, "float16", FP16))
    with pytest.raises(GemmError, match="need compute capability 8.0"):
        check_tile(GemmTile(32, 32, 16, 2, 2), problem, Target("cuda -arch=sm_75"))


def test_intrinsic_overhanging_tiles_keep_guards_out_and_check_limits() -> None:
    s, tensors = matmul_schedule(37, 45, 29, "tf32_pad")
    source = compile_artifact(s, tensors, Target("cuda"), "mm").artifact.source
    assert "37 - i_outer * 32" in source and "tc_mma_tf32(" in source and "cvt.rna.tf32.f32" in source
    s, tensors = matmul_schedule(64, 64, 64, "simt_pad")
    with pytest.raises(Exception, match="bytes of shared memory .*gemm_smem"):
        build_cuda(s, tensors, "cuda -max-shared-memory-per-block=1024", runtime=CudaRuntime.EMULATOR)


# ---------------------------------------------------------------------------------------------------------------------
DEFAULTS_4096 = {"fp32": ("float32", FP32), "tf32": ("float32", TF32), "bf16": ("float32", BF16),
                 "fp16_operands": ("float16", FP16)}


def _default_source(dtype: str, precision: Precision, arch: str) -> str:
    target = Target(f"cuda -arch={arch}")
    tile = default_tile(matmul_problem(4096, 4096, 4096, dtype, precision), 4096, 4096, target=target)
    A = te.placeholder((4096, 4096), dtype, "A")
    B = te.placeholder((4096, 4096), dtype, "B")
    C = ops.matmul(A, B, out_dtype="float32")
    s = create_schedule(C)
    schedule_matmul_tile(s, C, tile, precision, target)
    return compile_artifact(s, [A, B, C], target, f"mm_{dtype}_{precision}").artifact.source


@pytest.mark.nvcc
@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
def test_every_variant_compiles_with_nvcc(arch: str) -> None:
    sources = []
    for index, family in enumerate(FAMILIES):
        s, tensors = matmul_schedule(37 + index, 45, 29, family)
        sources.append(compile_artifact(s, tensors, Target(f"cuda -arch={arch}"), f"family_{family}").artifact.source)
    data = te.placeholder((1, 8, 9, 9), "float32", "data")
    kernel = te.placeholder((16, 8, 3, 3), "float32", "kernel")
    out = ops.conv2d_nchw(data, kernel, 1, 1)
    s = create_schedule(out)
    schedule_conv2d_tile(s, out, GemmTile(32, 32, 16, 2, 2, stages=2), 4, 8, FP16)
    sources.append(compile_artifact(s, [data, kernel, out], Target(f"cuda -arch={arch}"), "conv_fp16").artifact.source)
    resources = kernel_resources("\n".join(sources), arch)
    assert len(resources) == len(FAMILIES) + 2  # the padding kernel and the convolution
    for item in resources.values():
        assert 0 < item.registers <= 255 and item.spill_stores <= 16, item


@pytest.mark.nvcc
def test_default_4096_tiles_fit_registers_without_spills() -> None:
    """ptxas on the default tiles of matmul 4096^3 for sm_90: no spills; the float32 tile stays within the 128
    registers that let 2 blocks of 256 threads share a multiprocessor."""
    resources = {}
    for name, (dtype, precision) in DEFAULTS_4096.items():
        (resources[name],) = kernel_resources(_default_source(dtype, precision, "sm_90"), "sm_90").values()
    for name, item in resources.items():
        assert item.spill_stores == 0 and item.registers <= 255, (name, item)
    assert resources["fp32"].registers <= 128


def test_default_tiles_use_the_tensor_cores_the_precision_asks_for() -> None:
    target = Target("cuda -arch=sm_90")
    fp32 = default_tile(matmul_problem(4096, 4096, 4096, "float32", FP32), 4096, 4096, target=target)
    assert (fp32.block_m, fp32.block_n, fp32.threads, fp32.min_blocks, fp32.k_outer) == (128, 128, 256, 2, True)
    half_problem = matmul_problem(4096, 4096, 4096, "float16", FP16)
    half = default_tile(half_problem, 4096, 4096, target=target)
    assert half.warp_tile == (64, 64) and half.layout is SWIZZLE and (half.block_m, half.block_n) == (128, 256)
    static = Target("cuda -arch=sm_90 -max-shared-memory-per-block=49152")
    half_static = default_tile(half_problem, 4096, 4096, target=static)
    assert half_static.block_n == 128 and shared_bytes(half_static, half_problem) <= 48 * 1024
    small = default_tile(matmul_problem(64, 64, 64, "float32", FP32), 64, 64, target=target)
    assert small.block_m * small.block_n < 128 * 128
    assert replace(fp32, stages=2) != fp32


def test_conv_template_tunes_tile_kernels_for_tensor_cores() -> None:
    """``conv2d_nchw_cuda`` on a target with tensor cores: its space is the fitting convolution tiles, its fallback
    the default tile, and a config from the space computes the convolution."""
    from tcomp import autotune
    from tcomp.ops.cuda.gemm_choice import ConvTile, conv_problem, default_conv_tile

    args = (1, 16, 9, 11, 24, 3, 3, 1, 1)
    task = autotune.create_task("conv2d_nchw_cuda", args, target="cuda -precision=fp16")
    space = task.config_space
    problem = conv_problem(16, 11, 13, 24, (3, 3), (9, 11), (1, 1), (1, 1), 8, "float32", FP16)
    assert space.fallback["tile"].val == default_conv_tile(problem, 1, Target("cuda -precision=fp16")).name
    names = [entity.val for entity in space.knobs["tile"].entities]
    assert all(ConvTile.parse(name).tile.block_n == ConvTile.parse(name).tile_y * ConvTile.parse(name).tile_x
               for name in names)
    schedule, tensors = task.instantiate(space.get(len(space) // 2))
    module = build_cuda(schedule, tensors, task.target, runtime=CudaRuntime.EMULATOR)
    rng = np.random.default_rng(2)
    x = rng.uniform(-1, 1, (1, 16, 9, 11)).astype(np.float32)
    w = rng.uniform(-1, 1, (24, 16, 3, 3)).astype(np.float32)
    out = np.zeros((1, 24, 9, 11), np.float32)
    module(x, w, out)
    exact = conv2d_nchw_python(rounded(x, FP16), rounded(w, FP16), 1, 1)
    np.testing.assert_allclose(out, exact, rtol=0, atol=1e-4)
    with pytest.raises(GemmError, match="not a convolution tile name"):
        ConvTile.parse("128x128x16_w2x2_l4_s2_pad_pAxB")
