"""The GPU passes on lowered schedules: shared tiles relaxed over the block's threads, guards below attached stages,
one kernel per launched region, barriers where shared memory is exchanged, cross-thread reduction buffers."""

from __future__ import annotations

import pytest

import tcomp
from tcomp.codegen.cuda import GPUError
from tcomp.ir import expr as E
from tcomp.ir import stmt as S
from tcomp.ir.buffer import Buffer
from tcomp.ir.functor import children, post_order_visit
from tcomp.ir.gpu import barrier, is_barrier, is_shuffle
from tcomp.ops import cuda as cuda_ops
from tcomp.transform.storage_sync import storage_sync
from tests.cuda.cases import artifact, by_name


def _nodes(stmt: S.Stmt, kind: type) -> list[object]:
    found: list[object] = []

    def visit(node: object) -> None:
        if isinstance(node, kind):
            found.append(node)

    post_order_visit(stmt, visit)
    return found


def test_shared_tile_covers_the_whole_block() -> None:
    # matmul_64: 64x64 blocks, block_k 8, A rows padded to 9 (storage_align); without relaxation over threadIdx the
    # tiles would be one thread's 4 rows / 4 columns
    kernel = artifact(by_name("matmul_64")).kernel_funcs[0]
    sizes = {a.buffer.name: a.buffer.shape[0] for a in _nodes(kernel.body, S.Allocate)}
    assert int(sizes["A.shared"]) == 64 * 9 and int(sizes["B.shared"]) == 8 * 64 and int(sizes["C.local"]) == 16


def test_two_barriers_per_reduction_step() -> None:
    kernel = artifact(by_name("matmul_odd")).kernel_funcs[0]
    (ko_loop,) = [f for f in _nodes(kernel.body, S.For) if f.loop_var.name == "k.outer"]
    barriers = [n for n in _nodes(ko_loop.body, S.Evaluate) if is_barrier(n)]
    assert len(barriers) == 2
    # a barrier is never under a condition (guards wrap single statements)
    for cond in _nodes(kernel.body, S.IfThenElse):
        assert not any(is_barrier(n) for n in _nodes(cond, S.Evaluate))


def test_double_buffer_needs_one_barrier_per_step() -> None:
    kernel = artifact(by_name("matmul_double_buffer_even")).kernel_funcs[0]
    names = {a.buffer.name for a in _nodes(kernel.body, S.Allocate)}
    assert {"A.shared.0", "A.shared.1", "B.shared.0", "B.shared.1"} <= names
    (pair_loop,) = [f for f in _nodes(kernel.body, S.For) if f.loop_var.name == "k.outer.pair"]
    assert int(pair_loop.extent) == 4  # 8 steps of K, two per iteration
    assert len([n for n in _nodes(pair_loop.body, S.Evaluate) if is_barrier(n)]) == 2


def test_double_buffer_with_storage_that_is_not() -> None:
    schedule, tensors = cuda_ops.matmul_cuda(32, 32, 32, cuda_ops.MatmulKnobs(16, 16, 8, 2, 2))
    a_shared = next(stage for stage in schedule.stages if stage.name == "A.shared")
    a_shared.double_buffer()
    with pytest.raises(GPUError, match="double_buffer at loop k.outer: B.shared is allocated there too but not "
                                       "double-buffered"):
        tcomp.build(schedule, tensors, target="cuda")


def test_float4_copies_where_aligned() -> None:
    source = artifact(by_name("matmul_float4")).source
    assert source.count("*(float4*)(A_shared + ") == 1 and source.count("*(float4*)(B_shared + ") == 1
    assert "__shared__ __align__(16) float A_shared[256];" in source
    # K = 45: rows of A start at unaligned addresses, so its copy stays scalar; the guards of the edges too
    assert "*(float4*)" not in artifact(by_name("matmul_float4_odd")).source


def test_softmax_is_two_kernels_with_a_temporary() -> None:
    generated = artifact(by_name("softmax_rows"))
    assert [k.name for k in generated.kernels] == ["softmax_rows_kernel0", "softmax_rows_kernel1"]
    assert [b.name for b in generated.temporaries] == ["T_softmax_maxelem"]
    assert [b.name for b in generated.kernels[1].params] == ["x", "T_softmax", "T_softmax_maxelem"]
    assert all(k.launch.block == (32, 1, 1) for k in generated.kernels)


