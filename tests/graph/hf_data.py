"""The models of ``tests/data/hf_models`` with their stored inputs and PyTorch's outputs, and the check of what an
executor computes from those inputs against every stored output."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

DATA = Path(__file__).resolve().parent.parent / "data" / "hf_models"
TOLERANCE = 1e-4  # relative error: max |tcomp - torch| / max |torch|


def stored(name: str) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Model ``name``'s stored inputs (``input_<name>`` arrays) and PyTorch's outputs (the other arrays), by name."""
    with np.load(DATA / f"{name}.npz") as data:
        inputs = {key[len("input_"):]: data[key] for key in data.files if key.startswith("input_")}
        outputs = {key: data[key] for key in data.files if not key.startswith("input_")}
    return inputs, outputs


def assert_matches_pytorch(name: str, executor: Any) -> None:
    """Run ``executor`` on model ``name``'s stored inputs; every output matches PyTorch's within ``TOLERANCE``."""
    inputs, wanted = stored(name)
    outputs = executor.run(inputs)
    assert outputs is not None and sorted(executor.output_names) == sorted(wanted)
    for output, got in zip(executor.output_names, outputs):
        want = wanted[output]
        assert got.shape == want.shape
        error = float(np.abs(got - want).max()) / float(np.abs(want).max())
        assert error <= TOLERANCE, f"{name} {output}: relative error {error:.2e}"
