"""Schedules that cannot run as CUDA kernels fail at build (or at the primitive) with an error saying why."""

from __future__ import annotations

import pytest

import tcomp
from tcomp import te
from tcomp.codegen.cuda import CudaCodegenError, GPUError
from tcomp.ops import cuda as cuda_ops
from tcomp.runtime.cuda_device import gpu_available
from tcomp.schedule import ScheduleError
from tcomp.target import Target, TargetError


def _vector(n: object = 4096) -> tuple[tcomp.schedule.Schedule, list[te.Tensor], te.Tensor]:
    a = te.placeholder((n,), name="a")
    b = te.compute((n,), lambda i: a[i] + 1.0, name="b")
    return tcomp.create_schedule(b), [a, b], b


def _bound_vector(threads: int, tag: str = "threadIdx.x") -> tuple[tcomp.schedule.Schedule, list[te.Tensor]]:
    s, args, b = _vector()
    outer, inner = s[b].split(b.op.axis[0], factor=threads)
    s[b].bind(outer, te.thread_axis("blockIdx.x"))
    s[b].bind(inner, te.thread_axis(tag))
    return s, args


def test_too_many_threads_per_block() -> None:
    s, args = _bound_vector(2048)
    with pytest.raises(GPUError, match=r"2048 threads per block \(block 2048x1x1\) exceed the limit of 1024"):
        tcomp.build(s, args, target="cuda")


def test_target_thread_limit_is_used() -> None:
    s, args = _bound_vector(512)
    with pytest.raises(GPUError, match=r"512 threads per block .* exceed the limit of 256"):
        tcomp.build(s, args, target="cuda -max-threads-per-block=256")


def test_too_many_threads_along_z() -> None:
    s, args = _bound_vector(128, "threadIdx.z")
    with pytest.raises(GPUError, match="128 threads along z exceed the limit of 64"):
        tcomp.build(s, args, target="cuda")


def test_shared_memory_over_the_architecture_limit() -> None:
    knobs = cuda_ops.MatmulKnobs(block_m=128, block_n=128, block_k=64, thread_m=8, thread_n=8)
    s, args = cuda_ops.matmul_cuda(256, 256, 256, knobs)
    with pytest.raises(GPUError, match=r"65536 bytes of shared memory \(A.shared: 32768, B.shared: 32768\) exceed "
                                       r"the limit of 49152 bytes per block of target cuda -arch=sm_61"):
        tcomp.build(s, args, target="cuda -arch=sm_61")


def test_shared_memory_over_the_target_limit() -> None:
    s, args = cuda_ops.matmul_cuda(64, 64, 64)
    with pytest.raises(GPUError, match="exceed the limit of 1024 bytes per block of target cuda "
                                       "-max-shared-memory-per-block=1024"):
        tcomp.build(s, args, target="cuda -max-shared-memory-per-block=1024")


def test_thread_axis_with_mismatched_extents_in_one_kernel() -> None:
    M = N = K = 64
    A = te.placeholder((M, K), name="A")
    B = te.placeholder((K, N), name="B")
    k = te.reduce_axis((0, K), name="k")
    C = te.compute((M, N), lambda i, j: te.sum(A[i, k] * B[k, j], axis=k), name="C")
    s = tcomp.create_schedule(C)
    AS = s.cache_read(A, "shared", [C])
    i, j = C.op.axis
    by, ty = s[C].split(i, factor=8)
    bx, tx = s[C].split(j, factor=32)
    s[C].reorder(by, bx, ty, tx)
    for axis, tag in ((by, "blockIdx.y"), (bx, "blockIdx.x"), (ty, "threadIdx.y"), (tx, "threadIdx.x")):
        s[C].bind(axis, te.thread_axis(tag))
    ko, _ = s[C].split(k, factor=8)
    s[AS].compute_at(s[C], ko)
    fused = s[AS].fuse(*s[AS].op.axis)
    _, lanes = s[AS].split(fused, factor=64)  # 64 threads along x, where C has 32
    s[AS].bind(lanes, te.thread_axis("threadIdx.x"))
    with pytest.raises(GPUError, match=r"thread axis threadIdx.x is bound with extent 32 \(loop j.inner\) and "
                                       r"extent 64 \(loop ax0.ax1.fused.inner\)"):
        tcomp.build(s, [A, B, C], target="cuda")