def _shuffles(stmt: S.Stmt) -> list[E.Call]:
    found: list[E.Call] = []

    def visit(node: object) -> None:
        if is_shuffle(node):
            assert isinstance(node, E.Call)
            found.append(node)

    post_order_visit(stmt, visit)
    return found


def test_reduction_within_a_warp_shuffles_without_shared_memory() -> None:
    """16 threads per row, 4 rows per block: butterfly shuffles of width 16, no shared memory, no barrier."""
    generated = artifact(by_name("sumsq_rows_per_block"))
    (kernel,) = generated.kernels
    assert kernel.launch.block == (16, 4, 1) and kernel.shared_bytes == 0 and kernel.synchronizes
    body = generated.kernel_funcs[0].body
    assert not [n for n in _nodes(body, S.Evaluate) if is_barrier(n)]
    assert [(int(c.args[1].value), int(c.args[2].value)) for c in _shuffles(body)] == [(8, 16), (4, 16), (2, 16),
                                                                                         (1, 16)]
    assert "__shfl_xor_sync(tc_warp_mask(), " in generated.source


def test_cross_warp_reduction_slots_replicated_per_row_of_threads() -> None:
    """64 threads per row (two warps), 4 rows: each warp shuffles, writes its total to one of 2 slots per row (a
    shared buffer replicated per row of threads), one barrier, then every warp reduces the 2 slots by shuffles."""
    generated = artifact(by_name("sumsq_two_warps_per_row"))
    (kernel,) = generated.kernels
    assert kernel.launch.block == (64, 4, 1)
    assert kernel.shared_bytes == 2 * 4 * 4
    body = generated.kernel_funcs[0].body
    assert len([n for n in _nodes(body, S.Evaluate) if is_barrier(n)]) == 1
    assert [int(c.args[2].value) for c in _shuffles(body)] == [32] * 5 + [2]


def test_reduction_over_48_threads_keeps_the_shared_tree() -> None:
    generated = artifact(by_name("sumsq_48_threads"))
    (kernel,) = generated.kernels
    assert kernel.shared_bytes == 48 * 2 * 4 and not _shuffles(generated.kernel_funcs[0].body)
    tree_steps = [n for n in _nodes(generated.kernel_funcs[0].body, S.Evaluate) if is_barrier(n)]
    assert len(tree_steps) == 7  # 48 -> 32 -> 16 -> 8 -> 4 -> 2 -> 1, then the result


def _under_condition(stmt: S.Stmt, inside: bool = False) -> list[tuple[S.Stmt, bool]]:
    """Every statement with whether some IfThenElse encloses it."""
    found = [(stmt, inside)]
    if isinstance(stmt, S.IfThenElse):
        inside = True
    for child in children(stmt):
        if isinstance(child, S.Stmt):
            found.extend(_under_condition(child, inside))
    return found


def test_guards_wrap_innermost_statements_in_kernels() -> None:
    schedule, tensors = by_name("matmul_odd").make()
    func = tcomp.lower(schedule, tensors, simple_mode=True)
    placed = _under_condition(func.body)
    shared = [inside for node, inside in placed if isinstance(node, S.Allocate) and node.buffer.scope == "shared"]
    assert shared == [False, False]  # the attached copies to shared memory run in every thread
    assert any(inside for node, inside in placed if isinstance(node, S.BufferStore))


def _shared_kernel(body: S.Stmt) -> S.PrimFunc:
    return S.PrimFunc("k", (), body)


def _thread_loop(var: E.Var, body: S.Stmt) -> S.Stmt:
    return S.For(var, E.const(0), E.const(32), S.ForKind.THREAD_BINDING, body, "threadIdx.x")


