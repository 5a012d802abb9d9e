"""The small transformer models of ``tests/data/hf_models`` (exported by PyTorch with their weights) compiled for
the CPU and run on their stored inputs, against PyTorch's stored outputs: relative error (max |tcomp - torch| /
max |torch|) at most 1e-4 (``hf_data.py``). Their attention (GPT-2's causal mask, Swin's windows with a position
bias, SegFormer's reduced keys, BLOOM's ALiBi biases, DeBERTa's where-mask) compiles to fused ``attention`` nodes.
A model using operators tcomp does not convert yet is an expected failure naming them."""

from __future__ import annotations

import onnx
import pytest

import tcomp.graph as tg
from tcomp.graph.frontend.onnx_common import supported_op_types
from tcomp.graph.ir import Graph
from tests.graph.hf_data import DATA, assert_matches_pytorch

ATTENTION_MODELS = ("bert_tiny", "gpt2_tiny", "llama_tiny", "segformer_tiny", "swin_tiny", "t5_encoder_tiny",
                    "whisper_encoder_tiny", "bloom_tiny", "deberta_v2_tiny", "wav2vec2_tiny", "beit_tiny")


@pytest.mark.parametrize("name", ATTENTION_MODELS)
def test_model_matches_pytorch_on_the_cpu(name: str) -> None:
    path = DATA / f"{name}.onnx"
    missing = sorted({n.op_type for n in onnx.load(path, load_external_data=False).graph.node}
                     - set(supported_op_types()))
    if missing:
        pytest.xfail(f"tcomp does not convert {', '.join(missing)} yet")
    fused: list[int] = []

    def dump(stage: str, graph: Graph) -> None:
        if stage == "simplify":
            fused.append(sum(node.op == "attention" for node in graph.nodes))

    assert_matches_pytorch(name, tg.compile(path, target="llvm -num-cores=2", dump=dump))
    assert fused and fused[0] >= 1, f"{name}: no attention was fused"


@pytest.mark.parametrize("name", ["gpt2_decode_tiny", "llama_decode_tiny"])
def test_decoding_step_matches_pytorch(name: str) -> None:
    """One generation step (``export_decode.py``: a token and a cache of 31 in): the hidden state and every layer's
    cache with the token appended match PyTorch. Each attention is fused with its one query row unpadded, and
    reads the appended cache, a graph output, through views (no kernel writes the keys transposed for it)."""
    graphs: dict[str, Graph] = {}
    assert_matches_pytorch(name, tg.compile(DATA / f"{name}.onnx", target="llvm -num-cores=2",
                                            dump=lambda stage, graph: graphs.setdefault(stage, graph)))
    fused = graphs["fuse_ops"]
    kernels = [n for n in fused.nodes if n.op == "fused" and any(m.op == "attention" for m in n.attr("body").nodes)]
    assert len(kernels) == 2  # one per layer
    for kernel in kernels:
        [attention] = [m for m in kernel.attr("body").nodes if m.op == "attention"]
        assert attention.attr("tiles")[0] == 1  # mr: the micro tile has the query's one row
        assert len(set(kernel.inputs) & set(fused.outputs)) == 2  # this layer's present key and value


def test_a_static_cache_step_compiles_once_for_every_position() -> None:
    """GPT-2's step over a static cache (``export_decode.py``: the token's position an input, the cache 32 positions
    whatever the step) compiles once, to a plain executor, and matches PyTorch with the token at positions 5, 6 and
    31; its attention, masked by the position, is fused."""
    fused: list[int] = []

    def dump(stage: str, graph: Graph) -> None:
        if stage == "simplify":
            fused.append(sum(node.op == "attention" for node in graph.nodes))

    executor = tg.compile(DATA / "gpt2_decode_static_tiny.onnx", target="llvm -num-cores=2", dump=dump)
    assert isinstance(executor, tg.GraphExecutor)
    assert_matches_pytorch("gpt2_decode_static_tiny", executor)
    assert fused == [2]  # one per layer
