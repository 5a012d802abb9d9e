"""The generated CUDA C of every default GPU schedule, run in CPU emulation, equals numpy (sizes the tiles do not
divide included)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import tcomp
from tcomp import te
from tcomp.runtime.cuda_device import gpu_available
from tests.cuda.cases import CASE_IDS, CASES, Case, build, by_name, check_case


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_emulated_result_equals_numpy(case: Case) -> None:
    check_case(build(case), case)


def test_symbolic_shape_grid_follows_the_call() -> None:
    module = build(by_name("vector_add"))
    for size in (1, 127, 128, 129, 1000):
        a, b = np.arange(size, dtype=np.float32), np.ones(size, np.float32)
        c = np.zeros(size, np.float32)
        module(a, b, c)
        np.testing.assert_array_equal(c, a + 1)
        (config,) = module.launch_configs(a, b, c)
        assert config.grid == (-(-size // 128), 1, 1) and config.block == (128, 1, 1)


@pytest.mark.skipif(gpu_available(), reason="with a GPU, build picks the device")
def test_build_with_target_cuda_says_it_is_emulated() -> None:
    module = _scaling_kernel(37, 2.0)
    assert "emulated" in repr(module)
    _check_scaling(module, 37, 2.0)


def _scaling_kernel(n: int, factor: float) -> Any:
    """``b = a * factor`` over ``n`` elements for ``cuda``: blocks of 16 threads."""
    a = te.placeholder((n,), name="a")
    b = te.compute((n,), lambda i: a[i] * factor, name="b")
    s = tcomp.create_schedule(b)
    outer, inner = s[b].split(b.op.axis[0], factor=16)
    s[b].bind(outer, te.thread_axis("blockIdx.x"))
    s[b].bind(inner, te.thread_axis("threadIdx.x"))
    return tcomp.build(s, [a, b], target="cuda")


def _check_scaling(module: Any, n: int, factor: float) -> None:
    x = np.random.rand(n).astype(np.float32)
    y = np.zeros(n, np.float32)
    module(x, y)
    np.testing.assert_allclose(y, x * factor)


def test_autotune_cuda_template_fallback_runs() -> None:
    from tcomp.autotune import create_task

    task = create_task("matmul_cuda", (64, 48, 32), target="cuda")
    schedule, tensors = task.instantiate(None)
    module = tcomp.build(schedule, tensors, target="cuda", name="template_matmul")
    rng = np.random.default_rng(1)
    a = rng.standard_normal((64, 32), dtype=np.float32)
    b = rng.standard_normal((32, 48), dtype=np.float32)
    c = np.zeros((64, 48), np.float32)
    module(a, b, c)
    np.testing.assert_allclose(c, a @ b, rtol=1e-4, atol=1e-4)


def test_guards_of_two_axes_split_alike_are_both_kept() -> None:
    """``y.o * 2 + y.i < 3 && x.o * 2 + x.i < 3``: the operands are equal up to renaming, yet both guards print
    (printing one let the threads past the last column write into the next row)."""
    a = te.placeholder((3, 3), name="a")
    b = te.compute((3, 3), lambda y, x: a[y, x] * te.cast(x + 1, "float32"), name="b")
    s = tcomp.create_schedule(b)
    y, x = b.op.axis
    yo, yi = s[b].split(y, factor=2)
    xo, xi = s[b].split(x, factor=2)
    s[b].reorder(yo, xo, yi, xi)
    for axis, tag in ((yo, "blockIdx.y"), (xo, "blockIdx.x"), (yi, "threadIdx.y"), (xi, "threadIdx.x")):
        s[b].bind(axis, te.thread_axis(tag))
    module = tcomp.build(s, [a, b], target="cuda")
    assert "y_outer * 2 + y_inner < 3 && x_outer * 2 + x_inner < 3" in module.artifact.source
    x_in = np.arange(9, dtype=np.float32).reshape(3, 3)
    out = np.zeros((3, 3), np.float32)
    module(x_in, out)
    np.testing.assert_array_equal(out, x_in * np.arange(1, 4, dtype=np.float32))


@pytest.mark.parametrize("dtype", ["int8", "uint16", "int32", "uint64"])
def test_bit_operations_in_cuda_c(dtype: str) -> None:
    """The C of and / or / xor / not and both shifts: narrow types cast back after C's promotion to int, a left
    shift of a signed value through the unsigned type, amounts out of range as ONNX's BitShift gives them."""
    n = 45
    bits = np.iinfo(dtype).bits
    x = te.placeholder((n,), dtype, name="x")
    y = te.placeholder((n,), dtype, name="y")
    z = te.compute((n,), lambda i: te.bitwise_or(te.bitwise_and(te.shift_left(x[i], y[i]), te.bitwise_not(y[i])),
                                                 te.bitwise_xor(te.shift_right(x[i], y[i]), x[i])), name="z")
    s = tcomp.create_schedule(z)
    outer, inner = s[z].split(z.op.axis[0], factor=16)
    s[z].bind(outer, te.thread_axis("blockIdx.x"))
    s[z].bind(inner, te.thread_axis("threadIdx.x"))
    module = tcomp.build(s, [x, y, z], target="cuda")
    info = np.iinfo(dtype)
    rng = np.random.default_rng(3)
    a = rng.integers(info.min, info.max, n, dtype=dtype, endpoint=True)
    b = rng.integers(0 if info.min == 0 else -3, bits + 3, n).astype(dtype)
    out = np.zeros(n, dtype)
    module(a, b, out)
    in_range = (b >= 0) & (b < bits)
    safe = np.where(in_range, b, 0).astype(dtype)
    unsigned = np.dtype(f"u{np.dtype(dtype).itemsize}")
    left = np.where(in_range, np.left_shift(a.view(unsigned), safe.view(unsigned)).view(dtype), 0).astype(dtype)
    fill = np.where(a < 0, -1, 0).astype(dtype) if info.min < 0 else np.zeros_like(a)
    right = np.where(in_range, np.right_shift(a, safe), fill).astype(dtype)
    np.testing.assert_array_equal(out, (left & ~b) | (right ^ a))


