"""Real exported models against PyTorch: the torchvision and Hugging Face transformers models that
``tests/data/export_models.py`` exported with PyTorch's TorchScript exporter (``torch_models``: opset 17, shape
arithmetic kept in the graph) and the transformers among them exported again by the dynamo exporter
(``dynamo_models``: opset 18, symbolic batch as ``dim_param``), compiled for ``llvm`` and run on every stored input
set.

The error is relative to the output's scale: ``max |tcomp - torch| / max |torch|`` must be at most 1e-4, or for a
model in bfloat16 (whose stored outputs are PyTorch's bfloat16 results as float32) 2^-6, two units in the last place
of the output's largest value: each operator rounds its result to 8 bits, in PyTorch and in tcomp alike. A model
with a symbolic batch runs its input sets (of different batch sizes) in one executor, which compiles once per batch
size.

A model exported in training mode (its stored data has ``std<k>``: the mean and standard deviation of many PyTorch
runs, whose Dropout layers draw at random) is compared in distribution: the mean of ``RUNS`` tcomp runs must be
within ``SIGMAS`` standard errors of PyTorch's, element by element, and the spread of the runs must match PyTorch's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import tcomp.graph as tg

DATA = Path(__file__).resolve().parent.parent / "data"
FOLDERS = {"torch_models": 17, "dynamo_models": 5}  # folder: the fewest models it holds
TOLERANCE = 1e-4
BFLOAT16_TOLERANCE = 2**-6
RUNS = 400  # tcomp runs of a training-mode model
TORCH_RUNS = 4000  # the PyTorch runs its stored mean and deviation come from (``export_models.DRAWS``)
SIGMAS = 6.0


def input_sets(path: Path) -> list[tuple[dict[str, np.ndarray], np.ndarray]]:
    """The stored ``(inputs by name, PyTorch's output)`` pairs of the model at ``path`` (its ``.npz`` beside it)."""
    with np.load(path.with_suffix(".npz")) as data:
        sets = []
        k = 0
        while f"out{k}" in data.files:
            prefix = f"in{k}_"
            inputs = {key[len(prefix):]: data[key] for key in data.files if key.startswith(prefix)}
            sets.append((inputs, data[f"out{k}"]))
            k += 1
    return sets


def is_random(path: Path) -> bool:
    with np.load(path.with_suffix(".npz")) as data:
        return "std0" in data.files


MODELS = sorted(path for folder in FOLDERS for path in (DATA / folder).glob("*.onnx"))
RANDOM_MODELS = [path for path in MODELS if is_random(path)]


@pytest.mark.parametrize("folder", sorted(FOLDERS))
def test_every_model_has_its_data(folder: str) -> None:
    paths = sorted((DATA / folder).glob("*.onnx"))
    assert len(paths) >= FOLDERS[folder]
    for path in paths:
        assert path.with_suffix(".npz").is_file()
        assert path.stat().st_size < 2 << 20


@pytest.mark.parametrize("path", [p for p in MODELS if p not in RANDOM_MODELS],
                         ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_exported_model_matches_pytorch(path: Path) -> None:
    executor = tg.compile(path, "llvm")
    sets = input_sets(path)
    for inputs, want in sets:
        [got] = executor.run(inputs)
        tolerance = TOLERANCE
        if got.dtype.name == "bfloat16":
            got, tolerance = got.astype(np.float32), BFLOAT16_TOLERANCE
        assert got.shape == want.shape and got.dtype == want.dtype
        error = float(np.abs(got - want).max()) / float(np.abs(want).max())
        assert error <= tolerance, f"{path.stem}: relative error {error:.2e}"
    batches = {inputs[next(iter(inputs))].shape[0] for inputs, _ in sets}
    if isinstance(executor, tg.SpecializingExecutor):  # the first batch compiles, the next ones (a symbolic
        assert executor.compilations == 1  # dimension that took a second value) assemble executors
        assert executor.assembled == len(batches) - 1 and executor.dynamic_failure is None
    else:
        assert len(batches) == 1


@pytest.mark.parametrize("path", RANDOM_MODELS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_training_mode_model_matches_pytorch_in_distribution(path: Path) -> None:
    executor = tg.compile(path, "llvm")
    with np.load(path.with_suffix(".npz")) as data:
        torch_std = data["std0"]
    [(inputs, torch_mean)] = input_sets(path)[:1]
    runs = np.stack([executor.run(inputs)[0].copy() for _ in range(RUNS)])
    mean, std = runs.mean(axis=0), runs.std(axis=0)
    assert (std > 0).mean() > 0.99, "the runs do not vary: dropout does not draw"
    standard_error = np.sqrt(std ** 2 / RUNS + torch_std ** 2 / TORCH_RUNS) + 1e-6
    worst = float((np.abs(mean - torch_mean) / standard_error).max())
    assert worst <= SIGMAS, f"the mean of the runs is {worst:.1f} standard errors from PyTorch's"
    spread = float(std.mean() / torch_std.mean())
    assert 0.95 <= spread <= 1.05, f"the runs spread {spread:.2f} times as much as PyTorch's"
