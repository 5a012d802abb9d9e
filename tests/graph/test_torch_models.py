"""Real exported models against PyTorch: the torchvision and Hugging Face transformers models that
``tests/data/export_models.py`` exported with PyTorch's TorchScript exporter (opset 17, shape arithmetic kept in
the graph), compiled for ``llvm`` and run on every stored input set.

The error is relative to the output's scale: ``max |tcomp - torch| / max |torch|`` must be at most 1e-4. A model
with a symbolic batch runs its input sets (of different batch sizes) in one executor, which compiles once per batch
size.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import tcomp.graph as tg

DATA = Path(__file__).resolve().parent.parent / "data" / "torch_models"
TOLERANCE = 1e-4

def input_sets(name: str) -> list[tuple[dict[str, np.ndarray], np.ndarray]]:
    """The stored ``(inputs by name, PyTorch's output)`` pairs of model ``name``."""
    with np.load(DATA / f"{name}.npz") as data:
        sets = []
        k = 0
        while f"out{k}" in data.files:
            prefix = f"in{k}_"
            inputs = {key[len(prefix):]: data[key] for key in data.files if key.startswith(prefix)}
            sets.append((inputs, data[f"out{k}"]))
            k += 1
    return sets


MODELS = sorted(path.stem for path in DATA.glob("*.onnx"))


def test_every_model_has_its_data() -> None:
    assert len(MODELS) >= 12
    for name in MODELS:
        assert (DATA / f"{name}.npz").is_file()
        assert (DATA / f"{name}.onnx").stat().st_size < 2 << 20


@pytest.mark.parametrize("name", MODELS)
def test_exported_model_matches_pytorch(name: str) -> None:
    executor = tg.compile(DATA / f"{name}.onnx", "llvm")
    sets = input_sets(name)
    for inputs, want in sets:
        [got] = executor.run(inputs)
        assert got.shape == want.shape and got.dtype == want.dtype
        error = float(np.abs(got - want).max()) / float(np.abs(want).max())
        assert error <= TOLERANCE, f"{name}: relative error {error:.2e}"
    batches = {inputs[next(iter(inputs))].shape[0] for inputs, _ in sets}
    if isinstance(executor, tg.SpecializingExecutor):
        assert executor.compilations == len(batches)
    else:
        assert len(batches) == 1
