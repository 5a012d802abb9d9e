"""The kernels of a model compiled for ``target="cuda"``, exported and loaded back without compiling anything but the
CUDA C (``CudaBackend.save_kernels`` / ``read_kernels`` / ``load_kernels``, for the graph's ``export.py`` and
``load.py``).

Besides ``graph.json`` and ``params.npz`` (the graph's), the folder holds ``kernels.cu``:

- the CUDA C of every distinct kernel module, one after the other (each module's helpers are guarded, so the file
  compiles as one translation unit: ``nvcc -ptx kernels.cu``);
- on its last line, after ``// tcomp-launch:``, how to launch each module: its parameters (name, shape, dtype), the
  global temporaries the host allocates, and per kernel its symbol, which parameters and temporaries it takes, its
  grid and block, its shared memory (and how much of it is dynamic), its local arrays and whether it
  synchronizes; plus where its source starts and ends in
  ``kernels.cu``. The launch descriptions are part of the code file, not of ``graph.json``: a grid is as much the
  compiler's word as the kernel that indexes by it, and the loader checks ``graph.json`` against them.

Models have static shapes, so grids are plain numbers (a module with symbolic sizes is refused). Loading reads
``kernels.cu`` (bounded), rebuilds each module's launch description, checks it (every kernel argument exists,
every source range lies in ``kernels.cu``, grids and blocks are in range) and compiles its source for the GPU (NVRTC
through CuPy) or, without one, for the CPU emulation. Like a ``.so``, ``kernels.cu`` is code: it is compiled and
run as it is.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tcomp.backend.base import ExportError
from tcomp.ir.buffer import Buffer
from tcomp.ir.dtype import known_dtype
from tcomp.ir.expr import const, const_int_value
from tcomp.ir.stmt import NoOp, PrimFunc
from tcomp.json_value import JSONValueError, as_int, as_list, as_object, as_str, parse_json
from tcomp.runtime.cuda_artifact import CudaArtifact, KernelInfo
from tcomp.target import Target
from tcomp.transform.bind_threads import LaunchDims

SOURCE = "kernels.cu"
LAUNCH_MARKER = "// tcomp-launch: "
MAX_SOURCE_BYTES = 256 << 20
MAX_DESCRIPTION_DEPTH = 8
MAX_BLOCK = 1024  # threads per block
MAX_GRID = 2**31 - 1
MAX_SHARED_BYTES = 256 << 10
MAX_LOCAL_BYTES = 512 << 10  # CUDA's local memory per thread


def _buffer_json(buffer: Buffer, where: str) -> dict[str, Any]:
    shape = [const_int_value(d) for d in buffer.shape]
    if any(d is None for d in shape) or buffer.strides is not None:
        raise ExportError(f"{where}: buffer {buffer.name} has a symbolic shape or strides; only static shapes export")
    return {"name": buffer.name, "shape": shape, "dtype": buffer.dtype}


def module_json(artifact: Any, start: int, end: int) -> dict[str, Any]:
    """The launch description of one CUDA module (a ``CudaArtifact``) whose source is ``kernels.cu[start:end]``."""
    func = artifact.func
    where = f"kernel module {func.name}"
    if func.size_vars:
        raise ExportError(f"{where}: symbolic sizes {[v.name for v in func.size_vars]}; only static shapes export")
    buffers = list(func.params) + list(artifact.temporaries)
    index = {id(b): k for k, b in enumerate(buffers)}
    kernels = []
    for kernel in artifact.kernels:
        grid = [const_int_value(e) for e in kernel.launch.grid]
        if any(g is None for g in grid) or kernel.size_vars:
            raise ExportError(f"{where}: kernel {kernel.name} has a symbolic grid; only static shapes export")
        kernels.append({"name": kernel.name, "args": [index[id(b)] for b in kernel.params], "grid": grid,
                        "block": list(kernel.launch.block), "shared_bytes": kernel.shared_bytes,
                        "synchronizes": kernel.synchronizes, "local_bytes": kernel.local_bytes,
                        "dynamic_shared_bytes": kernel.dynamic_shared_bytes})
    return {"params": [_buffer_json(b, where) for b in func.params],
            "temporaries": [_buffer_json(b, where) for b in artifact.temporaries],
            "kernels": kernels, "source": [start, end]}


def export_cuda_modules(modules: Sequence[Any], folder: Path) -> None:
    """Write ``kernels.cu`` for ``modules`` (CUDA modules, one per graph kernel, repeats allowed): their sources,
    then their launch descriptions by module name on the last line."""
    sources: list[str] = []
    described: dict[str, Any] = {}
    offset = 0
    for module in modules:
        artifact = module.artifact
        name = artifact.func.name
        if name in described:
            continue
        text = artifact.source.rstrip("\n") + "\n\n"
        described[name] = module_json(artifact, offset, offset + len(text))
        sources.append(text)
        offset += len(text)
    sources.append(LAUNCH_MARKER + json.dumps(described, separators=(",", ":")) + "\n")
    (folder / SOURCE).write_text("".join(sources))


def read_cuda_source(path: Path) -> tuple[str, dict[str, Any]]:
    """The text of ``kernels.cu`` at ``path`` (a regular file checked by the caller) and its launch descriptions."""
    with open(path, "rb") as handle:
        raw = handle.read(MAX_SOURCE_BYTES + 1)
    if len(raw) > MAX_SOURCE_BYTES:
        raise ExportError(f"{SOURCE} is larger than {MAX_SOURCE_BYTES} bytes")
    text = raw.decode("utf-8", errors="replace")
    start = text.rfind("\n" + LAUNCH_MARKER)
    if start < 0:
        raise ExportError(f"{SOURCE} has no launch descriptions (written by an older tcomp? export the model again)")
    try:
        described = as_object(parse_json(text[start + 1 + len(LAUNCH_MARKER):], MAX_DESCRIPTION_DEPTH),
                              "the launch descriptions")
    except JSONValueError as exc:
        raise ExportError(f"{SOURCE}: {exc}") from None
    return text[: start + 1], described


def _buffer(value: Any) -> Buffer:
    fields = as_object(value, "a buffer")
    shape = tuple(const(as_int(d, "a dimension", 0, 2**48), "int64") for d in as_list(fields["shape"], "shape", 32))
    return Buffer(as_str(fields["name"], "buffer name", 1000), shape, known_dtype(fields["dtype"]))


def artifact_from_json(name: str, value: dict[str, Any], source: str, target: Target) -> CudaArtifact:
    """The ``CudaArtifact`` a module description stands for (no loop IR: the function has an empty body)."""
    params = tuple(_buffer(p) for p in value["params"])
    temporaries = tuple(_buffer(t) for t in value["temporaries"])
    buffers = params + temporaries
    kernels = []
    for kernel in value["kernels"]:
        args = [int(a) for a in kernel["args"]]
        if any(not 0 <= a < len(buffers) for a in args):
            raise ExportError(f"kernel {kernel['name']} of module {name} takes a buffer the module does not have")
        grid = tuple(const(as_int(g, "grid", 1, MAX_GRID), "int64") for g in as_list(kernel["grid"], "grid", 3))
        block = tuple(as_int(b, "block", 1, MAX_BLOCK) for b in as_list(kernel["block"], "block", 3))
        if len(grid) != 3 or len(block) != 3:
            raise ExportError(f"kernel {kernel['name']} of module {name}: grid and block need 3 dimensions")
        if block[0] * block[1] * block[2] > MAX_BLOCK:
            raise ExportError(f"kernel {kernel['name']} of module {name}: a block of {block} threads is too large")
        launch = LaunchDims((grid[0], grid[1], grid[2]), (block[0], block[1], block[2]))
        kernels.append(KernelInfo(as_str(kernel["name"], "kernel name", 1000), tuple(buffers[a] for a in args), (),
                                  launch, as_int(kernel["shared_bytes"], "shared bytes", 0, MAX_SHARED_BYTES),
                                  kernel["synchronizes"] is True,
                                  as_int(kernel["local_bytes"], "local bytes", 0, MAX_LOCAL_BYTES),
                                  as_int(kernel["dynamic_shared_bytes"], "dynamic shared bytes", 0, MAX_SHARED_BYTES)))
    func = PrimFunc(name, params, NoOp())
    return CudaArtifact(func, target, source, tuple(kernels), temporaries, ())


def module_signature(value: Any) -> dict[str, Any]:
    """What a module's launch description says of its parameters, in the form the graph's loader checks against
    ``graph.json`` (a CUDA module reports no failed checks)."""
    params = value.get("params") if isinstance(value, dict) else None
    return {"params": [[p.get("dtype"), p.get("shape")] if isinstance(p, dict) else p
                       for p in (params if isinstance(params, list) else [])],
            "asserts": [], "error_slots": 1}


def load_cuda_artifacts(text: str, described: dict[str, Any], target: Target) -> dict[str, CudaArtifact]:
    """The artifact of every module of ``described`` (the launch descriptions of ``kernels.cu``), its source from
    ``text``, by module name."""
    artifacts = {}
    for name, value in described.items():
        try:
            start, end = (as_int(v, "source range") for v in as_list(value["source"], "source", 2))
            if not 0 <= start < end <= len(text):
                raise ExportError(f"module {name}: its source range {start}:{end} is outside {SOURCE}")
            artifacts[name] = artifact_from_json(name, value, text[start:end], target)
        except (KeyError, TypeError, ValueError) as exc:
            raise ExportError(f"the description of module {name} in {SOURCE} is inconsistent: "
                              f"{type(exc).__name__}: {exc}") from None
    return artifacts
