"""Exporting a compiled model to a folder; ``load.py`` loads it back without recompiling.

The folder holds:

- the kernels' code, written by the target's backend with the list of the kernels the compiler wrote and their
  signatures (per entry symbol, each parameter's dtype and shape, the runtime checks' messages and the size of the
  error area): ``kernels.so`` for CPUs (``tcomp/backend/llvm/export.py``), ``kernels.cu`` with its launch
  descriptions on its last line for ``cuda`` (``tcomp/backend/cuda/export.py``);
- ``graph.json``: the executor program (inputs, outputs, value types, storages, the kernels to call with their
  argument values, the parameters compiled into the code, the random states the executor advances, the target),
  format ``FORMAT``;
- ``params.npz``: the parameters (``p0.npy``, ``p1.npy``, ... in the order of ``graph.json``'s ``"params"``;
  bfloat16 and 4- and 2-bit integers as their bits, which any numpy reads: ``stored_dtype``).

What loading a folder trusts: the code. ``kernels.so`` is native code that runs when it is loaded and when the
model runs, and ``kernels.cu`` is compiled and run as it is: load only folders from someone you trust to run code
on your machine. Everything else is data and is checked before use, so that an edited ``graph.json`` or
``params.npz`` cannot make the trusted code read or write out of bounds or call anything but the kernels (see
``load.py``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from tcomp.backend import ExportError, backend_for
from tcomp.graph.ir import GraphError
from tcomp.target import Target

FORMAT = "tcomp.graph.v2"
GRAPH, PARAMS = "graph.json", "params.npz"


def export_executor(executor: Any, folder: str | os.PathLike[str]) -> None:
    program = executor.program
    target = Target.parse(program.target)
    modules = list(getattr(executor, "modules", None) or [])
    if any(k.sizes for k in program.kernels):
        raise GraphError(f"{program.name}: kernels compiled for symbolic dimensions cannot be exported; compile it "
                         "with its input shapes bound (input_shapes=, --input-shapes) to export it")
    if not modules or len(modules) != len(program.kernels):
        raise GraphError("only an executor compiled in this process can be exported (this one was loaded)")
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    try:
        backend_for(target).save_kernels(modules, out, target)
    except ExportError as exc:
        raise GraphError(str(exc)) from None
    document: dict[str, Any] = {
        "format": FORMAT,
        "name": program.name,
        "target": program.target,
        "inputs": list(program.inputs),
        "outputs": list(program.outputs),
        "types": {k: {"shape": list(t.shape), "dtype": t.dtype} for k, t in program.types.items()},
        "storage_of": program.storage_of,
        "storage_bytes": list(program.storage_bytes),
        "offset_of": program.offset_of,
        "params": sorted(program.params),
        "constants": list(program.constants),
        "random_states": list(program.random_states),
        "kernels": [{"name": k.name, "entry": k.entry, "args": list(k.args), "num_inputs": k.num_inputs}
                    for k in program.kernels],
        "stats": program.stats,
    }
    (out / GRAPH).write_text(json.dumps(document, indent=1))
    arrays = (program.params[name] for name in sorted(program.params))
    np.savez(out / PARAMS, **{param_key(i): a.view(stored_dtype(a.dtype)) for i, a in enumerate(arrays)})


def param_key(index: int) -> str:
    return f"p{index}"


def stored_dtype(dtype: np.dtype) -> np.dtype:
    """The type a parameter of ``dtype`` is saved as in ``params.npz``: the ``ml_dtypes`` types (bfloat16, the 4- and
    2-bit integers) as their bits, an unsigned integer of their size (``.npy`` files have no name for them), any other
    as itself."""
    return np.dtype(f"uint{8 * dtype.itemsize}") if dtype.kind == "V" else dtype
