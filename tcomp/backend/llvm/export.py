"""The kernels of a model compiled for a CPU, exported as one shared library and loaded back without recompiling
(``LLVMBackend.save_kernels`` / ``read_kernels`` / ``load_kernels``, for the graph's ``export.py`` and ``load.py``).

``kernels.so`` holds the native code of every kernel (``tcomp.runtime.library.export_library``) and, as an exported
constant (``tcomp_kernels``), the list of the kernels the compiler wrote with their signatures: per entry symbol,
each parameter's dtype and shape, the runtime checks' messages and the size of the error area. Loading looks the
list up in the library alone and the entries too (never in the libraries it depends on).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tcomp.backend.base import ExportError
from tcomp.ir.expr import const_int_value
from tcomp.json_value import JSONValueError, as_object, parse_json
from tcomp.runtime.artifact import LLVMArtifact
from tcomp.runtime.library import LibraryError, export_library, library_data, library_function, load_library
from tcomp.runtime.module import NativeEntry
from tcomp.target import Target

LIBRARY = "kernels.so"
MANIFEST = "tcomp_kernels"  # the exported constant of kernels.so that lists its kernels
KERNELS_FORMAT = "tcomp.kernels.v1"
MAX_MANIFEST_BYTES = 64 << 20


def kernel_signature(module: Any) -> dict[str, Any]:
    """What ``kernels.so`` says about one kernel (a ``Module``): its parameters' dtypes and static shapes, its
    runtime checks and its error area."""
    func, artifact = module.func, module.artifact
    params = []
    for buffer in func.params:
        shape = [const_int_value(d) for d in buffer.shape]
        if any(d is None for d in shape) or func.size_vars:
            raise ExportError(f"kernel {artifact.entry_name}: parameter {buffer.name} has a symbolic shape; only "
                              "static shapes export")
        params.append([buffer.dtype, shape])
    return {"params": params, "asserts": [[a.message, a.num_values] for a in artifact.asserts],
            "error_slots": artifact.error_slots}


def kernel_manifest(modules: Sequence[Any]) -> bytes:
    """The ``tcomp_kernels`` constant of ``kernels.so``: ``{"format", "kernels": {entry: signature}}``."""
    kernels: dict[str, Any] = {}
    for module in modules:
        entry = module.artifact.entry_name
        signature = kernel_signature(module)
        if kernels.setdefault(entry, signature) != signature:
            raise ExportError(f"two different kernels are named {entry}")
    return json.dumps({"format": KERNELS_FORMAT, "kernels": kernels}, separators=(",", ":")).encode()


def save_library(modules: Sequence[Any], folder: Path, target: Target) -> None:
    """Write ``kernels.so`` for ``modules`` (JIT-compiled ``Module``s, one per graph kernel, repeats allowed)."""
    unique: dict[str, Any] = {}
    for module in modules:
        if not isinstance(getattr(module, "artifact", None), LLVMArtifact):
            raise ExportError("only an executor compiled in this process can be exported (this one was loaded)")
        previous = unique.setdefault(module.artifact.entry_name, module)
        if previous is not module and previous.artifact.ll != module.artifact.ll:
            raise ExportError(f"two different kernels are named {module.artifact.entry_name}")
    export_library([m.artifact for m in unique.values()], folder / LIBRARY, target,
                   data=[(MANIFEST, kernel_manifest(modules))])


def read_library(path: Path) -> tuple[Any, dict[str, Any]]:
    """Load ``kernels.so`` and read the kernels it lists: ``(library, signatures by entry)``."""
    library = load_library(path)
    try:
        text = library_data(library, MANIFEST, MAX_MANIFEST_BYTES)
        manifest = as_object(parse_json(text, 8), "the kernel list")
        if manifest.get("format") != KERNELS_FORMAT:
            raise JSONValueError(f"format {str(manifest.get('format'))[:40]!r}, not {KERNELS_FORMAT}")
        return library, as_object(manifest.get("kernels"), "the kernel list's kernels")
    except LibraryError as exc:
        raise ExportError(f"{LIBRARY} lists no kernels ({exc}); was it written by an older tcomp? compile and "
                          "export the model again") from None
    except JSONValueError as exc:
        raise ExportError(f"{LIBRARY}'s kernel list cannot be read: {exc}") from None


def library_entries(library: Any, entries: Sequence[str]) -> list[NativeEntry]:
    """The entry functions ``entries`` of a loaded ``kernels.so``."""
    return [NativeEntry(library_function(library, entry), library) for entry in entries]
