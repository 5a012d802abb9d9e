"""Every model of the GPU benchmark compiles for ``cuda`` (the default schedules, on an H100/H200's architecture):
the graphs exported by PyTorch at full size (``tests/data/gpu_models``, their large weights random, see
``tests/data/export_gpu_models.py``) go through the pass pipeline and every kernel is generated as CUDA C within the
target's limits; where nvcc is on the PATH, ptxas compiles all of a model's kernels. Nothing runs: the values of the
weights do not matter here (``test_hf_models_cuda.py`` checks results)."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import onnx
import pytest

import tcomp.graph as tg
from tcomp.backend import compile_artifact
from tcomp.graph.kernels import lower_node
from tcomp.runtime.nvcc import kernel_resources, nvcc_available
from tcomp.target import Target

DATA = Path(__file__).resolve().parent.parent / "data" / "gpu_models"
MODELS = sorted(path.name[: -len(".onnx.gz")] for path in DATA.glob("*.onnx.gz"))
TARGET = "cuda -arch=sm_90"


def load_graph_model(name: str, seed: int = 0) -> onnx.ModelProto:
    """The stored model with its stripped float initializers filled with small random values."""
    model = onnx.ModelProto.FromString(gzip.decompress((DATA / f"{name}.onnx.gz").read_bytes()))
    rng = np.random.default_rng(seed)
    for init in model.graph.initializer:
        if init.data_type == onnx.TensorProto.FLOAT and not init.raw_data and not init.float_data:
            init.raw_data = (rng.standard_normal(tuple(init.dims)) * 0.02).astype(np.float32).tobytes()
    return model


def test_the_benchmark_models_are_stored() -> None:
    assert set(MODELS) >= {"resnet50", "mobilenet_v3_small", "shufflenet_v2_x1_0", "regnet_y_400mf",
                           "efficientnet_b0", "densenet121", "squeezenet1_1", "convnext_tiny", "vit_b_16", "bert_base",
                           "gpt2"}
    for name in MODELS:
        assert (DATA / f"{name}.onnx.gz").stat().st_size < 64 << 10


@pytest.mark.slow
@pytest.mark.parametrize("name", MODELS)
def test_model_compiles_for_cuda(name: str) -> None:
    model = load_graph_model(name)
    target = Target(TARGET)
    graph = tg.compile_graph(model, target)
    sources: dict[str, str] = {}
    for node in graph.nodes:
        func, _, _ = lower_node(graph, node, target)
        if func.name in sources:
            continue
        artifact = compile_artifact(func, target=target).artifact
        for kernel in artifact.kernels:
            assert kernel.launch.threads_per_block <= target.max_threads_per_block
            assert kernel.shared_bytes <= target.max_shared_memory_per_block
        sources[func.name] = artifact.source
    assert sources
    if nvcc_available():
        resources = kernel_resources("\n".join(sources.values()), target.arch)
        assert len(resources) >= len(sources)
