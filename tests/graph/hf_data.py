"""The models of ``tests/data/hf_models`` with their stored inputs and PyTorch's outputs, and the check of what an
executor computes from those inputs against every stored output."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

DATA = Path(__file__).resolve().parent.parent / "data" / "hf_models"
TOLERANCE = 1e-4  # relative error: max |tcomp - torch| / max |torch|


def case_lengths(keys: Iterable[str]) -> list[int | str | None]:
    """The cases the arrays named ``keys`` hold (``<array>@<n>`` names: a cache length of a model whose cache length
    is symbolic, a token's position in a static cache, sorted; ``<array>@<batch>x<n>``, in the order stored), else
    ``[None]``: one case of plain names."""
    cases = list(dict.fromkeys(key.rsplit("@", 1)[1] for key in keys if "@" in key))
    if all(case.isdigit() for case in cases):
        return sorted(int(case) for case in cases) or [None]
    return list(cases)


def case_keys(keys: Iterable[str], length: int | str | None) -> dict[str, str]:
    """The arrays of case ``length`` among ``keys``: their names without the case's suffix -> their keys."""
    suffix = "" if length is None else f"@{length}"
    return {key[: len(key) - len(suffix)]: key for key in keys
            if ("@" not in key if length is None else key.endswith(suffix))}


def stored_lengths(name: str) -> list[int | str | None]:
    """The cases model ``name`` stores (``case_lengths``)."""
    with np.load(DATA / f"{name}.npz") as data:
        return case_lengths(data.files)


def stored(name: str, length: int | str | None = None) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Model ``name``'s stored inputs (``input_<name>`` arrays) and PyTorch's outputs (the other arrays), by name;
    those of case ``length`` for a model that stores several (``stored_lengths``)."""
    with np.load(DATA / f"{name}.npz") as data:
        arrays = {base: data[key] for base, key in case_keys(data.files, length).items()}
    inputs = {key[len("input_"):]: value for key, value in arrays.items() if key.startswith("input_")}
    outputs = {key: value for key, value in arrays.items() if not key.startswith("input_")}
    return inputs, outputs


def assert_matches_pytorch(name: str, executor: Any) -> None:
    """Run ``executor`` on model ``name``'s stored inputs (each stored case in turn); every output matches
    PyTorch's within ``TOLERANCE``."""
    for length in stored_lengths(name):
        inputs, wanted = stored(name, length)
        outputs = executor.run(inputs)
        assert outputs is not None and sorted(executor.output_names) == sorted(wanted)
        for output, got in zip(executor.output_names, outputs):
            want = wanted[output]
            assert got.shape == want.shape
            error = float(np.abs(got - want).max()) / float(np.abs(want).max())
            assert error <= TOLERANCE, f"{name} {output} (case {length}): relative error {error:.2e}"
