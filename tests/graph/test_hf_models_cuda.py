"""The small transformer models of ``tests/data/hf_models`` (exported by PyTorch with their weights) compiled for
``cuda`` and run (on a GPU when there is one, else in the CPU emulation) on their stored inputs, against PyTorch's
stored outputs (every one, by name): relative error (max |tcomp - torch| / max |torch|) at most 1e-4."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import tcomp.graph as tg
from tcomp.runtime.cuda_emu import EmulationError, host_compiler

DATA = Path(__file__).resolve().parent.parent / "data" / "hf_models"
MODELS = sorted(path.stem for path in DATA.glob("*.onnx"))
TOLERANCE = 1e-4


def _can_run() -> bool:
    from tcomp.runtime.cuda_device import gpu_available

    if gpu_available():
        return True
    try:
        host_compiler()
    except EmulationError:
        return False
    return True


@pytest.mark.slow
@pytest.mark.skipif(not _can_run(), reason="neither a GPU nor a C++ compiler for the CUDA emulation")
@pytest.mark.parametrize("name", MODELS)
def test_model_matches_pytorch_on_cuda(name: str) -> None:
    path = DATA / f"{name}.onnx"
    with np.load(DATA / f"{name}.npz") as data:
        inputs = {key[len("input_"):]: data[key] for key in data.files if key.startswith("input_")}
        wanted = {key: data[key] for key in data.files if not key.startswith("input_")}  # every output, by name
    executor = tg.compile(path, target="cuda")
    outputs = executor.run(inputs)
    assert outputs is not None and sorted(executor.output_names) == sorted(wanted)
    for output, got in zip(executor.output_names, outputs):
        want = wanted[output]
        assert got.shape == want.shape
        error = float(np.abs(got - want).max()) / float(np.abs(want).max())
        assert error <= TOLERANCE, f"{name} {output}: relative error {error:.2e}"
