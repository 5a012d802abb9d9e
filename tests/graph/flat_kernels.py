"""Building one-axis elementwise kernels for a target, as the storage-type tests build their casts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import tcomp
from tcomp import te
from tcomp.te.tensor import Tensor


def build_flat(outputs: Sequence[Tensor], args: Sequence[Tensor], target: str) -> Any:
    """``args`` (inputs and outputs in call order) built for ``target``, each of the one-axis ``outputs`` split by
    32 threads per block (``cuda``) or vectorized 16 lanes wide (``llvm``)."""
    s = tcomp.create_schedule([t.op for t in outputs])
    for t in outputs:
        outer, inner = s[t].split(t.op.axis[0], 32 if target == "cuda" else 16)
        if target == "cuda":
            s[t].bind(outer, te.thread_axis("blockIdx.x"))
            s[t].bind(inner, te.thread_axis("threadIdx.x"))
        else:
            s[t].vectorize(inner)
    return tcomp.build(s, list(args), target=target)