@pytest.mark.parametrize(("shape", "axis", "exclusive", "reverse"), [((3, 70), 1, False, False),
                                                                     ((5, 4, 9), 0, True, True)])
def test_default_schedule_of_a_running_sum(shape: tuple[int, ...], axis: int, exclusive: bool,
                                           reverse: bool) -> None:
    """``cumsum`` (a scan: positions from an attention mask) under the default CUDA schedule: the scan's first row
    and step stay stages of the scan (inlined, they had no bounds), each thread running the time loop over its own
    column; against numpy, in emulation where there is no GPU."""
    from tcomp.ops.cuda import schedule_cuda
    from tcomp.ops.scan import cumsum

    x = te.placeholder(shape, name="x", dtype="int32")
    y = cumsum(x, axis=axis, exclusive=exclusive, reverse=reverse)
    module = tcomp.build(schedule_cuda([y], tcomp.Target("cuda")), [x, y], target="cuda")
    data = np.random.default_rng(3).integers(-9, 9, shape).astype(np.int32)
    got = np.zeros(shape, np.int32)
    module(data, got)
    flipped = np.flip(data, axis) if reverse else data
    expected = np.cumsum(flipped, axis=axis) - (flipped if exclusive else 0)
    np.testing.assert_array_equal(got, np.flip(expected, axis) if reverse else expected)



@pytest.mark.skipif(gpu_available(), reason="the emulation's compiler")
@pytest.mark.parametrize("header", ["precompiled", "corrupt", "none"])
def test_libraries_include_the_precompiled_header_and_compile_without_one(
        header: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Libraries include the emulation header precompiled once; a precompiled header the compiler cannot read, or
    none at all, still gives a library that computes the kernel."""
    from tcomp.runtime import cuda_emu

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # a cache of its own: every library compiles anew
    path = cuda_emu.precompiled_header(cuda_emu.host_compiler())
    assert path is not None and path.read_text() == cuda_emu.emulation_header()
    assert Path(f"{path}.gch").stat().st_size > 0
    if header == "corrupt":
        Path(f"{path}.gch").write_bytes(b"not a precompiled header")
    if header == "none":
        monkeypatch.setattr(cuda_emu, "precompiled_header", lambda compiler: None)
    module = _scaling_kernel(33, 5.0)
    assert Path(module.library_path).parent == cuda_emu.cache_dir()
    _check_scaling(module, 33, 5.0)
