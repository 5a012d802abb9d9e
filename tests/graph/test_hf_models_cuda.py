"""The small transformer models of ``tests/data/hf_models`` (exported by PyTorch with their weights) compiled for
``cuda`` and run (on a GPU when there is one, else in the CPU emulation) on their stored inputs, against PyTorch's
stored outputs (every one, by name): relative error (max |tcomp - torch| / max |torch|) at most 1e-4."""

from __future__ import annotations

import pytest

import tcomp.graph as tg
from tcomp.runtime.cuda_emu import EmulationError, host_compiler
from tests.graph.hf_data import DATA, assert_matches_pytorch

MODELS = sorted(path.stem for path in DATA.glob("*.onnx"))


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
    assert_matches_pytorch(name, tg.compile(DATA / f"{name}.onnx", target="cuda"))