def test_storage_sync_separates_write_and_read() -> None:
    shared = Buffer("s", (E.const(32),), "float32", "shared")
    tx = E.Var("tx")
    write = S.BufferStore(shared, E.FloatImm(1.0), (tx,))
    read = S.BufferStore(shared, E.BufferLoad(shared, (31 - tx,), "float32"), (tx,))
    func = storage_sync(_shared_kernel(S.Allocate(shared, _thread_loop(tx, S.seq(write, read)))))
    body = func.body.body.body
    assert isinstance(body, S.SeqStmt) and is_barrier(body.seq[1]) and len(body.seq) == 3


def test_storage_sync_leaves_kernels_without_exchange_alone() -> None:
    shared = Buffer("s", (E.const(32),), "float32", "shared")
    tx = E.Var("tx")
    func = _shared_kernel(S.Allocate(shared, _thread_loop(tx, S.BufferStore(shared, E.FloatImm(1.0), (tx,)))))
    assert storage_sync(func) is func


def test_storage_sync_refuses_a_barrier_in_divergent_code() -> None:
    shared = Buffer("s", (E.const(32),), "float32", "shared")
    tx = E.Var("tx")
    exchange = S.seq(S.BufferStore(shared, E.FloatImm(1.0), (tx,)),
                     S.BufferStore(shared, E.BufferLoad(shared, (31 - tx,), "float32"), (tx,)))
    body = S.Allocate(shared, _thread_loop(tx, S.IfThenElse(tx < 16, exchange)))
    with pytest.raises(GPUError, match=r"inside the condition tx < 16, which depends on the thread"):
        storage_sync(_shared_kernel(body))


def test_barrier_node() -> None:
    assert is_barrier(barrier()) and not is_barrier(S.Evaluate(E.const(0)))


GOLDEN_VECTOR_ADD = """\
// CUDA C generated by tcomp for target cuda: function vector_add, 1 kernel(s)

extern "C" __global__ void __launch_bounds__(128) vector_add_kernel0(const float* __restrict__ a, \
const float* __restrict__ b, float* __restrict__ c, int n) {
  const int i_outer = (int)blockIdx.x;
  const int i_inner = (int)threadIdx.x;
  if (i_outer * 128 + i_inner < n) {
    c[i_outer * 128 + i_inner] = a[i_outer * 128 + i_inner] + b[i_outer * 128 + i_inner];
  }
}
"""


def test_golden_source() -> None:
    assert artifact(by_name("vector_add")).source == GOLDEN_VECTOR_ADD


def test_grid_of_symbolic_shape() -> None:
    (kernel,) = artifact(by_name("vector_add")).kernels
    n = kernel.size_vars[0]
    assert kernel.launch_config({n: 300}).grid == (3, 1, 1)
    assert kernel.launch_config({n: 0}).grid == (0, 1, 1)



def test_double_buffered_copies_are_asynchronous() -> None:
    """Copies into double-buffered shared tiles print as cp.async (plain copies below sm_80 and in emulation), and
    each barrier first waits for them; kernels without double buffering keep plain stores."""
    source = artifact(by_name("matmul_async_float4_odd")).source
    assert "tc_cp_async16(" in source and "tc_cp_async4(" in source  # float4 where aligned, scalar at the edges
    assert source.count("tc_cp_async_wait_all();\n") == source.count("__syncthreads();")
    assert "cp.async.wait_all" in source and "__CUDA_ARCH__ >= 800" in source
    assert "tc_cp_async" not in artifact(by_name("matmul_float4")).source


def test_cooperative_fetch_loops_unroll_when_short() -> None:
    """Fetch loops carry the pragma unroll_max_extent; the printer unrolls those with at most that many steps."""
    from tcomp.codegen.cuda.printer import KernelPrinter

    source = artifact(by_name("conv2d_3x3_pad1")).source
    assert source.count("#pragma unroll") >= 2
    i = E.Var("i", "int32")
    body = S.Evaluate(E.const(0, "int32"))
    for extent, unrolled in ((64, True), (65, False)):
        loop = S.For(i, E.const(0, "int32"), E.const(extent, "int32"), S.ForKind.SERIAL, body,
                     annotations=(("unroll_max_extent", 64),))
        assert KernelPrinter._unroll_by_pragma(loop) is unrolled
