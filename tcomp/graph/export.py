"""Exporting a compiled model to a folder; ``load.py`` loads it back without recompiling.

The folder holds:

- ``kernels.so``: the native code of every kernel (``tcomp.runtime.library.export_library``) and, as an exported
  constant (``tcomp_kernels``), the list of the kernels the compiler wrote with their signatures: per entry
  symbol, each parameter's dtype and shape, the runtime checks' messages and the size of the error area. For
  ``cuda``, ``kernels.cu`` with its launch descriptions on its last line instead (``cuda_export.py``);
- ``graph.json``: the executor program (inputs, outputs, value types, storages, the kernels to call with their
  argument values, the parameters compiled into the code, the target), format ``FORMAT``;
- ``params.npz``: the parameters (``p0.npy``, ``p1.npy``, ... in the order of ``graph.json``'s ``"params"``).

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

from tcomp.graph.ir import GraphError
from tcomp.ir.expr import const_int_value
from tcomp.runtime.library import export_library
from tcomp.target import Target

FORMAT = "tcomp.graph.v2"
KERNELS_FORMAT = "tcomp.kernels.v1"
LIBRARY, GRAPH, PARAMS = "kernels.so", "graph.json", "params.npz"
MANIFEST = "tcomp_kernels"  # the exported constant of kernels.so that lists its kernels


def kernel_signature(module: Any) -> dict[str, Any]:
    """What ``kernels.so`` says about one kernel (a ``Module``): its parameters' dtypes and static shapes, its
    runtime checks and its error area."""
    func, artifact = module.func, module.artifact
    params = []
    for buffer in func.params:
        shape = [const_int_value(d) for d in buffer.shape]
        if any(d is None for d in shape) or func.size_vars:
            raise GraphError(f"kernel {artifact.entry_name}: parameter {buffer.name} has a symbolic shape; only "
                             "static shapes export")
        params.append([buffer.dtype, shape])
    return {"params": params, "asserts": [[a.message, a.num_values] for a in artifact.asserts],
            "error_slots": artifact.error_slots}


def kernel_manifest(modules: list[Any]) -> bytes:
    """The ``tcomp_kernels`` constant of ``kernels.so``: ``{"format", "kernels": {entry: signature}}``."""
    kernels: dict[str, Any] = {}
    for module in modules:
        entry = module.artifact.entry_name
        signature = kernel_signature(module)
        if kernels.setdefault(entry, signature) != signature:
            raise GraphError(f"two different kernels are named {entry}")
    return json.dumps({"format": KERNELS_FORMAT, "kernels": kernels}, separators=(",", ":")).encode()


def export_executor(executor: Any, folder: str | os.PathLike[str]) -> None:
    program = executor.program
    target = Target.parse(program.target)
    modules = list(getattr(executor, "modules", None) or [])
    if not modules or len(modules) != len(program.kernels):
        raise GraphError("only an executor compiled in this process can be exported (this one was loaded)")
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    if target.kind == "cuda":
        from tcomp.graph.cuda_export import export_cuda_modules

        export_cuda_modules(modules, out)
    else:
        unique: dict[str, Any] = {}
        for module in modules:
            previous = unique.setdefault(module.artifact.entry_name, module)
            if previous is not module and previous.artifact.ll != module.artifact.ll:
                raise GraphError(f"two different kernels are named {module.artifact.entry_name}")
        export_library([m.artifact for m in unique.values()], out / LIBRARY, target,
                       data=[(MANIFEST, kernel_manifest(modules))])
    document: dict[str, Any] = {
        "format": FORMAT,
        "name": program.name,
        "target": program.target,
        "inputs": list(program.inputs),
        "outputs": list(program.outputs),
        "types": {k: {"shape": list(t.shape), "dtype": t.dtype} for k, t in program.types.items()},
        "storage_of": program.storage_of,
        "storage_bytes": list(program.storage_bytes),
        "params": sorted(program.params),
        "constants": list(program.constants),
        "kernels": [{"name": k.name, "entry": k.entry, "args": list(k.args), "num_inputs": k.num_inputs}
                    for k in program.kernels],
        "stats": program.stats,
    }
    (out / GRAPH).write_text(json.dumps(document, indent=1))
    np.savez(out / PARAMS, **{param_key(i): program.params[name] for i, name in enumerate(sorted(program.params))})


def param_key(index: int) -> str:
    return f"p{index}"
