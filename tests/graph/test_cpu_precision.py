"""``tcomp.graph.compile(model, target="llvm", precision="bf16")``: the products of rows with a constant weight on
bfloat16 operands (``tcomp.ops.cpu.bf16_matmul``), real transformer exports checked against PyTorch within what
bfloat16 allows (``Precision.BF16.relative_tolerance``); a prompt of any length still compiles once; the target
option ``-precision=bf16`` and the command line's ``--precision``."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import tcomp.graph as tg
from tcomp.backend import EmulationWarning
from tcomp.cli import build_parser
from tcomp.cli.arguments import target_of
from tcomp.graph.ir import Graph
from tcomp.target import Precision, Target, TargetError
from tests.graph.hf_data import DATA, stored, stored_lengths

BF16 = "llvm -num-cores=2 -precision=bf16"


def relative_errors(name: str, executor: Any) -> list[float]:
    """The largest relative error of ``executor``'s outputs against PyTorch's, per stored case of model ``name``."""
    errors = []
    for length in stored_lengths(name):
        inputs, wanted = stored(name, length)
        outputs = executor.run(inputs)
        errors.append(max(float(np.abs(got - wanted[output]).max() / np.abs(wanted[output]).max())
                          for output, got in zip(executor.output_names, outputs)))
    return errors


def test_the_cpu_precision_option() -> None:
    target = Target(BF16)
    assert target.precision is Precision.BF16 and "-precision=bf16" in str(target)
    assert Target(str(target)) == target and target != Target("llvm -num-cores=2")
    assert Target("llvm -num-cores=2").with_precision("bfloat16") == target
    with pytest.raises(TargetError, match="precision fp16 applies to cuda targets; an llvm target takes fp32 or bf16"):
        Target("llvm -precision=fp16")
    with pytest.raises(TargetError, match="precision tf32 applies to cuda targets; an llvm target takes fp32 or bf16"):
        Target("llvm").with_precision("tf32")
    args = build_parser().parse_args(["compile", "m.onnx", "--target", "llvm -num-cores=2", "--precision", "bf16",
                                      "-o", "o"])
    assert target_of(args) == target


@pytest.mark.parametrize("name", ["bert_tiny", "gpt2_tiny", "whisper_encoder_tiny"])
def test_transformers_in_bfloat16_match_pytorch(name: str) -> None:
    graphs: dict[str, Graph] = {}
    executor = tg.compile(DATA / f"{name}.onnx", target=BF16, dump=lambda stage, graph: graphs.setdefault(stage, graph))
    products = [node for node in graphs["gemm_panels"].nodes if node.op == "panel_matmul"]
    assert products and all(graphs["gemm_panels"].type_of(node.inputs[1]).dtype == "bfloat16" for node in products)
    errors = relative_errors(name, executor)
    assert max(errors) <= Precision.BF16.relative_tolerance
    assert max(errors) > 1e-6  # the operands were rounded: not float32's result


def test_a_prompt_of_any_length_compiles_once_in_bfloat16() -> None:
    name = "gpt2_prompt_dynamic_tiny"
    executor = tg.compile(DATA / f"{name}.onnx", target=BF16)
    assert isinstance(executor, tg.SpecializingExecutor)
    assert max(relative_errors(name, executor)) <= Precision.BF16.relative_tolerance  # cases 5, 6, 31 and 100
    assert executor.dynamic is not None and executor.dynamic_failure is None and executor.compilations == 1
    graph = executor._current().graph
    assert graph is not None and any(m.op == "panel_matmul" for node in graph.nodes for m in node.members())


def test_an_exported_bfloat16_model_loads_and_runs_alike(tmp_path: Path) -> None:
    """The weights stay bfloat16 in the exported folder (half the bytes), and the loaded model gives the same bits."""
    name = "bert_tiny"
    executor = tg.compile(DATA / f"{name}.onnx", target=BF16)
    executor.export(tmp_path / "bert")
    loaded = tg.load_executor(tmp_path / "bert")
    inputs, _ = stored(name)
    for got, want in zip(loaded.run(inputs), executor.run(inputs)):
        np.testing.assert_array_equal(got, want)
    assert "-precision=bf16" in json.loads((tmp_path / "bert" / "graph.json").read_text())["target"]
    with np.load(tmp_path / "bert" / "params.npz") as params:
        assert any(params[key].dtype == np.uint16 for key in params.files)  # bfloat16 as its bits


def test_a_generation_step_streams_bfloat16_weights() -> None:
    """One token's products (``packed_matvec``) read their weights as bfloat16, widened as they are read (half the
    bytes); the rows stay float32."""
    name = "gpt2_decode_tiny"
    graphs: dict[str, Graph] = {}
    executor = tg.compile(DATA / f"{name}.onnx", target=BF16, dump=lambda stage, graph: graphs.setdefault(stage, graph))
    graph = graphs["simplify"]
    weights = [graph.type_of(node.inputs[1]).dtype for node in graph.nodes if node.op == "packed_matvec"]
    assert weights and set(weights) == {"bfloat16"}
    errors = relative_errors(name, executor)
    assert 1e-6 < max(errors) <= Precision.BF16.relative_tolerance


def test_a_cpu_without_avx512_bf16_says_its_products_are_emulated() -> None:
    """The same sums on float32 multiply-adds (``tcomp_bgemm_fma``): the same bits (no subnormals here), and a
    warning that says so."""
    name = "bert_tiny"
    emulated = Target(BF16 + " -mattr=-avx512bf16")
    with pytest.warns(EmulationWarning, match="has no AVX512-BF16, so its bfloat16 products run as float32"):
        slow = tg.compile(DATA / f"{name}.onnx", target=emulated)
    if Target(BF16).bf16_dots:
        with warnings.catch_warnings():
            warnings.simplefilter("error", EmulationWarning)
            fast = tg.compile(DATA / f"{name}.onnx", target=BF16)
        inputs, _ = stored(name)
        for got, want in zip(slow.run(inputs), fast.run(inputs)):
            np.testing.assert_array_equal(got, want)
