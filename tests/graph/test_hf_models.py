"""Real models exported by PyTorch's dynamo exporter from Hugging Face transformers code (``tests/data/hf_models``):
each compiles for ``llvm`` and matches PyTorch's own output within 1e-4 relative error (max |difference| / max
|PyTorch's output|)."""

from __future__ import annotations

import numpy as np
import pytest

import tcomp.graph as tg
from tests.graph.hf_data import DATA, stored

MODELS = ["bert_tiny", "convnext_tiny_cfg", "gpt2_tiny", "llama_tiny", "segformer_tiny", "swin_tiny",
          "t5_encoder_tiny", "whisper_encoder_tiny", "gpt2_decode_tiny", "llama_decode_tiny", "bloom_tiny",
          "deberta_v2_tiny", "wav2vec2_tiny", "beit_tiny"]


def relative_error(got: np.ndarray, want: np.ndarray) -> float:
    scale = float(np.abs(want).max()) or 1.0
    return float(np.abs(got.astype(np.float64) - want).max()) / scale


def run_model(name: str) -> tuple[np.ndarray, np.ndarray]:
    """tcomp's output of model ``name`` on its stored inputs, and PyTorch's."""
    inputs, wanted = stored(name)
    executor = tg.compile(DATA / f"{name}.onnx", target="llvm")
    outputs = executor.run(inputs)
    assert outputs is not None
    return outputs[0], wanted["output"]


@pytest.mark.parametrize("name", MODELS)
def test_matches_pytorch(name: str, capfd: pytest.CaptureFixture[str]) -> None:
    got, want = run_model(name)
    assert got.shape == want.shape
    assert relative_error(got, want) <= 1e-4
    assert "loop not vectorized" not in capfd.readouterr().err  # LLVM's remarks stay out of a user's terminal
