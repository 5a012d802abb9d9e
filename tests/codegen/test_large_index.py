"""Index arithmetic is 64-bit wherever a flat index can reach 2^31, and stays 32-bit where the buffer provably fits.

A kernel over an int8 tensor of 70000x40000 computed its flat index in 32 bits (``mul i32 %i, 40000``, then
``sext``), which wrapped negative and wrote out of bounds: with constant or symbolic shapes, in checked mode, in
parallel, fused, and in the ONNX model ``Expand`` then ``Not``. The IR of those kernels is inspected here (cheap);
one real run just over 2^31 int8 elements, and the ONNX model at the issue's size, run in child processes where the
machine has the memory (they died with SIGSEGV before).
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import tcomp
import tcomp.graph as tg
from tcomp import te
from tcomp.graph.kernels import compile_node
from tcomp.runtime import KernelError
from tcomp.target import as_target
from tcomp.transform.flatten import BufferTooLargeError

ROWS, COLS = 70000, 40000  # 2.8e9 elements


def _add_one(m: object, n: object, schedule: str = "plain") -> tuple[tcomp.schedule.Schedule, list[te.Tensor]]:
    a = te.placeholder((m, n), "int8", name="A")
    b = te.compute((m, n), lambda i, j: a[i, j] + te.const(1, "int8"), name="B")
    s = tcomp.create_schedule(b)
    if schedule == "fused":
        fused = s[b].fuse(*b.op.axis)
        outer, inner = s[b].split(fused, factor=32)
        s[b].parallel(outer)
        s[b].vectorize(inner)
    elif schedule == "parallel":
        s[b].parallel(b.op.axis[0])
    return s, [a, b]


def _index_mul_types(ll: str) -> set[str]:
    """The integer types of the multiplications by the row length in LLVM IR."""
    return set(re.findall(rf"mul (?:nuw )?(?:nsw )?(i32|i64)[^\n]*, {COLS}\b", ll))


@pytest.mark.parametrize("schedule", ["plain", "parallel"])
@pytest.mark.parametrize("checked", [False, True])
def test_constant_shape_beyond_2_31_indexes_in_64_bits(schedule: str, checked: bool) -> None:
    s, args = _add_one(ROWS, COLS, schedule)
    mod = tcomp.build(s, args, check_bounds=checked)
    assert "int64(i) * 40000i64" in mod.get_source("tir")
    assert _index_mul_types(mod.get_source("ll_unopt")) == {"i64"}


def test_fused_loop_beyond_2_31_is_64_bit() -> None:
    s, args = _add_one(ROWS, COLS, "fused")
    fused = s[args[1]].leaf_iter_vars[0]
    assert fused.var.dtype == "int64"
    text = str(tcomp.lower(s, args))
    assert f"parallel(0, {ROWS * COLS // 32}i64)" in text


@pytest.mark.parametrize("schedule", ["plain", "fused"])
def test_symbolic_shape_indexes_in_64_bits_unless_declared_small(schedule: str) -> None:
    s, args = _add_one(te.var("m"), COLS, schedule)  # m up to 2^31 - 1 rows
    assert "int64" in str(tcomp.lower(s, args))
    small_rows = te.var("m", max_value=1000)  # at most 4e7 elements: 32 bits suffice
    s, args = _add_one(small_rows, COLS, schedule)
    assert "int64" not in str(tcomp.lower(s, args))
    mod = tcomp.build(s, args)
    x = np.arange(3 * COLS, dtype=np.int8).reshape(3, COLS)
    y = np.empty_like(x)
    mod(x, y)
    np.testing.assert_array_equal(y, x + np.int8(1))
    with pytest.raises(ValueError, match="m = 1001 exceeds its declared maximum 1000"):
        mod(np.zeros((1001, COLS), np.int8), np.zeros((1001, COLS), np.int8))


def test_small_buffers_keep_32_bit_indices() -> None:
    s, args = _add_one(1024, 1024, "fused")
    assert "int64" not in str(tcomp.lower(s, args))
    assert _index_mul_types(tcomp.build(*_add_one(ROWS // 100, COLS)).get_source("ll_unopt")) == {"i32"}


def test_cuda_source_indexes_in_64_bits() -> None:
    a = te.placeholder((ROWS, COLS), "int8", name="A")
    b = te.compute((ROWS, COLS), lambda i, j: a[i, j] + te.const(1, "int8"), name="B")
    s = tcomp.create_schedule(b)
    outer, inner = s[b].split(s[b].fuse(*b.op.axis), factor=256)
    s[b].bind(outer, te.thread_axis("blockIdx.x"))
    s[b].bind(inner, te.thread_axis("threadIdx.x"))
    source = tcomp.build(s, [a, b], target="cuda").get_source("cuda")
    assert "const long long" in source and "(long long)blockIdx.x" in source
    assert "* 256LL" in source


def test_buffer_no_index_can_address_is_a_build_error() -> None:
    a = te.placeholder((1 << 40, 1 << 40), "int8", name="huge")
    b = te.compute((1, 1), lambda i, j: a[i, j], name="corner")
    with pytest.raises(BufferTooLargeError, match="buffer 'huge' .* has 1208925819614629174706176 elements"):
        tcomp.build(tcomp.create_schedule(b), [a, b])


@pytest.mark.parametrize(("columns", "message"), [
    (1 << 62, r"buffer 'T': 4 x 4611686018427387904 elements overflow a 64-bit size"),  # 2^64 elements
    (1 << 60, r"cannot allocate 4611686018427387904 elements of 4 bytes for buffer 'T' \(over 2\^63 bytes\)"),
])
def test_allocation_whose_size_overflows_fails_cleanly(columns: int, message: str) -> None:
    n = te.var("n", "int64")
    a = te.placeholder((n,), name="A")
    t = te.compute((n, columns), lambda i, j: a[i] + 1.0, name="T")
    out = te.compute((n,), lambda i: t[i, 0], name="out")
    mod = tcomp.build(tcomp.create_schedule(out), [a, out])
    with pytest.raises(KernelError, match=message):
        mod(np.zeros(4, np.float32), np.zeros(4, np.float32))


def _expand_not(rows: int) -> object:
    x = helper.make_tensor_value_info("x", TensorProto.BOOL, [1, COLS])
    shape = numpy_helper.from_array(np.array([rows, COLS], np.int64), "shape")
    nodes = [helper.make_node("Expand", ["x", "shape"], ["e"]), helper.make_node("Not", ["e"], ["y"])]
    graph = helper.make_graph(nodes, "expand_not", [x], [helper.make_tensor_value_info("y", TensorProto.BOOL, None)],
                              initializer=[shape])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_onnx_expand_not_kernel_indexes_in_64_bits() -> None:
    graph = tg.compile_graph(_expand_not(ROWS))
    sources = [compile_node(graph, node, as_target("llvm")).module.get_source("tir") for node in graph.nodes]
    assert sources and all("int64" in text for text in sources)


# ---------------------------------------------------------------------------------------------------------------------
# real runs, in child processes
def _available_bytes() -> int:
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


_RUN_CHILD = textwrap.dedent("""
    import numpy as np
    import tcomp
    from tcomp import te

    rows, cols = {rows}, {cols}
    out = np.empty((rows, cols), np.int8)
    sample = np.array([0, 1, rows // 2, rows - 2, rows - 1])
    for symbolic in (False, True):
        m, n = (te.var("m"), te.var("n")) if symbolic else (rows, cols)
        b = te.compute((m, n), lambda i, j: (i * 3 + j).astype("int8"), name="B")
        s = tcomp.create_schedule(b)
        if symbolic:
            outer, inner = s[b].split(s[b].fuse(*b.op.axis), factor=64)
            s[b].parallel(outer)
            s[b].vectorize(inner)
        else:
            s[b].parallel(b.op.axis[0])
        out.fill(0)
        tcomp.build(s, [b])(out)
        rows_ok = np.array_equal(out[sample], (sample[:, None] * 3 + np.arange(cols)).astype(np.int8))
        last_column_ok = np.array_equal(out[:, -1], (np.arange(rows) * 3 + cols - 1).astype(np.int8))
        print(rows_ok, last_column_ok, flush=True)
""")


@pytest.mark.slow
@pytest.mark.skipif(_available_bytes() < 3 << 30, reason="needs 3 GiB of free memory")
def test_real_run_just_over_2_31_int8_elements() -> None:
    rows, cols = 53688, 40000  # 2,147,520,000 = 2^31 + 36,352 elements
    child = subprocess.run([sys.executable, "-c", _RUN_CHILD.format(rows=rows, cols=cols)], capture_output=True,
                           text=True, timeout=900)
    assert child.returncode == 0, f"the child died (status {child.returncode}): {child.stderr[-2000:]}"
    assert child.stdout.split() == ["True", "True", "True", "True"]


_ONNX_CHILD = textwrap.dedent("""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper
    import tcomp.graph as tg
    from tests.codegen.test_large_index import COLS, ROWS, _expand_not

    x = (np.arange(COLS) % 3 == 0).reshape(1, COLS)
    [y] = tg.compile(_expand_not(ROWS)).run([x])
    rows = np.array([0, 1, ROWS // 2, ROWS - 1])
    print(y.shape == (ROWS, COLS), bool((y[rows] == ~x).all()), int(y.sum(dtype=np.int64)) == ROWS * int((~x).sum()))
""")


@pytest.mark.slow
@pytest.mark.skipif(_available_bytes() < 9 << 30, reason="needs 9 GiB of free memory (three 2.8 GB tensors)")
def test_onnx_expand_not_at_70000_by_40000() -> None:
    child = subprocess.run([sys.executable, "-c", _ONNX_CHILD], capture_output=True, text=True, timeout=900,
                           cwd=Path(__file__).resolve().parents[2])
    assert child.returncode == 0, f"the child died (status {child.returncode}): {child.stderr[-2000:]}"
    assert child.stdout.split() == ["True", "True", "True"]
