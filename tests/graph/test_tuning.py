"""Tuning records at graph compile time: operators with a record are compiled from their template's best config
(and stay in NCHW), the others keep the default schedule; the tasks of a graph are one per distinct workload."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

import tcomp
import tcomp.graph as tg
from tcomp.autotune.measure import MeasureResult, MeasureStatus
from tcomp.autotune.record import Record, RecordWriter
from tcomp.graph import testing
from tcomp.graph.passes.winograd import worth_tiling
from tcomp.graph.tasks import extract_model_tasks
from tcomp.ops.cpu.common import CpuTarget
from tcomp.ops.nchwc import choose_channel_block
from tcomp.target import Target


def model():  # type: ignore[no-untyped-def]
    return testing.resnet(18, image_size=32, width=0.25, num_classes=10, softmax=False)


def test_extract_tasks_one_per_workload() -> None:
    """CPU convolutions are tuned as the compiled model runs them: blocked (NCHW[x]c) workloads with the epilogue
    fused behind them (batch norms folded into a per-channel bias, residual adds, relus)."""
    tasks = extract_model_tasks(model(), "llvm")
    names = {task.name for task in tasks}
    # the classifier is a packed_matvec (matvec_weights): it streams its weight at the memory's speed, untuned
    assert names == {"conv2d_nchwc_blocked"}
    assert len({task.key for task in tasks}) == len(tasks)
    convs = [t for t in tasks if t.name == "conv2d_nchwc_blocked"]
    lanes = CpuTarget.of(Target("llvm")).lanes("float32")  # blocks of up to one vector register: 8 or 16 channels
    stem_block = choose_channel_block(16, lanes)
    assert (1, 3, 32, 32, 16, 7, 7, 2, 3, 3, stem_block, "float32", "add:c,relu") in [t.args for t in convs]
    # the second convolution of a residual block adds the shortcut before its relu (at the last block's one pixel
    # the shortcut is per channel); 3x3 stride-1 convolutions with an output plane worth Winograd's tiles run as
    # Winograd convolutions, not tuned here
    assert {t.args[-1] for t in convs} == {"add:c,relu", "add:c,add:t,relu", "add:c,add:c,relu", "add:c"}
    direct = [t.args[2] + 2 * t.args[8] - 2 for t in convs if t.args[5:8] == (3, 3, 1)]
    assert direct and not any(worth_tiling(plane, plane) for plane in direct)


def loop_nest(func: object) -> list[str]:
    """The loops of a lowered function, one line each (names of buffers left out)."""
    return [line.strip() for line in str(func).splitlines() if line.strip().startswith("for ")]


def test_blocked_tasks_build_the_fused_kernels_of_the_model(tmp_path: Path) -> None:
    """A conv2d_nchwc_blocked task measures the kernel the model runs: for configs that block the reduction (the
    epilogue then is a pass of its own) and configs that do not, the template's loop nest is the fused kernel's
    that the model compiles from the record."""
    from tcomp.autotune.templates.cpu.conv2d import nchwc_tile_of
    from tcomp.graph.kernels import lower_node
    from tcomp.graph.tuning import kernel_tuning, node_task

    target = Target("llvm")
    graph = tg.compile_graph(model(), target)
    tuning_nodes = [n for n in graph.nodes if node_task(graph, n, target) is not None]
    checked = set()
    for blocked in (True, False):
        path = tmp_path / f"blocked{blocked}.jsonl"
        configs = {}
        with RecordWriter(path) as writer:
            for node in tuning_nodes:
                task = node_task(graph, node, target)
                space = task.config_space
                picks = [space.get(i) for i in range(len(space))
                         if (nchwc_tile_of(space.get(i)).ic_chunks > 0) == blocked]
                if picks and task.key not in configs:
                    configs[task.key] = picks[len(picks) // 2]
                    writer.write(Record(task, configs[task.key], MeasureResult(MeasureStatus.OK, (1e-3,))))
        from tcomp.autotune.dispatch import ApplyHistoryBest

        tuning = kernel_tuning(ApplyHistoryBest(str(path)))
        for node in tuning_nodes:
            task = node_task(graph, node, target)
            if task.key not in configs or (task.args[-1], blocked) in checked:
                continue
            checked.add((task.args[-1], blocked))
            func, _, tiled = lower_node(graph, node, target, tuning)
            assert tiled
            schedule, tensors = task.instantiate(configs[task.key])
            assert loop_nest(tcomp.lower(schedule, tensors, target=target)) == loop_nest(func), (node.name, blocked)
    assert {epilogue for epilogue, _ in checked} >= {"add:c,relu", "add:c,add:t,relu"}


def nchw_tasks() -> list:  # type: ignore[type-arg]
    from tcomp.graph.compiler import compile_graph
    from tcomp.graph.pipeline import PassOptions
    from tcomp.graph.tasks import extract_tasks

    options = PassOptions(alter_layout=False, fuse_ops=False, plan_memory=False)
    return [t for t in extract_tasks(compile_graph(model(), "llvm", options=options), "llvm")
            if t.name == "conv2d_nchw"]


def test_blocked_records_give_the_fused_kernels_their_tiles(tmp_path: Path) -> None:
    """A conv2d_nchwc_blocked record sets the register tile of the fused (conv + bias + relu) kernel; the model keeps
    its blocked layout and fusion and still matches onnxruntime."""
    from tcomp.autotune.templates.cpu.conv2d import nchwc_tile_of

    tasks = [t for t in extract_model_tasks(model(), "llvm") if t.name == "conv2d_nchwc_blocked"]
    path = tmp_path / "blocked.jsonl"
    with RecordWriter(path) as writer:
        for task in tasks:
            space = task.config_space
            config = next(space.get(i) for i in range(len(space) - 1, -1, -1)
                          if nchwc_tile_of(space.get(i)) != nchwc_tile_of(space.fallback))
            writer.write(Record(task, config, MeasureResult(MeasureStatus.OK, (1e-3,))))
    x = np.random.default_rng(2).standard_normal((1, 3, 32, 32)).astype(np.float32)
    executor = tg.compile(model(), "llvm", tuning_records=str(path))  # every task has a record: no warning
    assert executor.program.stats["tuned_kernels"] >= len(tasks)
    assert not any(n.op in ("conv2d", "conv2d_nchwc") for n in executor.graph.nodes)  # blocked and fused
    [got] = executor.run([x])
    [want] = ort.InferenceSession(model().SerializeToString()).run(None, {"data": x})
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-3 * float(np.abs(want).max()))


def write_records(path: Path, cost: float) -> list:  # type: ignore[type-arg]
    tasks = nchw_tasks()[:3]
    rng = np.random.default_rng(0)
    with RecordWriter(path) as writer:
        for task in tasks:
            space = task.config_space
            config = space.get(int(rng.integers(0, len(space))))
            writer.write(Record(task, config, MeasureResult(MeasureStatus.OK, (cost,))))
    return tasks


def test_compile_with_tuning_records(tmp_path: Path) -> None:
    path = tmp_path / "records.jsonl"
    tasks = write_records(path, 1e-9)  # faster than any default schedule
    x = np.random.default_rng(1).standard_normal((1, 3, 32, 32)).astype(np.float32)
    with pytest.warns(RuntimeWarning, match="no tuning record"):  # the operators without a record are listed
        executor = tg.compile(model(), "llvm", tuning_records=str(path))
    assert executor.program.stats["tuned_kernels"] >= len(tasks)
    tuned = [n for n in executor.graph.nodes if n.op == "conv2d"]
    assert tuned  # kept in NCHW and unfused for the template
    [got] = executor.run([x])
    [want] = ort.InferenceSession(model().SerializeToString()).run(None, {"data": x})
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-3 * float(np.abs(want).max()))


def test_records_slower_than_the_default_are_not_used(tmp_path: Path) -> None:
    path = tmp_path / "slow.jsonl"
    write_records(path, 10.0)
    with pytest.warns(RuntimeWarning, match="no tuning record"):
        executor = tg.compile(model(), "llvm", tuning_records=str(path))
    assert executor.program.stats["tuned_kernels"] == 0
    assert not any(n.op == "conv2d" for n in executor.graph.nodes)  # all blocked and fused as without records
