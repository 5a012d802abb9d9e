"""Exporting a compiled model to a folder and loading it back without recompiling.

The folder holds:

- ``kernels.so``: the native code of every kernel (``tcomp.runtime.library.export_library``); for ``cuda``,
  ``kernels.cu`` and launch descriptions instead (``cuda_export.py``);
- ``graph.json``: the executor program (inputs, outputs, value types, storages, kernels with their argument values
  and error messages, the target), format ``FORMAT``;
- ``params.npz``: the parameters (loaded with ``allow_pickle=False``).

``load_executor(folder)`` checks the JSON's format and consistency (every kernel argument has a type and a storage
or parameter, storages are large enough) before loading the library.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from tcomp.graph.executor import ExecutorProgram, GraphExecutor, KernelSpec
from tcomp.graph.ir import GraphError, TensorType
from tcomp.runtime.library import export_library, library_function, load_library
from tcomp.target import Target

FORMAT = "tcomp.graph.v1"
LIBRARY, GRAPH, PARAMS = "kernels.so", "graph.json", "params.npz"


def export_executor(executor: GraphExecutor, folder: str | os.PathLike[str]) -> None:
    program = executor.program
    target = Target.parse(program.target)
    modules = getattr(executor, "modules", None)
    if target.kind != "cuda" and executor.artifacts is None:
        raise GraphError("only an executor compiled in this process can be exported (this one was loaded)")
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    cuda: dict[str, Any] | None = None
    if target.kind == "cuda":
        from tcomp.graph.cuda_export import export_cuda_modules

        cuda = export_cuda_modules(list(modules or []), out)
    else:
        unique: dict[str, Any] = {}
        for artifact in executor.artifacts or []:
            previous = unique.get(artifact.entry_name)
            if previous is not None and previous is not artifact and previous.ll != artifact.ll:
                raise GraphError(f"two different kernels are named {artifact.entry_name}")
            unique.setdefault(artifact.entry_name, artifact)
        export_library(list(unique.values()), out / LIBRARY, target)
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
        "kernels": [
            {"name": k.name, "entry": k.entry, "args": list(k.args), "num_inputs": k.num_inputs,
             "asserts": [list(a) for a in k.asserts], "error_slots": k.error_slots}
            for k in program.kernels
        ],
        "stats": program.stats,
        "constants": list(program.constants),
    }
    if cuda is not None:
        document["cuda"] = cuda
    (out / GRAPH).write_text(json.dumps(document, indent=1))
    np.savez(out / PARAMS, **{_param_key(i): program.params[name] for i, name in enumerate(sorted(program.params))})


def _param_key(index: int) -> str:
    return f"p{index}"


def _fail(folder: Path, reason: str) -> GraphError:
    return GraphError(f"compiled model {str(folder)!r}: {reason}")


def _read_document(base: Path) -> dict[str, Any]:
    try:
        document = json.loads((base / GRAPH).read_text())
    except FileNotFoundError:
        raise _fail(base, f"{GRAPH} is missing (was it written by `tcomp compile`?)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise _fail(base, f"{GRAPH} is not valid JSON: {exc}") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise _fail(base, f"{GRAPH} is not a tcomp graph of format {FORMAT}")
    return document


def read_program(folder: str | os.PathLike[str]) -> ExecutorProgram:
    base = Path(folder)
    return _program(base, _read_document(base))


def _program(base: Path, document: dict[str, Any]) -> ExecutorProgram:
    try:
        types = {k: TensorType(tuple(int(d) for d in v["shape"]), str(v["dtype"])) for k, v in
                 document["types"].items()}
        kernels = [KernelSpec(str(k["name"]), str(k["entry"]), tuple(str(a) for a in k["args"]), int(k["num_inputs"]),
                              tuple((str(m), int(n)) for m, n in k["asserts"]), int(k["error_slots"]))
                   for k in document["kernels"]]
        storage_of = {str(k): int(v) for k, v in document["storage_of"].items()}
        storage_bytes = tuple(int(v) for v in document["storage_bytes"])
        param_names = [str(p) for p in document["params"]]
        program = ExecutorProgram(str(document["name"]), tuple(document["inputs"]), tuple(document["outputs"]),
                                  types, storage_of, storage_bytes, {}, kernels, str(document["target"]),
                                  dict(document.get("stats", {})),
                                  tuple(str(c) for c in document.get("constants", [])))
    except (KeyError, TypeError, ValueError, GraphError) as exc:
        raise _fail(base, f"{GRAPH} is inconsistent: {exc!r}") from None
    try:
        with np.load(base / PARAMS, allow_pickle=False) as archive:
            program.params = {name: archive[_param_key(i)] for i, name in enumerate(param_names)}
    except FileNotFoundError:
        raise _fail(base, f"{PARAMS} is missing") from None
    except (KeyError, ValueError, OSError) as exc:
        raise _fail(base, f"{PARAMS} cannot be read: {exc}") from None
    _check(base, program)
    return program


def _check(base: Path, program: ExecutorProgram) -> None:
    for name, storage in program.storage_of.items():
        t = program.types.get(name)
        if t is None or not 0 <= storage < len(program.storage_bytes) or program.storage_bytes[storage] < t.nbytes:
            raise _fail(base, f"value {name!r} has no type or does not fit its storage")
    for name, value in program.params.items():
        t = program.types.get(name)
        if t is None or tuple(value.shape) != t.shape:
            raise _fail(base, f"parameter {name!r} does not match its type")
    for spec in program.kernels:
        for arg in spec.args:
            if arg not in program.storage_of and arg not in program.params:
                raise _fail(base, f"kernel {spec.entry} reads {arg!r}, which has no storage")
    for name in (*program.inputs, *program.outputs):
        if name not in program.storage_of and name not in program.params:
            raise _fail(base, f"input/output {name!r} has no storage")


def load_executor(folder: str | os.PathLike[str]) -> GraphExecutor:
    """An executor for a folder written by ``GraphExecutor.export`` (no compilation; for cuda, the CUDA C is
    compiled for the GPU or the emulation, see ``cuda_export.py``)."""
    base = Path(folder)
    document = _read_document(base)
    program = _program(base, document)
    try:
        target = Target.parse(program.target)
    except ValueError as exc:
        raise _fail(base, f"unknown target {program.target!r}: {exc}") from None
    if target.kind == "cuda":
        return _load_cuda(base, document, program, target)
    library = load_library(Path(folder) / LIBRARY)
    addresses = [library_function(library, spec.entry) for spec in program.kernels]
    return GraphExecutor(program, addresses, keep_alive=library)


def _load_cuda(base: Path, document: dict[str, Any], program: ExecutorProgram, target: Target) -> GraphExecutor:
    from tcomp.graph.cuda_executor import make_cuda_executor
    from tcomp.graph.cuda_export import load_cuda_modules

    described = document.get("cuda")
    if not isinstance(described, dict):
        raise _fail(base, f"{GRAPH} has no \"cuda\" section for its cuda target")
    missing = sorted({spec.entry for spec in program.kernels} - set(described))
    if missing:
        raise _fail(base, f"kernels {missing} have no description in the \"cuda\" section")
    modules = load_cuda_modules(base, described, target)
    return make_cuda_executor(program, [modules[spec.entry] for spec in program.kernels])
