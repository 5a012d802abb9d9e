"""Default CPU schedule of ``quantized_matmul`` (``tcomp/ops/quantized.py``): the packed GEMM of
``packed_matmul.py`` on an integer micro-kernel.

The weight is already in its panels (``pack_quantized_panels``, packed at compile time in the groups and with the
shape ``quantized_plan`` gives); every ``mr x nr x kc`` tile is a call of a micro-kernel. Where the CPU has VNNI
(``CpuTarget.byte_dots``) that is ``tcomp_igemm_u8s8``: ``vpdpbusd`` adds four byte products per int32 lane and
instruction (against one product per float32 lane for the float GEMM), the rows of A (uint8) packed into ``mr``-row
micro-panels, zero beyond K, or read in place. Elsewhere it is ``tcomp_igemm_i16``: ``pmaddwd`` adds two int16
products per lane, the weight stored in pairs of int16 and the rows of A widened to int16 as they are packed. The
zero-point correction and whatever follows (the conversion to float, the scales, a bias) run as the product's
epilogue, block by block. The slices of K are deeper than the float GEMM's (up to ``MAX_DEPTH`` steps): a slice of
a panel holds a quarter or half of the bytes. A symbolic number of rows (a quantized model's prompt) takes the plan
of ``TYPICAL_ROWS`` rows (``packed_matmul.with_symbolic_rows``).
"""

from __future__ import annotations

from dataclasses import replace

from tcomp.ir.expr import IterVar
from tcomp.ops.cpu.common import CpuTarget, const_extent, vector_factor
from tcomp.ops.cpu.gemm_plan import GemmPlan, micro_blocking, plan_gemm, tile_rows
from tcomp.ops.cpu.grouped_panels import schedule_grouped_panels
from tcomp.ops.cpu.intrin import igemm_intrin
from tcomp.ops.quantized import BYTES, PAIRS, panel_dtype
from tcomp.schedule.schedule import Schedule
from tcomp.schedule.stage import Stage
from tcomp.te.intrin import TensorIntrin
from tcomp.te.tensor import ComputeOp, PlaceholderOp, Tensor

# the deepest slice of K a tile runs in bytes (an ``nr``-column panel slice of 1024 steps of bytes, or 512 of int16,
# is 32 KiB with 32 columns)
MAX_DEPTH = 1024
# the most channels of NCHW data whose loop ``im2col`` unrolls
MAX_UNROLLED_CHANNELS = 64


def integer_gemm_pays(cpu: CpuTarget) -> bool:
    """Whether ``cpu`` runs the integer GEMM: it has ``vpdpbusd`` or ``pmaddwd`` at its register width (against the
    int32 product on 128 x 768 x 768, 2 cores, Zen 4, a test run beside: 5.4x with VNNI, 2.8x with AVX-512 alone,
    2.0x with AVX2 code)."""
    return cpu.byte_dots or cpu.word_dots


def panel_group(cpu: CpuTarget) -> int:
    """The steps of K per group of the panels the micro-kernel for ``cpu`` reads: ``BYTES`` with VNNI, else
    ``PAIRS`` (which needs ``cpu.word_dots``)."""
    return BYTES if cpu.byte_dots else PAIRS