def test_axis_bound_twice() -> None:
    s, _, b = _vector()
    outer, inner = s[b].split(b.op.axis[0], factor=64)
    s[b].bind(inner, te.thread_axis("threadIdx.x"))
    with pytest.raises(ScheduleError, match="bind: axis i.inner: is already bound to threadIdx.x"):
        s[b].bind(inner, te.thread_axis("threadIdx.y"))


def test_thread_tag_bound_to_two_axes_of_a_stage() -> None:
    s, _, b = _vector()
    outer, inner = s[b].split(b.op.axis[0], factor=64)
    s[b].bind(inner, te.thread_axis("threadIdx.x"))
    with pytest.raises(ScheduleError, match="thread threadIdx.x is already bound to axis i.inner"):
        s[b].bind(outer, te.thread_axis("threadIdx.x"))


def test_loop_nest_left_on_the_host() -> None:
    s, args, _ = _vector()
    with pytest.raises(GPUError, match=r"the loop nest computing b is not bound to GPU threads .* s\[b\].bind"):
        tcomp.build(s, args, target="cuda")


def test_thread_extent_must_be_constant() -> None:
    s, args, b = _vector(te.var("n"))
    outer, inner = s[b].split(b.op.axis[0], nparts=4)
    s[b].bind(outer, te.thread_axis("blockIdx.x"))
    s[b].bind(inner, te.thread_axis("threadIdx.x"))
    with pytest.raises(GPUError, match=r"the extent .* of threadIdx.x \(loop i.inner\) is not a constant"):
        tcomp.build(s, args, target="cuda")


def test_parallel_loop_inside_a_kernel() -> None:
    s, args, b = _vector()
    outer, inner = s[b].split(b.op.axis[0], factor=64)
    s[b].bind(outer, te.thread_axis("blockIdx.x"))
    s[b].parallel(inner)
    with pytest.raises(CudaCodegenError, match="loop i.inner is marked parallel"):
        tcomp.build(s, args, target="cuda")


def test_reduction_axis_cannot_be_bound_to_blocks() -> None:
    x = te.placeholder((8, 64), name="x")
    k = te.reduce_axis((0, 64), name="k")
    y = te.compute((8,), lambda i: te.sum(x[i, k], axis=k), name="y")
    s = tcomp.create_schedule(y)
    with pytest.raises(ScheduleError, match="bind: axis k: is a reduction axis"):
        s[y].bind(k, te.thread_axis("blockIdx.x"))


def test_cross_thread_reduction_needs_data_parallel_axes_outside() -> None:
    x = te.placeholder((8, 64), name="x")
    k = te.reduce_axis((0, 64), name="k")
    y = te.compute((8,), lambda i: te.sum(x[i, k], axis=k), name="y")
    s = tcomp.create_schedule(y)
    (i,) = y.op.axis
    s[y].reorder(k, i)
    s[y].bind(k, te.thread_axis("threadIdx.x"))
    with pytest.raises(ScheduleError, match="data-parallel axes i are inside the reduction axes"):
        tcomp.build(s, [x, y], target="cuda")


@pytest.mark.parametrize("text,pattern", [
    ("cuda -arch=80", "-arch: expected sm_<number>"),
    ("cuda -max-threads-per-block=0", "-max-threads-per-block: expected a positive integer"),
    ("llvm -arch=sm_80", "'-arch' does not apply to kind 'llvm'"),
])
def test_cuda_target_options(text: str, pattern: str) -> None:
    with pytest.raises(TargetError, match=pattern):
        Target(text)


def test_cuda_target_canonical_string() -> None:
    target = Target("cuda -arch=sm_90 -max-shared-memory-per-block=98304")
    assert (target.arch, target.max_threads_per_block, target.max_shared_memory_per_block) == ("sm_90", 1024, 98304)
    assert Target(str(target)) == target
    if not gpu_available():  # with a GPU, the default architecture is the GPU's
        assert str(Target("cuda")) == "cuda" and Target("cuda").arch == "sm_80"


def test_only_gpu_targets_run_in_thread_blocks() -> None:
    # shared code (block limits, tuning features) asks the target, not its kind
    assert Target("cuda -arch=sm_90").thread_blocks
    assert not Target("llvm").thread_blocks
