"""Never fail on limits: each default CUDA schedule checks its block against the target and falls back to one that
fits; a kernel over the 48 KB of static shared memory takes dynamic shared memory (with the opt-in) up to the
architecture's maximum. Each fallback builds, stays within the target and computes the right result (emulated)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

import tcomp
import tcomp.graph as tg
from tcomp import ops, te
from tcomp.backend.cuda import CudaRuntime
from tcomp.backend.cuda.build import build_cuda
from tcomp.codegen.cuda import GPUError
from tcomp.graph.testing import ModelBuilder
from tcomp.ops import cuda as cuda_ops
from tcomp.ops.cuda.conv2d import ConvGeometry
from tcomp.ops.cuda.dispatch import conv_knobs, schedule_cuda
from tcomp.ops.cuda.limits import BlockResources, first_fitting
from tcomp.runtime.nvcc import kernel_resources, nvcc_available
from tcomp.target import Target, shared_memory_opt_in
from tests.graph.test_cuda_target import assert_close, reference


def _build(outs: list[te.Tensor], args: list[te.Tensor], target: str, name: str) -> tcomp.runtime.Module:
    s = schedule_cuda(outs, Target(target))
    return build_cuda(s, args, target, name=name, runtime=CudaRuntime.EMULATOR)


def _conv(image: int, cin: int, cout: int, kernel: int, stride: int, pad: int) -> tuple[list[te.Tensor], te.Tensor]:
    data = te.placeholder((1, cin, image, image), name="data")
    weight = te.placeholder((cout, cin, kernel, kernel), name="weight")
    out = ops.conv2d_nchw(data, weight, stride, pad)
    return [data, weight, out], out


def _conv_reference(x: np.ndarray, w: np.ndarray, stride: int, pad: int) -> np.ndarray:
    x = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    k = w.shape[2]
    size = (x.shape[2] - k) // stride + 1
    out = np.zeros((1, w.shape[0], size, size))
    for ry in range(k):
        for rx in range(k):
            window = x[:, :, ry: ry + stride * size: stride, rx: rx + stride * size: stride]
            out += np.einsum("nchw,oc->nohw", window, w[:, :, ry, rx])
    return out


def _run_conv(args: list[te.Tensor], module: tcomp.runtime.Module, stride: int, pad: int) -> None:
    rng = np.random.default_rng(0)
    x, w = (rng.standard_normal(tuple(int(d) for d in t.shape)).astype(np.float32) for t in args[:2])
    out = np.zeros(tuple(int(d) for d in args[2].shape), np.float32)
    module(x, w, out)
    np.testing.assert_allclose(out, _conv_reference(x, w, stride, pad), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("arch,expected", [
    ("sm_90", 227 * 1024), ("sm_80", 163 * 1024), ("sm_86", 99 * 1024), ("sm_89", 99 * 1024),
    ("sm_75", 64 * 1024), ("sm_70", 96 * 1024), ("sm_61", 48 * 1024), ("sm_95", 227 * 1024),
])
def test_shared_memory_limit_comes_from_the_architecture(arch: str, expected: int) -> None:
    assert shared_memory_opt_in(arch) == expected
    target = Target(f"cuda -arch={arch}")
    assert target.max_shared_memory_per_block == expected and Target(str(target)) == target


def test_a_kernel_over_48_kb_takes_dynamic_shared_memory() -> None:
    """A 128x128x48 matmul tile needs 48 KB + 4 KB of padding: dynamic shared memory, the same results."""
    knobs = cuda_ops.MatmulKnobs(block_m=128, block_n=128, block_k=48, thread_m=8, thread_n=8, smem_pad=4)
    s, args = cuda_ops.matmul_cuda(130, 129, 100, knobs)
    module = build_cuda(s, args, "cuda -arch=sm_90", name="dynamic_shared_matmul", runtime=CudaRuntime.EMULATOR)
    (kernel,) = module.kernels
    assert kernel.shared_bytes > 48 * 1024 and kernel.dynamic_shared_bytes >= kernel.shared_bytes
    source = module.get_source()
    assert "TC_DYNAMIC_SHARED(tc_shared, " in source and "__shared__ __align__(16) float" not in source
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((130, 100), np.float32), rng.standard_normal((100, 129), np.float32)
    c = np.zeros((130, 129), np.float32)
    module(a, b, c)
    np.testing.assert_allclose(c, a @ b, rtol=1e-4, atol=1e-4)
    if nvcc_available():  # ptxas sees no static shared memory: the launch asks for it
        (resources,) = kernel_resources(source, "sm_90").values()
        assert resources.shared_bytes == 0


def test_first_fitting_takes_the_first_block_the_target_has_room_for() -> None:
    blocks = {"big": BlockResources((32, 32, 1), 40_000), "small": BlockResources((16, 16, 1), 4_000)}
    assert first_fitting(blocks, blocks.__getitem__, Target("cuda"), "op") == "big"
    assert first_fitting(blocks, blocks.__getitem__, Target("cuda -max-shared-memory-per-block=8192"), "op") == "small"
    assert first_fitting(blocks, blocks.__getitem__, None, "op") == "big"
    with pytest.raises(GPUError, match=r"op: no schedule fits target .*; the smallest, small, needs 256 threads > 64"):
        first_fitting(blocks, blocks.__getitem__, Target("cuda -max-threads-per-block=64"), "op")
    too_many_registers = BlockResources((32, 32, 1), registers_per_thread=100)
    assert "registers per block" in too_many_registers.problems(Target("cuda"))[0]


def test_patch_embedding_conv_falls_back_to_smaller_chunks() -> None:
    """A ViT's 16x16 stride-16 patch convolution: its default weight tile (16 channels x 8 x 16 x 16) needs 64 KB and
    more; on a target with 16 KB of shared memory the knobs shrink until the block fits, and the result holds."""
    args, out = _conv(64, 3, 64, 16, 16, 0)
    small = Target("cuda -max-shared-memory-per-block=16384")
    preferred = conv_knobs(out)
    fitted = conv_knobs(out, small)
    geometry = ConvGeometry.of(out)
    assert not geometry.resources(preferred).fits(small) and geometry.resources(fitted).fits(small)
    module = _build([out], args, str(small), "patch_conv_fallback")
    assert module.kernels[0].shared_bytes <= 16384
    _run_conv(args, module, 16, 0)


def test_squeezenet_expand_conv_fits_the_static_limit_of_an_older_gpu() -> None:
    """SqueezeNet 1.1's 3x3 expand convolution at 13x13 (a prime size: tiles of 7, the last one guarded) asks for
    more than 48 KB by default; on compute capability 6.1 (no opt-in) it takes smaller chunks and still computes the
    same values."""
    args, out = _conv(13, 64, 256, 3, 1, 1)
    sm61 = Target("cuda -arch=sm_61")
    assert conv_knobs(out, sm61).tile_y == 7
    module = _build([out], args, "cuda -arch=sm_61", "expand_conv_sm61")
    assert module.kernels[0].shared_bytes <= 48 * 1024 and module.kernels[0].dynamic_shared_bytes == 0
    _run_conv(args, module, 1, 1)


def test_registers_fallback_takes_fewer_outputs_per_thread() -> None:
    a = te.placeholder((128, 64), name="a")
    b = te.placeholder((64, 128), name="b")
    c = ops.matmul(a, b)
    module = _build([c], [a, b, c], "cuda -max-registers-per-block=4096", "matmul_few_registers")
    (kernel,) = module.kernels
    assert kernel.launch.threads_per_block <= 4096 // 32
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((128, 64), np.float32), rng.standard_normal((64, 128), np.float32)
    z = np.zeros((128, 128), np.float32)
    module(x, y, z)
    np.testing.assert_allclose(z, x @ y, rtol=1e-4, atol=1e-4)


def _small_model() -> onnx.ModelProto:
    b = ModelBuilder(seed=5)
    x = b.conv("x", 3, 16, 3, bias=True)
    x = b.node("Relu", [x])
    x = b.node("ReduceMean", [x], axes=[2, 3], keepdims=0)
    x = b.dense(x, 16, 10)
    x = b.node("Softmax", [x], axis=1)
    return b.model("fallbacks", [("x", [2, 3, 12, 12])], x, [2, 10])


@pytest.mark.parametrize("target", ["cuda -max-threads-per-block=16", "cuda -max-shared-memory-per-block=2048",
                                    "cuda -max-registers-per-block=2048"])
def test_a_model_compiles_for_a_small_target(target: str) -> None:
    """Every kernel of a model (conv, reduction, matmul, softmax, elementwise) fits a target with few threads,
    little shared memory or few registers per block, and the model's result holds."""
    model = _small_model()
    x = np.random.default_rng(3).standard_normal((2, 3, 12, 12)).astype(np.float32)
    executor = tg.compile(model, target=target)
    resolved = Target(target)
    for module in executor.modules:
        for kernel in module.kernels:
            assert kernel.launch.threads_per_block <= resolved.max_threads_per_block
            assert kernel.shared_bytes <= resolved.max_shared_memory_per_block
    [got] = executor.run([x])
    [want] = reference(model, {"x": x})
    assert_close(got, want)
