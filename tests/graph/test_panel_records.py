"""Products from panels at graph compile time: their tasks are ``panel_matmul`` workloads, and a record gives the
fused kernel (epilogues included) its packed GEMM's tile; without a record the kernel is the default one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

import tcomp.graph as tg
from tcomp.autotune import create_task
from tcomp.autotune.measure import MeasureResult, MeasureStatus
from tcomp.autotune.record import Record, RecordWriter
from tcomp.autotune.templates.cpu.panels import panel_tile_of
from tcomp.graph import testing
from tcomp.graph.tasks import extract_model_task_counts
from tcomp.ops.cpu import dense
from tcomp.ops.cpu.common import CpuTarget
from tcomp.ops.cpu.dense import TYPICAL_ROWS, panels_plan
from tcomp.target import Target

TARGET = "llvm -num-cores=2"
DATA = Path(__file__).resolve().parents[1] / "data"


def test_extract_model_tasks_finds_the_products() -> None:
    """An encoder's products with weights (their panels pay at ``TYPICAL_ROWS`` rows: the merged query, key and
    value projection, the attention's output and the feed-forward pair) are panel_matmul tasks, each weighed by
    the layers that run it, with the panels the graph packs."""
    model = testing.bert(layers=2, hidden=256, heads=4, ffn=1024, seq=64, vocab=50)
    counted = extract_model_task_counts(model, TARGET)
    panels = {task.args[:5]: count for task, count in counted if task.name == "panel_matmul"}
    cpu = CpuTarget.of(Target(TARGET))
    expected = {}
    for rows, columns, depth in [(64, 768, 256), (64, 256, 256), (64, 1024, 256), (64, 256, 1024)]:
        plan = panels_plan(TYPICAL_ROWS, columns, depth, cpu)
        assert plan is not None
        expected[(rows, columns, depth, plan.blocking.nr, plan.Kp)] = 2
    assert panels == expected


@pytest.fixture
def small_products(monkeypatch: pytest.MonkeyPatch) -> None:
    """The exported test encoders are small (hidden 32): their products take the packed GEMM with its work
    threshold lowered."""
    monkeypatch.setattr(dense, "PANEL_MIN_WORK", 1)


def _feeds(name: str) -> tuple[dict[str, np.ndarray], np.ndarray]:
    data = np.load(DATA / name.replace(".onnx", ".npz"))
    feeds = {key[4:]: data[key] for key in data.files if key.startswith("in0_")}
    return feeds, data["out0"]


def _panel_kernels(executor: tg.Executor) -> dict[str, str]:
    """Node name -> kernel symbol of the kernels that compute a product from panels."""
    nodes = {node.name: node for node in executor.graph.nodes}
    entries = {}
    for spec in executor.program.kernels:
        node = nodes[spec.name]
        if any(member.op == "panel_matmul" for member in node.members()):
            entries[spec.name] = spec.entry
    return entries


def _write_records(path: Path, counted: list) -> None:  # type: ignore[type-arg]
    """A record per panel_matmul task whose tile is not the default's (other rows of the register tile, other
    column blocks), the fallback config for the other tasks."""
    with RecordWriter(path) as writer:
        for task, _ in counted:
            space = task.config_space
            config = space.fallback
            if task.name == "panel_matmul":
                default = panel_tile_of(space.fallback)
                config = next(space.get(i) for i in range(len(space))
                              if panel_tile_of(space.get(i)).mr != default.mr and not space.get(i)["in_place_a"].val
                              and panel_tile_of(space.get(i)).column_blocks != default.column_blocks)
            writer.write(Record(task, config, MeasureResult(MeasureStatus.OK, (1e-3,))))


@pytest.mark.usefixtures("small_products")
def test_an_exported_vit_has_its_products_as_tasks() -> None:
    """torchvision's ViT (2 images of 16 patches and a class token: 34 rows): the patch convolution and the four
    products of each of its 2 layers, each product read off its fused kernel."""
    feeds, _ = _feeds("torch_models/vit.onnx")
    counted = extract_model_task_counts(str(DATA / "torch_models/vit.onnx"), TARGET,
                                        {key: list(value.shape) for key, value in feeds.items()})
    assert [task.name for task, _ in counted] == ["conv2d_nchwc_blocked"] + ["panel_matmul"] * 4
    products = {task.args[:3]: count for task, count in counted if task.name == "panel_matmul"}
    assert products == {(34, 96, 32): 2, (34, 32, 32): 2, (34, 64, 32): 2, (34, 32, 64): 2}


@pytest.mark.usefixtures("small_products")
def test_records_give_the_fused_kernels_their_tiles(tmp_path: Path) -> None:
    """An exported BERT (2 sequences of 16 tokens: 32 rows, read through views the fused kernels do not read in
    place): a record per product sets the tile of its fused kernel (bias, GELU, residual kept in it) and the model
    still matches PyTorch and onnxruntime."""
    name = "dynamo_models/bert.onnx"
    feeds, torch_out = _feeds(name)
    shapes = {key: list(value.shape) for key, value in feeds.items()}
    model = str(DATA / name)
    counted = extract_model_task_counts(model, TARGET, shapes)
    assert sum(count for task, count in counted if task.name == "panel_matmul") == 8  # 4 products x 2 layers
    default = tg.compile(model, TARGET, input_shapes=shapes)
    path = tmp_path / "records.jsonl"
    _write_records(path, counted)
    tuned = tg.compile(model, TARGET, input_shapes=shapes, tuning_records=str(path))  # every task has a record
    assert tuned.program.stats["tuned_kernels"] >= 8
    before, after = _panel_kernels(default), _panel_kernels(tuned)
    assert len(before) == 8 and before.keys() == after.keys()
    assert all(before[node] != after[node] for node in before)  # every product's kernel changed
    members = {m.op for n in tuned.graph.nodes if n.name in after for m in n.attr("body").nodes}
    assert {"panel_matmul", "add"} <= members  # bias and residual stay fused with the product
    got = tuned.run(feeds)[0]
    want = ort.InferenceSession(model).run(None, feeds)[0]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(got, torch_out, rtol=1e-4, atol=1e-4)


@pytest.mark.usefixtures("small_products")
def test_without_a_panel_record_the_kernels_stay_the_default(tmp_path: Path) -> None:
    """Records without a panel_matmul record: the products still come from panels, in the default kernels."""
    feeds, _ = _feeds("dynamo_models/bert.onnx")
    shapes = {key: list(value.shape) for key, value in feeds.items()}
    model = str(DATA / "dynamo_models/bert.onnx")
    unrelated = create_task("matmul", (8, 8, 8), TARGET)
    path = tmp_path / "unrelated.jsonl"
    with RecordWriter(path) as writer:
        writer.write(Record(unrelated, unrelated.config_space.fallback, MeasureResult(MeasureStatus.OK, (1e-3,))))
    with pytest.warns(RuntimeWarning, match="4 task.s. had no tuning record.*panel_matmul"):
        with_records = tg.compile(model, TARGET, input_shapes=shapes, tuning_records=str(path))
    default = tg.compile(model, TARGET, input_shapes=shapes)
    assert len(_panel_kernels(default)) == 8
    assert _panel_kernels(with_records) == _panel_kernels(default)
    assert with_records.program.stats["tuned_kernels"] == 0
