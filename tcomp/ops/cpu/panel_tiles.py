"""The tile of a ``panel_matmul``'s packed GEMM, and the tile a tuning record gives it.

A ``panel_matmul`` (``tcomp.ops.panels``: B a weight stored in the GEMM's ``nr``-column panels, ``Kp`` deep) runs
the packed GEMM of ``packed_matmul.py`` with the plan of ``dense.panels_plan``. The panels fix the register tile's
columns ``nr`` and the padded depth ``Kp``; the rest of the plan is free (``PanelTile``):

- ``mr``: rows of the register tile (``mr x nr`` accumulators; rows beyond M are padding);
- ``kc``: the depth of a K slice (a divisor of ``Kp`` that keeps it: ``ceil(K / kc) * kc == Kp``);
- ``mc``: rows of a block of A packed together (``block_rows`` is ``mc`` rounded down to whole ``mr`` tiles);
- ``column_blocks``: the cores take that many blocks of column panels (0: blocks of rows instead);
- ``in_place_a``: the micro-kernel reads A's rows where they are instead of a packed copy (A's rows must be runs
  of K with a row stride, and M and K need no padding).

The default schedule takes the tile of ``panels_plan``. Inside ``with panel_tiles(choose):`` it asks
``choose(op, workload)`` first (``panel_workload``: the product's sizes as the ``panel_matmul`` tuning template
takes them); the graph compiler does this with its tuning records, so a tuned tile reaches the fused kernel (bias,
activation and residual epilogues included).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, replace
from typing import Any

from tcomp.ops.cpu.common import TileChoice, TileChooser
from tcomp.ops.cpu.gemm_plan import GemmBlocking, GemmPlan, plan_gemm
from tcomp.te.tensor import ComputeOp

Workload = tuple[Any, ...]


@dataclass(frozen=True)
class PanelTile:
    """The decisions of a packed GEMM's plan that its panels leave free (see the module docstring)."""

    mr: int
    kc: int
    mc: int
    column_blocks: int
    in_place_a: bool

    @staticmethod
    def of(plan: GemmPlan) -> PanelTile:
        """The tile of ``plan``."""
        return PanelTile(plan.blocking.mr, plan.blocking.kc, plan.blocking.mc,
                         plan.column_blocks if plan.by_columns else 0, plan.in_place_a)


def panel_workload(rows: int, columns: int, depth: int, nr: int, panel_depth: int, a_in_place: bool,
                   dtype: str) -> Workload:
    """``(M, N, K, nr, Kp, a_in_place, dtype)``: the arguments of the ``panel_matmul`` tuning template."""
    return (rows, columns, depth, nr, panel_depth, int(a_in_place), dtype)


def kc_keeps_depth(kc: int, depth: int, panel_depth: int) -> bool:
    """Whether K slices of ``kc`` cover ``depth`` in exactly ``panel_depth`` steps (the panels' padded depth)."""
    return kc >= 1 and panel_depth % kc == 0 and -(-depth // kc) * kc == panel_depth


def tile_error(tile: PanelTile, rows: int, columns: int, depth: int, nr: int, panel_depth: int,
               a_in_place: bool) -> str | None:
    """Why ``tile`` cannot run the product of ``rows x depth`` by panels ``[ceil(columns / nr), panel_depth, nr]``
    (None when it can)."""
    if tile.mr < 1 or tile.mc < 1 or tile.column_blocks < 0:
        return f"mr={tile.mr}, mc={tile.mc} and column_blocks={tile.column_blocks} must be positive"
    if not kc_keeps_depth(tile.kc, depth, panel_depth):
        return f"kc={tile.kc} does not cut K={depth} into the panels' depth {panel_depth}"
    if tile.column_blocks > -(-columns // nr):
        return f"{tile.column_blocks} column blocks exceed the {-(-columns // nr)} panels"
    if tile.in_place_a and not (a_in_place and rows % tile.mr == 0 and depth == panel_depth):
        return (f"A cannot be read in place with mr={tile.mr} (rows {rows}, K {depth}, panels {panel_depth} deep, "
                f"A {'readable' if a_in_place else 'not readable'} in place)")
    return None


def plan_with_tile(rows: int, columns: int, depth: int, nr: int, panel_depth: int, tile: PanelTile, lanes: int,
                   cores: int) -> GemmPlan:
    """The plan of the packed GEMM with the panels' ``nr`` and ``panel_depth`` and ``tile``'s decisions
    (``ValueError`` for a tile that cannot run it, ``tile_error``; whether A is readable in place is the caller's
    to check). ``plan_with_tile(..., PanelTile.of(plan), ...) == plan`` for a plan of ``dense.panels_plan``."""
    error = tile_error(tile, rows, columns, depth, nr, panel_depth, True)
    if error is not None:
        raise ValueError(f"panel_matmul tile {tile}: {error}")
    blocking = GemmBlocking(mr=tile.mr, nr=nr, mc=tile.mc, kc=tile.kc)
    plan = plan_gemm(rows, columns, depth, blocking, lanes, cores, a_readable_in_place=False)
    return replace(plan, by_columns=tile.column_blocks > 0, column_blocks=tile.column_blocks,
                   in_place_a=tile.in_place_a)


_TILES: TileChoice[PanelTile] = TileChoice("tcomp_panel_tiles")


def panel_tiles(choose: TileChooser) -> contextlib.AbstractContextManager[None]:
    """Within the block, ``panel_matmul`` schedules take ``choose(op, panel_workload(...))`` as their tile when it
    returns one (else the default tile)."""
    return _TILES.using(choose)


def chosen_tile(op: ComputeOp, workload: Workload) -> PanelTile | None:
    """The tile the innermost ``panel_tiles`` chooser gives ``op`` (None outside one, or when it gives none)."""
    return _TILES.get(op, workload)
