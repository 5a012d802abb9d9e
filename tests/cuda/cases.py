"""GPU schedules of every operator with a CUDA default schedule, with inputs and numpy references.

Each case builds ``(schedule, tensors)``, makes numpy arguments for a call (inputs random, outputs zero) and computes
the expected outputs. Sizes include ones the tiles do not divide. ``build(case)`` names the function after the case,
so kernel symbols are unique and the sources of all cases can be compiled as one file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from tcomp import ops, te
from tcomp.backend import compile_artifact
from tcomp.backend.cuda import CudaRuntime
from tcomp.backend.cuda.build import build_cuda
from tcomp.ops import cuda as cuda_ops
from tcomp.runtime.cuda_artifact import CudaArtifact
from tcomp.runtime.cuda_module import CudaModule
from tcomp.schedule import Schedule, create_schedule
from tcomp.target import Target
from tcomp.te.tensor import Tensor


@dataclass(frozen=True)
class Case:
    name: str
    make: Callable[[], tuple[Schedule, list[Tensor]]]
    shapes: tuple[tuple[int, ...], ...]  # of every argument, for one call
    reference: Callable[..., list[np.ndarray]]  # inputs -> expected outputs
    num_inputs: int
    rtol: float = 1e-5
    atol: float = 1e-6
    dtype: str = "float32"


def build(case: Case) -> CudaModule:
    schedule, tensors = case.make()
    return build_cuda(schedule, tensors, name=case.name, runtime=CudaRuntime.EMULATOR)


def artifact(case: Case) -> CudaArtifact:
    """The generated CUDA C of ``case``, without compiling it for emulation."""
    schedule, tensors = case.make()
    return compile_artifact(schedule, tensors, Target("cuda"), case.name).artifact


def check_case(module: CudaModule, case: Case) -> None:
    """Run ``module`` (built from ``case``) on fresh arguments and compare its outputs with the numpy reference."""
    args = arguments(case)
    module(*args)
    expected = case.reference(*args[: case.num_inputs])
    for got, want in zip(args[case.num_inputs:], expected):
        np.testing.assert_allclose(got, want, rtol=case.rtol, atol=case.atol)


def arguments(case: Case, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    if case.dtype == "float32":
        inputs = [rng.standard_normal(shape).astype(np.float32) for shape in case.shapes[: case.num_inputs]]
    else:
        inputs = [rng.integers(-10**6, 10**6, shape).astype(case.dtype) for shape in case.shapes[: case.num_inputs]]
    outputs = [np.zeros(shape, case.dtype) for shape in case.shapes[case.num_inputs:]]
    return inputs + outputs


def _vector_add() -> tuple[Schedule, list[Tensor]]:
    n = te.var("n")
    a = te.placeholder((n,), name="a")
    b = te.placeholder((n,), name="b")
    c = te.compute((n,), lambda i: a[i] + b[i], name="c")
    return cuda_ops.schedule_injective(c, num_threads=128), [a, b, c]


def _fused_elementwise() -> tuple[Schedule, list[Tensor]]:
    x = te.placeholder((6, 45), name="x")
    w = te.placeholder((45,), name="w")
    y = ops.sigmoid(ops.add(ops.multiply(x, w), 0.5))
    return cuda_ops.schedule_injective(y, num_threads=64), [x, w, y]


def _matmul(M: int, N: int, K: int, knobs: cuda_ops.MatmulKnobs | None = None) -> Callable[..., Any]:
    """The shared-memory schedule of ``ops.cuda.matmul`` (its default knobs for the shape unless given)."""
    return lambda: cuda_ops.matmul_cuda(M, N, K, knobs or cuda_ops.default_matmul_knobs(M, N, K))


def _reduce(shape: tuple[int, ...], axis: Any, reducer: Callable[..., Tensor]) -> Callable[..., Any]:
    def make() -> tuple[Schedule, list[Tensor]]:
        x = te.placeholder(shape, name="x")
        out = reducer(x, axis=axis)
        return cuda_ops.schedule_reduce(out, num_threads=32), [x, out]

    return make


def _rows_per_block(threads: int = 16, rows: int = 4, n: int = 70) -> Callable[..., Any]:
    def make() -> tuple[Schedule, list[Tensor]]:
        x = te.placeholder((9, n), name="x")
        k = te.reduce_axis((0, n), name="k")
        out = te.compute((9,), lambda i: te.sum(x[i, k] * x[i, k], axis=k), name="sumsq")
        s = create_schedule(out)
        cuda_ops.schedule_reduce_stage_cross_thread(s[out], num_threads=threads, rows_per_block=rows)
        return s, [x, out]

    return make


def _max_int(threads: int) -> tuple[Schedule, list[Tensor]]:
    x = te.placeholder((5, 300), name="x", dtype="int32")
    out = ops.max(x, axis=1)
    return cuda_ops.schedule_reduce(out, num_threads=threads), [x, out]


def _softmax(shape: tuple[int, ...]) -> Callable[..., Any]:
    return lambda: cuda_ops.softmax_cuda(shape, num_threads=32)


def _conv(n: int, c: int, h: int, w: int, o: int, k: int, stride: int, pad: int) -> Callable[..., Any]:
    return lambda: cuda_ops.conv2d_cuda(n, c, h, w, o, k, stride, pad)


def _conv_reference(stride: int, pad: int) -> Callable[..., list[np.ndarray]]:
    def reference(data: np.ndarray, kernel: np.ndarray) -> list[np.ndarray]:
        n, c, h, w = data.shape
        o, _, kh, kw = kernel.shape
        padded = np.pad(data, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
        oh, ow = (h + 2 * pad - kh) // stride + 1, (w + 2 * pad - kw) // stride + 1
        out = np.zeros((n, o, oh, ow), np.float32)
        for ry in range(kh):
            for rx in range(kw):
                patch = padded[:, :, ry: ry + stride * oh: stride, rx: rx + stride * ow: stride]
                out += np.einsum("nchw,oc->nohw", patch, kernel[:, :, ry, rx])
        return [out]

    return reference


def _softmax_reference(x: np.ndarray) -> list[np.ndarray]:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return [e / e.sum(axis=-1, keepdims=True)]


def _conv_out(h: int, k: int, stride: int, pad: int) -> int:
    return (h + 2 * pad - k) // stride + 1


CASES: list[Case] = [
    Case("vector_add", _vector_add, ((1000,), (1000,), (1000,)), lambda a, b: [a + b], 2),
    Case("fused_elementwise", _fused_elementwise, ((6, 45), (45,), (6, 45)),
         lambda x, w: [1 / (1 + np.exp(-(x * w + 0.5)))], 2),
    Case("matmul_64", _matmul(64, 64, 64), ((64, 64), (64, 64), (64, 64)), lambda a, b: [a @ b], 2, 1e-4, 1e-4),
    Case("matmul_odd", _matmul(50, 70, 45), ((50, 45), (45, 70), (50, 70)), lambda a, b: [a @ b], 2, 1e-4, 1e-4),
    Case("matmul_small_tiles", _matmul(33, 20, 17, cuda_ops.MatmulKnobs(16, 8, 4, 2, 2, smem_pad=1)),
         ((33, 17), (17, 20), (33, 20)), lambda a, b: [a @ b], 2, 1e-4, 1e-4),
    Case("matmul_double_buffer", _matmul(40, 30, 20, cuda_ops.MatmulKnobs(16, 16, 8, 2, 2, 1, double_buffer=True)),
         ((40, 20), (20, 30), (40, 30)), lambda a, b: [a @ b], 2, 1e-4, 1e-4),
    Case("matmul_double_buffer_even", _matmul(64, 64, 64, cuda_ops.MatmulKnobs(32, 32, 8, 4, 4, double_buffer=True)),
         ((64, 64), (64, 64), (64, 64)), lambda a, b: [a @ b], 2, 1e-4, 1e-4),
    Case("matmul_float4", _matmul(64, 96, 64, cuda_ops.MatmulKnobs(32, 32, 8, 4, 4, vector=4)),
         ((64, 64), (64, 96), (64, 96)), lambda a, b: [a @ b], 2, 1e-4, 1e-4),
    Case("matmul_float4_odd", _matmul(50, 70, 45, cuda_ops.MatmulKnobs(32, 32, 8, 4, 4, vector=4)),
         ((50, 45), (45, 70), (50, 70)), lambda a, b: [a @ b], 2, 1e-4, 1e-4),
    Case("matmul_async_float4_odd",
         _matmul(50, 70, 45, cuda_ops.MatmulKnobs(32, 32, 16, 4, 4, double_buffer=True, vector=4)),
         ((50, 45), (45, 70), (50, 70)), lambda a, b: [a @ b], 2, 1e-4, 1e-4),
    Case("conv2d_3x3_pad1", _conv(1, 5, 9, 11, 18, 3, 1, 1),
         ((1, 5, 9, 11), (18, 5, 3, 3), (1, 18, 9, 11)), _conv_reference(1, 1), 2, 1e-4, 1e-4),
    Case("conv2d_3x3_stride2", _conv(2, 8, 14, 13, 16, 3, 2, 1),
         ((2, 8, 14, 13), (16, 8, 3, 3), (2, 16, _conv_out(14, 3, 2, 1), _conv_out(13, 3, 2, 1))),
         _conv_reference(2, 1), 2, 1e-4, 1e-4),
    Case("sum_inner_axes", _reduce((5, 37, 19), (1, 2), ops.sum), ((5, 37, 19), (5,)),
         lambda x: [x.sum(axis=(1, 2))], 1, 1e-5, 1e-5),
    Case("max_last_axis", _reduce((6, 101), 1, ops.max), ((6, 101), (6,)), lambda x: [x.max(axis=1)], 1),
    Case("sum_first_axis", _reduce((37, 19), 0, ops.sum), ((37, 19), (19,)),
         lambda x: [x.sum(axis=0)], 1, 1e-5, 1e-5),
    Case("sum_all", _reduce((13, 29), None, ops.sum), ((13, 29), ()), lambda x: [np.array(x.sum())], 1, 1e-5, 1e-5),
    Case("sumsq_rows_per_block", _rows_per_block(), ((9, 70), (9,)), lambda x: [(x * x).sum(axis=1)], 1, 1e-5,
         1e-5),
    Case("sumsq_two_warps_per_row", _rows_per_block(64, 4, 150), ((9, 150), (9,)),
         lambda x: [(x * x).sum(axis=1)], 1, 1e-5, 1e-5),
    Case("sumsq_48_threads", _rows_per_block(48, 2, 100), ((9, 100), (9,)), lambda x: [(x * x).sum(axis=1)], 1,
         1e-5, 1e-5),
    Case("max_int32_1024_threads", lambda: _max_int(1024), ((5, 300), (5,)), lambda x: [x.max(axis=1)], 1,
         dtype="int32"),
    Case("softmax_rows", _softmax((7, 100)), ((7, 100), (7, 100)), _softmax_reference, 1),
    Case("softmax_3d", _softmax((2, 3, 33)), ((2, 3, 33), (2, 3, 33)), _softmax_reference, 1),
]

CASE_IDS = [case.name for case in CASES]


def by_name(name: str) -> Case:
    return next(case for case in CASES if case.name == name)

