"""``tcomp.graph.compile(model, target="cuda")``: fused groups scheduled by ``tcomp.ops.cuda.dispatch`` and built as
CUDA C, run on a GPU when there is one and in CPU emulation otherwise, against onnxruntime within 1e-3 relative
error. Shapes are tiny: emulated kernels run every thread of a block on the CPU."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

import tcomp.graph as tg
from tcomp.graph.testing import ModelBuilder
from tcomp.runtime.cuda_device import gpu_available
from tcomp.runtime.cuda_emu import EmulationError, host_compiler
from tcomp.runtime.cuda_module import CudaModule
from tests.graph.test_grid_sample import grid_points, grid_sample_model


def _has_host_compiler() -> bool:
    try:
        host_compiler()
    except EmulationError:
        return False
    return True


pytestmark = pytest.mark.skipif(not _has_host_compiler(), reason="the CUDA emulation needs g++ (or clang++)")


def reference(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"]).run(None, feeds)


def assert_close(got: np.ndarray, want: np.ndarray) -> None:
    assert got.shape == want.shape
    scale = float(np.abs(want).max()) or 1.0
    assert float(np.abs(got - want).max()) <= 1e-3 * scale


def check(model: onnx.ModelProto, shapes: dict[str, list[int]], seed: int = 0,
          tuning_records: str | None = None) -> tg.GraphExecutor:
    rng = np.random.default_rng(seed)
    feeds = {name: rng.standard_normal(shape).astype(np.float32) for name, shape in shapes.items()}
    executor = tg.compile(model, target="cuda", tuning_records=tuning_records)
    got = executor.run(feeds if len(feeds) > 1 else list(feeds.values()))
    want = reference(model, feeds)
    assert got is not None and len(got) == len(want)
    for g, w in zip(got, want):
        assert_close(g, w)
    return executor


def small_cnn() -> onnx.ModelProto:
    b = ModelBuilder(seed=0)
    x = b.conv("x", 3, 8, 3, bias=True)
    x = b.node("Relu", [x])
    x = b.conv(x, 8, 6, 3, stride=2)
    x = b.node("Relu", [x])
    x = b.node("MaxPool", [x], kernel_shape=[2, 2], strides=[2, 2])
    x = b.node("Flatten", [x])
    x = b.dense(x, 6 * 2 * 2, 10)
    x = b.node("Softmax", [x], axis=1)
    return b.model("small_cnn", [("x", [2, 3, 8, 8])], x, [2, 10])


def test_small_cnn_matches_onnxruntime() -> None:
    executor = check(small_cnn(), {"x": [2, 3, 8, 8]})
    assert executor.program.target.startswith("cuda")
    assert all(isinstance(m, CudaModule) for m in executor.modules)
    assert {n.op for n in executor.graph.nodes} >= {"softmax"}
    assert not any("layout_transform" in n.op for n in executor.graph.nodes)  # alter_layout is off for cuda
    conv = next(m for m in executor.modules if "conv2d" in m.func.name)
    assert "__shared__" in conv.get_source()  # the tiled conv2d schedule, not the generic one
    executor.run()  # runs again on the same storage
    assert executor.benchmark(repeat=1, warmup=0)[0] > 0


def test_small_cnn_unfused_runs_in_place() -> None:
    """One kernel per operator, outputs written over dead inputs (the memory plan's in-place pairs)."""
    model = small_cnn()
    x = np.random.default_rng(4).standard_normal((2, 3, 8, 8)).astype(np.float32)
    executor = tg.compile(model, target="cuda", options=tg.PassOptions(fuse_ops=False))
    assert executor.graph.meta["memory_plan"].inplace
    [got] = executor.run([x])
    [want] = reference(model, {"x": x})
    assert_close(got, want)


def _single(op: str, inputs: list[tuple[str, list[int]]], out_shape: list[int], initializers: dict[str, np.ndarray]
            | None = None, **attrs: object) -> onnx.ModelProto:
    names = [n for n, _ in inputs] + list(initializers or {})
    node = helper.make_node(op, names, ["y"], **attrs)
    graph = helper.make_graph(
        [node], op.lower(),
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)],
        [onnx.numpy_helper.from_array(v, k) for k, v in (initializers or {}).items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


def _weights(*shape: int) -> np.ndarray:
    return np.random.default_rng(3).standard_normal(shape).astype(np.float32)


SINGLE_OPS = {
    "add_broadcast": (lambda: _single("Add", [("a", [3, 4, 5]), ("b", [4, 1])], [3, 4, 5]),
                      {"a": [3, 4, 5], "b": [4, 1]}),
    "matmul": (lambda: _single("MatMul", [("a", [20, 24]), ("b", [24, 18])], [20, 18]),
               {"a": [20, 24], "b": [24, 18]}),
    "reduce_mean_inner": (lambda: _single("ReduceMean", [("x", [3, 40])], [3, 1], axes=[1]), {"x": [3, 40]}),
    "reduce_sum_outer": (lambda: _single("ReduceSum", [("x", [6, 5])], [1, 5],
                                         {"axes": np.array([0], dtype=np.int64)}), {"x": [6, 5]}),
    "softmax_middle_axis": (lambda: _single("Softmax", [("x", [2, 5, 3])], [2, 5, 3], axis=1), {"x": [2, 5, 3]}),
    "global_average_pool": (lambda: _single("GlobalAveragePool", [("x", [1, 4, 3, 3])], [1, 4, 1, 1]),
                            {"x": [1, 4, 3, 3]}),
    "avg_pool_padded": (lambda: _single("AveragePool", [("x", [1, 2, 5, 5])], [1, 2, 3, 3], kernel_shape=[3, 3],
                                        strides=[2, 2], pads=[1, 1, 1, 1]), {"x": [1, 2, 5, 5]}),
    "depthwise_conv": (lambda: _single("Conv", [("x", [1, 4, 6, 6])], [1, 4, 6, 6], {"w": _weights(4, 1, 3, 3)},
                                       group=4, kernel_shape=[3, 3], pads=[1, 1, 1, 1]), {"x": [1, 4, 6, 6]}),
    "conv_odd_sizes": (lambda: _single("Conv", [("x", [1, 3, 7, 5])], [1, 5, 5, 3], {"w": _weights(5, 3, 3, 3)},
                                       kernel_shape=[3, 3]), {"x": [1, 3, 7, 5]}),
}


@pytest.mark.parametrize("name", sorted(SINGLE_OPS))
def test_single_op_matches_onnxruntime(name: str) -> None:
    build, shapes = SINGLE_OPS[name]
    check(build(), shapes)


@pytest.mark.parametrize("trans_b", [False, True])
def test_tiled_matmul_with_bias(trans_b: bool) -> None:
    """Shapes the shared-memory matmul tiles divide: the tiled schedule, the bias a second kernel."""
    weight = _weights(32, 24) if trans_b else _weights(24, 32)
    model = _single("Gemm", [("a", [16, 24])], [16, 32], {"w": weight, "bias": _weights(32)}, transB=int(trans_b))
    executor = check(model, {"a": [16, 24]})
    assert any("__shared__" in m.get_source() for m in executor.modules)


def test_cuda_tuning_tasks_and_records(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """For cuda the tasks of a model are the CUDA templates' (one per distinct conv / matmul workload); a record
    faster than the default kernel compiles that operator from its template, and the model still matches."""
    from tcomp.autotune.measure import MeasureResult, MeasureStatus
    from tcomp.autotune.record import Record, RecordWriter
    from tcomp.graph.tasks import extract_model_tasks

    model = small_cnn()
    tasks = extract_model_tasks(model, "cuda")
    assert {t.name for t in tasks} == {"conv2d_nchw_cuda", "matmul_cuda"}
    conv = next(t for t in tasks if t.name == "conv2d_nchw_cuda")
    assert conv.args[:7] == (2, 3, 8, 8, 8, 3, 3)
    path = tmp_path / "cuda.jsonl"
    space = conv.config_space
    config = space.get(len(space) - 1)
    with RecordWriter(path) as writer:
        writer.write(Record(conv, config, MeasureResult(MeasureStatus.OK, (1e-9,))))
    with pytest.warns(RuntimeWarning, match="no tuning record"):
        executor = check(model, {"x": [2, 3, 8, 8]}, tuning_records=str(path))
    assert executor.program.stats["tuned_kernels"] == 1



def test_export_and_load_a_cuda_model(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A cuda executor exports its CUDA C and launch descriptions; the loaded model compiles only that C (for the GPU
    or the emulation) and computes the same outputs."""
    import json

    model = small_cnn()
    executor = check(model, {"x": [2, 3, 8, 8]})
    executor.export(str(tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["graph.json", "kernels.cu", "params.npz"]
    source = (tmp_path / "kernels.cu").read_text()
    assert source.count('extern "C" __global__') == sum(len(m.kernels) for m in {m.func.name: m for m in
                                                                                  executor.modules}.values())
    loaded = tg.load_executor(str(tmp_path))
    assert loaded.num_kernels == executor.num_kernels
    x = np.random.default_rng(3).standard_normal((2, 3, 8, 8)).astype(np.float32)
    [want] = reference(model, {"x": x})
    [got] = loaded.run([x])
    assert_close(got, want)
    code, launch = source.rsplit("// tcomp-launch: ", 1)
    described = json.loads(launch)
    name, module = next(iter(described.items()))
    module["source"] = [0, len(source) + 10]
    (tmp_path / "kernels.cu").write_text(code + "// tcomp-launch: " + json.dumps(described) + "\n")
    with pytest.raises(tg.GraphError, match=f"module {name}: its source range"):
        tg.load_executor(str(tmp_path))
    module["source"] = [0, 10]
    module["params"][0]["shape"][0] += 1
    (tmp_path / "kernels.cu").write_text(code + "// tcomp-launch: " + json.dumps(described) + "\n")
    with pytest.raises(tg.GraphError, match="does not match kernels.cu|the kernel's parameter is"):
        tg.load_executor(str(tmp_path))
    (tmp_path / "kernels.cu").write_text(code)
    with pytest.raises(tg.GraphError, match="no launch descriptions"):
        tg.load_executor(str(tmp_path))


@pytest.mark.skipif(gpu_available(), reason="with a GPU, the model runs on it")
def test_compiling_for_cuda_without_a_gpu_says_it_is_emulated() -> None:
    with pytest.warns(tg.EmulationWarning, match="no CUDA device .* CPU emulation"):
        tg.compile(small_cnn(), target="cuda")


def test_emulated_run_shows_a_progress_line(monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    import tcomp.graph.cuda_executor as cuda_executor

    executor = tg.compile(small_cnn(), target="cuda")
    if not isinstance(executor, cuda_executor.CudaGraphExecutor) or gpu_available():
        pytest.skip("the progress line is the emulation's")
    stream = io.StringIO()
    monkeypatch.setattr(cuda_executor.sys, "stderr", stream)
    monkeypatch.setattr(cuda_executor, "PROGRESS_AFTER_SECONDS", 0.0)
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)
    executor.run([x])
    assert stream.getvalue() == ""  # stderr is no terminal: quiet unless asked
    executor.progress = True
    executor.run([x])
    text = stream.getvalue()
    assert f"emulating kernel 1/{executor.num_kernels}" in text
    assert text.endswith(f"emulated {executor.num_kernels} kernels in " + text.split(" kernels in ")[-1])
    assert text.endswith(" s\x1b[K\n")


@pytest.mark.filterwarnings("ignore::tcomp.graph.EmulationWarning")
@pytest.mark.parametrize("mode, padding", [("linear", "reflection"), ("cubic", "border"), ("nearest", "zeros")])
def test_grid_sample_matches_onnxruntime(mode: str, padding: str) -> None:
    x = np.random.default_rng(3).standard_normal((1, 2, 5, 6)).astype(np.float32)
    grid = grid_points([1, 3, 4, 2])
    model = grid_sample_model([1, 2, 5, 6], [1, 3, 4, 2], 20, mode=mode, padding_mode=padding)
    want = ort.InferenceSession(model.SerializeToString()).run(None, {"x": x, "grid": grid})[0]
    [got] = tg.compile(model, target="cuda").run([x, grid])  # type: ignore[misc]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
