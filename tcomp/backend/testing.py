"""Build a schedule and compare what it computes with a numpy reference, for tests of operators and schedules on
any target (``tvm.testing``'s role). The references themselves are in ``tcomp.ops.testing``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from tcomp.backend.driver import build
from tcomp.ir import dtype as dt
from tcomp.te.tensor import Tensor

__all__ = ["build_and_check"]


def build_and_check(
    schedule: Any,
    args: Sequence[Tensor],
    inputs: Sequence[np.ndarray],
    expected: Sequence[np.ndarray] | np.ndarray,
    rtol: float = 1e-5,
    atol: float = 1e-6,
    target: str = "llvm",
) -> list[np.ndarray]:
    """Build ``schedule`` over ``args`` (inputs first, then outputs), run it on ``inputs`` with fresh output arrays
    shaped like ``expected`` (pre-filled with NaN for floats, so an unwritten element fails) and compare."""
    wanted = [expected] if isinstance(expected, np.ndarray) else list(expected)
    if len(inputs) + len(wanted) != len(args):
        raise ValueError(f"build_and_check: {len(args)} arguments, but {len(inputs)} inputs and {len(wanted)} outputs")
    module = build(schedule, list(args), target=target)
    outputs: list[np.ndarray] = []
    for tensor, reference in zip(args[len(inputs):], wanted):
        out = np.empty(reference.shape, dtype=dt.to_numpy(tensor.dtype))
        if out.dtype.kind == "f":
            out.fill(np.nan)
        else:
            out.fill(0)
        outputs.append(out)
    module(*inputs, *outputs)
    for tensor, out, reference in zip(args[len(inputs):], outputs, wanted):
        if out.dtype.kind == "f":
            np.testing.assert_allclose(out, reference, rtol=rtol, atol=atol, err_msg=f"output {tensor.name}")
        else:
            np.testing.assert_array_equal(out, reference, err_msg=f"output {tensor.name}")
    return outputs
