"""Tunable template ``panel_matmul``: a matrix product whose weight is stored in the packed GEMM's column panels,
as a graph compiles the products of a transformer (the CPU graph pass ``gemm_panels``).

Arguments: ``rows, columns, depth, panel_width, panel_depth, a_in_place`` (ints) and the dtype: ``x[rows, depth]``
times ``panels[ceil(columns / panel_width), panel_depth, panel_width]`` (``tcomp.ops.panels``), ``a_in_place`` 1
where the product's input rows can be read where they are (a tensor or a view of one), as the graph's kernel has
them. ``tcomp.ops.cpu.panel_tiles.panel_workload`` builds them; the panels fix the register tile's columns and the
padded depth, so a workload names them.

Knobs: the default CPU schedule's own tile (``PanelTile``): ``mr`` register tile rows, ``kc`` depth of a K slice,
``mc`` rows of a block of A packed together, ``column_blocks`` blocks of column panels the cores take (0: blocks of
rows), ``in_place_a`` (A read in place). The fallback config is the default plan's tile
(``dense.panels_in_place_plan``), so the fallback schedule is the default kernel; a record's tile is used by the
fused kernel of a compiled model (``tcomp.graph.tuning.panel_tile_chooser``), epilogues included. The numpy
reference unpacks the panels and accumulates in float64.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tcomp import te
from tcomp.arith.factors import divisors
from tcomp.autotune.space import Config, ConfigEntity
from tcomp.autotune.template import template
from tcomp.ops.cpu.common import CpuTarget
from tcomp.ops.cpu.dense import panels_in_place_plan, schedule_matmul_stage
from tcomp.ops.cpu.gemm_plan import GemmPlan
from tcomp.ops.cpu.panel_tiles import PanelTile, kc_keeps_depth, tile_error
from tcomp.ops.panels import panel_matmul as panel_matmul_compute
from tcomp.schedule import Schedule, create_schedule
from tcomp.target import TargetKind
from tcomp.te.tensor import Tensor

# the K slices and row blocks a tuner tries (besides the default's)
KC_RANGE = (64, 1024)
ROW_BLOCKS = (32, 64, 128, 256, 512)
# column blocks per core the tuner tries (besides the default's)
BLOCKS_PER_CORE = (1, 2, 4, 8)


def panel_matmul_reference(inputs: Sequence[np.ndarray], rows: int, columns: int, depth: int, panel_width: int,
                           panel_depth: int, a_in_place: int = 1, dtype: str = "float32") -> list[np.ndarray]:
    """``x @ W`` with ``W[k, j] = panels[j // nr, k, j % nr]`` (``k < depth``, ``j < columns``), in float64."""
    x, panels = inputs
    weight = panels[:, :depth, :].transpose(1, 0, 2).reshape(depth, -1)[:, :columns]
    return [(x.astype(np.float64) @ weight.astype(np.float64)).astype(x.dtype)]


def default_plan(rows: int, columns: int, depth: int, panel_width: int, panel_depth: int, a_in_place: bool,
                 cpu: CpuTarget) -> GemmPlan:
    """The default schedule's plan of the workload (``ValueError`` where the panels are not the ones that the
    packed GEMM of ``cpu`` packs for it, so no kernel would take them)."""
    plan = panels_in_place_plan(rows, columns, depth, cpu, a_in_place)
    if plan is None or (plan.blocking.nr, plan.Kp) != (panel_width, panel_depth):
        wanted = "none (too little work or too much padding)" if plan is None else \
            f"panel_width={plan.blocking.nr}, panel_depth={plan.Kp}"
        raise ValueError(f"panel_matmul: panels of width {panel_width} and depth {panel_depth} are not the packed "
                         f"GEMM's for {rows}x{columns}x{depth} on this target (its panels: {wanted})")
    return plan


def panel_tile_of(config: ConfigEntity) -> PanelTile:
    """The ``PanelTile`` a ``panel_matmul`` config stands for."""
    return PanelTile(int(config["mr"].val), int(config["kc"].val), int(config["mc"].val),
                     int(config["column_blocks"].val), bool(config["in_place_a"].val))


def _knob_values(default: int, others: Sequence[int]) -> list[int]:
    return sorted(set(others) | {default})


@template("panel_matmul", reference=panel_matmul_reference, kind=TargetKind.LLVM)
def panel_matmul(cfg: Config, rows: int, columns: int, depth: int, panel_width: int, panel_depth: int,
                 a_in_place: int = 1, dtype: str = "float32") -> tuple[Schedule, list[Tensor]]:
    """``x[rows, depth] @ W`` for the weight ``W[depth, columns]`` in its panels, on the packed GEMM with the
    default CPU schedule's tile as knobs (see the module docstring)."""
    if dtype != "float32":
        raise ValueError(f"panel_matmul: the packed GEMM is float32 only, got dtype={dtype!r}")
    cpu = CpuTarget.of(cfg.target)
    readable = bool(a_in_place)
    plan = default_plan(rows, columns, depth, panel_width, panel_depth, readable, cpu)
    default = PanelTile.of(plan)
    vectors = panel_width // plan.lanes
    mr_max = max(1, (cpu.vector_registers - vectors - 1) // vectors)  # accumulators, a panel row, a broadcast
    rows_in_tile = _knob_values(default.mr, range(2, mr_max + 1))
    mr = cfg.define_knob("mr", rows_in_tile, fallback=default.mr)
    slices = [d for d in divisors(panel_depth)
              if KC_RANGE[0] <= d <= KC_RANGE[1] and kc_keeps_depth(d, depth, panel_depth)]
    kc = cfg.define_knob("kc", _knob_values(default.kc, slices), fallback=default.kc)
    mc = cfg.define_knob("mc", _knob_values(default.mc, [c for c in ROW_BLOCKS if c < plan.Mp]),
                         fallback=default.mc)
    panels = -(-columns // panel_width)
    blocks = [0] + [cpu.cores * b for b in BLOCKS_PER_CORE if cpu.cores * b <= panels] if cpu.cores > 1 else [0]
    column_blocks = cfg.define_knob("column_blocks", _knob_values(default.column_blocks, blocks),
                                    fallback=default.column_blocks)
    # A is read in place only in whole tiles of rows, without padding of K
    whole = readable and depth == panel_depth and any(rows % m == 0 for m in rows_in_tile)
    in_place = cfg.define_knob("in_place_a", [False, True] if whole else [False], fallback=default.in_place_a)
    tile = PanelTile(int(mr.val), int(kc.val), int(mc.val), int(column_blocks.val), bool(in_place.val))
    error = tile_error(tile, rows, columns, depth, panel_width, panel_depth, readable)
    if error is not None:
        raise ValueError(f"panel_matmul: {error}")
    cfg.add_flop(2.0 * rows * columns * depth)
    x = te.placeholder((rows, depth), name="x", dtype=dtype)
    weights = te.placeholder((panels, panel_depth, panel_width), name="panels", dtype=dtype)
    out = panel_matmul_compute(x, weights, columns, name="panel_matmul")
    s = create_schedule(out)
    schedule_matmul_stage(s, out, None, cpu, tile)
    return s, [x, weights, out]
