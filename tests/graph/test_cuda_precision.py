"""``tcomp.graph.compile(model, target="cuda", precision=...)``: convolutions and matrix products on tensor cores
(the GEMM tile kernel, emulated here), checked against onnxruntime within what each precision allows; fp32 keeps
float32 arithmetic; the command line's ``--precision``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

import tcomp.graph as tg
from tcomp.cli import build_parser
from tcomp.cli.arguments import target_of
from tcomp.graph.testing import ModelBuilder
from tcomp.target import Precision, Target

# relative to the largest output: two roundings of each operand (2^-11 for TF32 and float16, 2^-8 for bfloat16)
# over a few layers
TOLERANCE = {"tf32": 3e-3, "fp16": 3e-3, "bf16": 3e-2}
SUFFIX = {"tf32": "tf32", "fp16": "f16", "bf16": "bf16"}
HF_MODELS = Path(__file__).resolve().parents[1] / "data" / "hf_models"


def conv_and_dense() -> object:
    """Convolutions with 16 and 24 output channels (one strided), a ReLU between, then a [20, 24] x [24, 32]
    fully connected layer on a second input: every product has at least 16 rows."""
    b = ModelBuilder(seed=1)
    x = b.conv("x", 3, 16, 3, bias=True)
    x = b.node("Relu", [x])
    x = b.conv(x, 16, 24, 3, stride=2)
    y = b.dense("t", 24, 32)
    model = b.model("precision_net", [("x", [1, 3, 10, 9]), ("t", [20, 24])], x, [1, 24, 5, 5])
    from onnx import TensorProto, helper

    model.graph.output.append(helper.make_tensor_value_info(y, TensorProto.FLOAT, [20, 32]))
    return model


def _feeds() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(5)
    return {"x": rng.standard_normal((1, 3, 10, 9)).astype(np.float32),
            "t": rng.standard_normal((20, 24)).astype(np.float32)}


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_tensor_core_precisions_match_onnxruntime(precision: str) -> None:
    model = conv_and_dense()
    feeds = _feeds()
    executor = tg.compile(model, target="cuda", precision=precision)
    assert executor.program.target == f"cuda -precision={precision}"
    sources = [m.get_source() for m in executor.modules]
    assert sum(f"tc_mma_{SUFFIX[precision]}(acc" in s for s in sources) == 3  # two convolutions, one matmul
    want = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)
    got = executor.run(feeds)
    for g, w in zip(got, want):
        error = float(np.abs(g - w).max() / np.abs(w).max())
        assert error <= TOLERANCE[precision], (precision, error)
        assert error > 1e-7  # the operands were rounded: this is not float32 arithmetic


def test_fp32_precision_keeps_float32_kernels() -> None:
    model = conv_and_dense()
    executor = tg.compile(model, target="cuda", precision="fp32")
    assert executor.program.target == "cuda"
    assert not any("tc_mma_" in m.get_source() and "tc_gemm" in m.get_source() and "mma.sync" in m.get_source()
                   for m in executor.modules)
    feeds = _feeds()
    want = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)
    for g, w in zip(executor.run(feeds), want):
        assert float(np.abs(g - w).max() / np.abs(w).max()) <= 1e-5


def test_precision_needs_a_cuda_target() -> None:
    with pytest.raises(ValueError, match="precision fp16 applies to cuda targets"):
        tg.compile(conv_and_dense(), target="llvm", precision="fp16")
    with pytest.raises(ValueError, match="unknown precision 'fp64'"):
        tg.compile(conv_and_dense(), target="cuda", precision="fp64")


def test_command_line_precision_option() -> None:
    parser = build_parser()
    args = parser.parse_args(["compile", "m.onnx", "--target", "cuda -arch=sm_90", "--precision", "bf16", "-o", "o"])
    assert target_of(args) == Target("cuda -arch=sm_90 -precision=bf16")
    args = parser.parse_args(["tune", "--op", "matmul_cuda", "--shape", "64,64,64", "--target", "cuda",
                              "--precision", "tf32"])
    assert target_of(args).precision is Precision.TF32
    with pytest.raises(SystemExit):
        parser.parse_args(["compile", "m.onnx", "--precision", "fp8", "-o", "o"])


@pytest.mark.slow
def test_gpt2_in_float16_matches_pytorch() -> None:
    """A small GPT-2 exported by PyTorch: its projections and attention products on float16 tensor cores."""
    data = np.load(HF_MODELS / "gpt2_tiny.npz")
    feeds = {k[len("input_"):]: data[k] for k in data.files if k.startswith("input_")}
    executor = tg.compile(str(HF_MODELS / "gpt2_tiny.onnx"), target="cuda", precision="fp16")
    assert any("tc_mma_f16(acc" in m.get_source() for m in executor.modules)
    got = executor.run(feeds)[0]
    want = data["output"]
    assert float(np.abs(got - want).max() / np.abs(want).max()) <= 2e-3