def narrow_panels_pay(n: int, lanes: int) -> bool:
    """Whether panels of one vector of columns beat the usual two for ``n`` columns: where two-vector panels would
    pad more than a quarter of ``n`` (16 columns: 32 computed; 48: 64), measured on Zen 4 with a requantizing
    epilogue (3136 x 144 x 48: 0.079 -> 0.062 ms; 144 columns, 11% padding: 0.95-1.03x, kept)."""
    padding = -(-n // (2 * lanes)) * 2 * lanes - -(-n // lanes) * lanes
    return 4 * padding > n


def quantized_plan(m: int, n: int, k: int, cpu: CpuTarget, a_in_place: bool = False) -> GemmPlan:
    """The packed GEMM's plan for ``[m, k] x [k, n]`` of 8-bit values: the float GEMM's register tile for int32
    lanes (panels of one vector where ``narrow_panels_pay``), slices of K of at most ``MAX_DEPTH`` steps in whole
    groups (``panel_group``). A is read in place only as bytes (``a_in_place``: its rows are runs of K in memory).
    Its ``Np / nr``, ``Kp`` and ``nr`` give the shape of the packed weight (``pack_quantized_panels``)."""
    group = panel_group(cpu)
    lanes = cpu.lanes("int32")
    slices = -(-k // (MAX_DEPTH if group == BYTES else MAX_DEPTH // 2))
    depth = -(-k // slices)
    blocking = replace(micro_blocking(m, k, lanes, cpu.vector_registers), kc=-(-depth // group) * group)
    if narrow_panels_pay(n, lanes):
        rows = tile_rows(m, cpu.vector_registers - 2)  # a row's accumulator; one panel vector and a broadcast
        blocking = replace(blocking, nr=lanes, mr=rows, mc=rows * max(1, blocking.mc // rows))
    in_place = a_in_place and group == BYTES and k % group == 0
    return plan_gemm(m, n, k, blocking, lanes, cpu.cores, a_readable_in_place=in_place)


def schedule_quantized_matmul(s: Schedule, tensor: Tensor, host: Stage | None, cpu: CpuTarget) -> None:
    """Schedule the product ``tensor`` (the ``quantized_matmul`` stage) and its epilogue ``host`` (an output that
    reads it elementwise, or None) as the module docstring says; products whose panels were packed for another
    plan or micro-kernel keep plain parallel loops."""
    op = s[tensor].op
    assert isinstance(op, ComputeOp)
    x = next(t for t in op.input_tensors() if t.dtype == "uint8")
    panels = next(t for t in op.input_tensors() if t.dtype in ("int8", "int16"))
    group = panel_group(cpu)
    pairs = group == PAIRS

    def plan_of(m: int, n: int, k: int, fixed_rows: bool) -> GemmPlan | None:
        if panels.dtype != panel_dtype(group) or not integer_gemm_pays(cpu):
            return None
        return quantized_plan(m, n, k, cpu, fixed_rows and isinstance(x.op, PlaceholderOp))

    def intrin_of(plan: GemmPlan) -> TensorIntrin:  # symbolic rows: see packed_matmul
        bl = plan.blocking
        return igemm_intrin(bl.mr, bl.nr, bl.kc, plan.lanes, pairs, plan.symbolic_rows)

    schedule_grouped_panels(s, tensor, host, cpu, x, panels, group, plan_of, "int16" if pairs else None, "int32",
                            intrin_of)


def schedule_im2col(stage: Stage, cpu: CpuTarget) -> None:
    """``im2col`` (``tcomp/ops/quantized.py``) at the root: rows of one output row of pixels per parallel task (the
    row split by the output width: no division per element). Where the taps of a kernel row are one run of the
    channels-last source (``runs``: padded first, or read in place), each run is copied as vectors; else each tap's
    channels are, or one at a time (unrolled where few) from NCHW data read in place. A padded source is a stage of
    its own (``schedule_padded_windows``)."""
    op = stage.op
    assert isinstance(op, ComputeOp)
    channels, kernel_width = int(op.attrs["channels"]), int(op.attrs["kernel_width"])
    rows, steps = op.axis
    line, _ = stage.split(rows, factor=int(op.attrs["plane"][1]))
    lanes = cpu.lanes(op.output(0).dtype)
    if op.attrs["runs"]:
        _, run = stage.split(steps, factor=kernel_width * channels)
        _vectorize(stage, run, kernel_width * channels, lanes)
    else:
        tap, channel = stage.split(steps, factor=channels)
        stage.split(tap, factor=kernel_width)  # kernel rows and columns: no division by the width
        if op.attrs["contiguous"]:
            _vectorize(stage, channel, channels, lanes)
        elif channels <= MAX_UNROLLED_CHANNELS:
            stage.unroll(channel)
    if cpu.cores > 1:
        stage.parallel(line)


def _vectorize(stage: Stage, axis: IterVar, extent: int, lanes: int) -> None:
    factor = vector_factor(extent, lanes)
    if factor is not None:
        _, lane = stage.split(axis, factor=factor)
        stage.vectorize(lane)


def schedule_padded_windows(stage: Stage, cpu: CpuTarget) -> None:
    """The padded channels-last source of ``im2col`` (a root ``pad`` stage): image rows in parallel, each pixel's
    channels copied as vectors from channels-last data, one at a time (unrolled where few) from NCHW data."""
    n, y, x, channel = stage.op.axis
    channels = const_extent(channel)
    if cpu.cores > 1:
        stage.parallel(stage.fuse(n, y))
    if channels is None:
        return
    if stage.op.attrs["channels_last"]:
        _vectorize(stage, channel, channels, cpu.lanes(stage.op.output(0).dtype))
    elif channels <= MAX_UNROLLED_CHANNELS:
        stage.unroll(channel)
