"""The ``panel_matmul`` template: its fallback is the default schedule of a product from panels, its configs match
the numpy reference, and configs that do not fit are rejected."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import tcomp
from tcomp.autotune import create_task
from tcomp.autotune.measure import MeasureResult, MeasureStatus
from tcomp.autotune.record import Record, RecordWriter, read_records
from tcomp.autotune.space import ConfigEntity, SpaceError
from tcomp.autotune.templates.cpu.panels import panel_tile_of
from tcomp.ops.cpu import dense
from tcomp.ops.cpu.common import CpuTarget
from tcomp.ops.cpu.dense import panels_plan, schedule_matmul_stage
from tcomp.ops.cpu.panel_tiles import PanelTile, panel_workload, plan_with_tile
from tcomp.ops.panels import pack_panels
from tcomp.ops.panels import panel_matmul as panel_matmul_compute
from tcomp.schedule import create_schedule
from tcomp.target import Target

TARGETS = ["llvm -num-cores=2", "llvm -mcpu=skylake-avx512 -num-cores=2"]


def workload(rows: int, columns: int, depth: int, target: str) -> tuple:  # type: ignore[type-arg]
    plan = panels_plan(rows, columns, depth, CpuTarget.of(Target(target)))
    assert plan is not None
    return panel_workload(rows, columns, depth, plan.blocking.nr, plan.Kp, True, "float32")


def default_text(args: tuple, target: str) -> str:  # type: ignore[type-arg]
    """The lowered default schedule of the product as the graph's kernels build it (no template involved)."""
    rows, columns, depth, width, panel_depth = args[:5]
    x = tcomp.te.placeholder((rows, depth), name="x")
    panels = tcomp.te.placeholder((-(-columns // width), panel_depth, width), name="panels")
    out = panel_matmul_compute(x, panels, columns, name="panel_matmul")
    s = create_schedule(out)
    schedule_matmul_stage(s, out, None, CpuTarget.of(Target(target)))
    return str(tcomp.lower(s, [x, panels, out], target=target))


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("shape", [(128, 768, 768), (197, 3072, 768), (128, 768, 3072)])
def test_fallback_is_the_default_schedule(shape: tuple[int, int, int], target: str) -> None:
    """BERT-base's and ViT-B's products: the fallback config is the default plan's tile, and lowers to the very
    loop nest of the default schedule."""
    args = workload(*shape, target)
    task = create_task("panel_matmul", args, target)
    fallback = task.config_space.fallback
    plan = panels_plan(*shape, CpuTarget.of(Target(target)))
    assert plan is not None
    assert panel_tile_of(fallback) == PanelTile.of(plan)
    assert plan_with_tile(*args[:5], PanelTile.of(plan), plan.lanes, plan.cores) == plan
    schedule, tensors = task.instantiate(fallback)
    assert str(tcomp.lower(schedule, tensors, target=target)) == default_text(args, target)


@pytest.fixture
def small_products(monkeypatch: pytest.MonkeyPatch) -> None:
    """Small products take the packed GEMM too (its work threshold lowered), so odd sizes build quickly."""
    monkeypatch.setattr(dense, "PANEL_MIN_WORK", 1)


@pytest.mark.usefixtures("small_products")
@pytest.mark.parametrize("shape, configs", [((45, 88, 70), 2), ((40, 64, 300), 2)])
def test_configs_match_the_reference(shape: tuple[int, int, int], configs: int) -> None:
    """The fallback and random configs (padded rows, columns and depth; several K slices) built and run against
    the float64 numpy reference, the panels packed as the graph packs a weight."""
    target = "llvm -num-cores=2"
    args = workload(*shape, target)
    rows, columns, depth, width, panel_depth = args[:5]
    task = create_task("panel_matmul", args, target)
    space = task.config_space
    rng = np.random.default_rng(3)
    x = rng.standard_normal((rows, depth)).astype(np.float32)
    weight = rng.standard_normal((depth, columns)).astype(np.float32)
    panels = pack_panels(weight, width, panel_depth)
    [want] = task.template.reference([x, panels], *args)
    np.testing.assert_allclose(want, x.astype(np.float64) @ weight, rtol=1e-5, atol=1e-5)
    built = 0
    for index in [space.fallback.index, *space.sample(rng, 12)]:
        if built == configs:
            break
        try:
            schedule, tensors = task.instantiate(space.get(index))
        except ValueError as error:  # a tile that does not fit: rejected before any build
            assert "in place" in str(error)
            continue
        out = np.full((rows, columns), np.nan, np.float32)
        tcomp.build(schedule, tensors, target=target)(x, panels, out)
        np.testing.assert_allclose(out, want, rtol=1e-4, atol=1e-4, err_msg=f"{shape} {space.get(index)}")
        built += 1
    assert built == configs


@pytest.mark.usefixtures("small_products")
def test_tiles_that_do_not_fit_are_rejected() -> None:
    target = "llvm -num-cores=2"
    args = workload(45, 88, 70, target)
    task = create_task("panel_matmul", args, target)
    space = task.config_space
    unfit = next(space.get(i) for i in range(len(space))
                 if space.get(i)["in_place_a"].val and 45 % int(space.get(i)["mr"].val))
    with pytest.raises(ValueError, match="cannot be read in place"):
        task.instantiate(unfit)
    with pytest.raises(ValueError, match="kc=30 does not cut K=70"):
        plan_with_tile(*args[:5], PanelTile(4, 30, 64, 0, False), 8, 2)
    wrong = (*args[:3], args[3] * 2, *args[4:])  # panels of another width than the target's GEMM packs
    with pytest.raises(ValueError, match="are not the packed GEMM's"):
        create_task("panel_matmul", wrong, target).config_space  # noqa: B018
    with pytest.raises(ValueError, match="float32 only"):
        create_task("panel_matmul", (*args[:6], "float64"), target).config_space  # noqa: B018


@pytest.mark.usefixtures("small_products")
@pytest.mark.parametrize("knob, value", [("mr", 99), ("kc", 7), ("mc", 3), ("column_blocks", 5), ("in_place_a", 2)])
def test_records_with_out_of_space_knobs_are_rejected(tmp_path: Path, knob: str, value: int) -> None:
    target = "llvm -num-cores=2"
    task = create_task("panel_matmul", workload(45, 88, 70, target), target)
    path = tmp_path / "records.jsonl"
    with RecordWriter(path) as writer:
        writer.write(Record(task, task.config_space.fallback, MeasureResult(MeasureStatus.OK, (1e-3,))))
    line = json.loads(path.read_text())
    config = line["config"]
    for entry in config["knobs"]:
        if entry[0] == knob:
            entry[2] = value
    path.write_text(json.dumps(line) + "\n")
    with pytest.warns(RuntimeWarning, match="config not in the space of panel_matmul"):
        log = read_records(path)
    assert log.records == [] and log.corrupt_lines == [1]
    with pytest.raises(SpaceError, match=f"knob {knob}"):
        task.config_space.check(ConfigEntity.from_json(config))
