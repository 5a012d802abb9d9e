"""Exporting a model compiled for ``target="cuda"`` and loading it back without compiling anything but the CUDA C.

The folder holds ``graph.json`` and ``params.npz`` as for CPU targets (``export.py``), and instead of
``kernels.so``:

- ``kernels.cu``: the CUDA C of every distinct kernel module, one after the other (each module's helpers are
  guarded, so the file compiles as one translation unit: ``nvcc -ptx kernels.cu``);
- in ``graph.json``, under ``"cuda"``, how to launch each module: its parameters (name, shape, dtype), the global
  temporaries the host allocates, and per kernel its symbol, which parameters and temporaries it takes, its grid
  and block, its static shared memory and whether it synchronizes; plus where its source starts and ends in
  ``kernels.cu``.

Models have static shapes, so grids are plain numbers (a module with symbolic sizes is refused). Loading rebuilds
each module's launch description and compiles its source for the GPU (NVRTC through CuPy) or, without one, for the
CPU emulation; the JSON is checked (every kernel argument exists, every source range lies in ``kernels.cu``) first.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tcomp.graph.ir import GraphError
from tcomp.ir.buffer import Buffer
from tcomp.ir.expr import const, const_int_value
from tcomp.ir.stmt import NoOp, PrimFunc
from tcomp.target import Target

SOURCE = "kernels.cu"


def _buffer_json(buffer: Buffer, where: str) -> dict[str, Any]:
    shape = [const_int_value(d) for d in buffer.shape]
    if any(d is None for d in shape) or buffer.strides is not None:
        raise GraphError(f"{where}: buffer {buffer.name} has a symbolic shape or strides; only static shapes export")
    return {"name": buffer.name, "shape": shape, "dtype": buffer.dtype}


def module_json(artifact: Any, start: int, end: int) -> dict[str, Any]:
    """The launch description of one CUDA module (a ``CudaArtifact``) whose source is ``kernels.cu[start:end]``."""
    func = artifact.func
    where = f"kernel module {func.name}"
    if func.size_vars:
        raise GraphError(f"{where}: symbolic sizes {[v.name for v in func.size_vars]}; only static shapes export")
    buffers = list(func.params) + list(artifact.temporaries)
    index = {id(b): k for k, b in enumerate(buffers)}
    kernels = []
    for kernel in artifact.kernels:
        grid = [const_int_value(e) for e in kernel.launch.grid]
        if any(g is None for g in grid) or kernel.size_vars:
            raise GraphError(f"{where}: kernel {kernel.name} has a symbolic grid; only static shapes export")
        kernels.append({"name": kernel.name, "args": [index[id(b)] for b in kernel.params], "grid": grid,
                        "block": list(kernel.launch.block), "shared_bytes": kernel.shared_bytes,
                        "uses_barrier": kernel.uses_barrier})
    return {"params": [_buffer_json(b, where) for b in func.params],
            "temporaries": [_buffer_json(b, where) for b in artifact.temporaries],
            "kernels": kernels, "source": [start, end]}


def export_cuda_modules(modules: list[Any], folder: Path) -> dict[str, Any]:
    """Write ``kernels.cu`` for ``modules`` (CUDA modules, one per graph kernel, repeats allowed) and return the
    ``"cuda"`` entry of ``graph.json``: launch descriptions by module name."""
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
    (folder / SOURCE).write_text("".join(sources))
    return described


def _buffer(value: dict[str, Any]) -> Buffer:
    return Buffer(str(value["name"]), tuple(const(int(d), "int64") for d in value["shape"]), str(value["dtype"]))


def artifact_from_json(name: str, value: dict[str, Any], source: str, target: Target) -> Any:
    """The ``CudaArtifact`` a module description stands for (no loop IR: the function has an empty body)."""
    from tcomp.runtime.cuda_artifact import CudaArtifact, KernelInfo
    from tcomp.transform.bind_threads import LaunchDims

    params = tuple(_buffer(p) for p in value["params"])
    temporaries = tuple(_buffer(t) for t in value["temporaries"])
    buffers = params + temporaries
    kernels = []
    for kernel in value["kernels"]:
        args = [int(a) for a in kernel["args"]]
        if any(not 0 <= a < len(buffers) for a in args):
            raise GraphError(f"kernel {kernel['name']} of module {name} takes a buffer the module does not have")
        grid = tuple(const(int(g), "int64") for g in kernel["grid"])
        block = tuple(int(b) for b in kernel["block"])
        if len(grid) != 3 or len(block) != 3:
            raise GraphError(f"kernel {kernel['name']} of module {name}: grid and block need 3 dimensions")
        launch = LaunchDims((grid[0], grid[1], grid[2]), (block[0], block[1], block[2]))
        kernels.append(KernelInfo(str(kernel["name"]), tuple(buffers[a] for a in args), (), launch,
                                  int(kernel["shared_bytes"]), bool(kernel["uses_barrier"])))
    func = PrimFunc(name, params, NoOp())
    return CudaArtifact(func, target, source, tuple(kernels), temporaries, ())


def load_cuda_modules(folder: Path, described: dict[str, Any], target: Target) -> dict[str, Any]:
    """Compile every module of ``described`` (``graph.json``'s ``"cuda"`` entry) from ``kernels.cu``: module
    objects by name, on the GPU when there is one, else emulated."""
    from tcomp.codegen.cuda.build import make_module

    try:
        text = (folder / SOURCE).read_text()
    except FileNotFoundError:
        raise GraphError(f"compiled model {str(folder)!r}: {SOURCE} is missing") from None
    modules = {}
    for name, value in described.items():
        try:
            start, end = (int(v) for v in value["source"])
            if not 0 <= start < end <= len(text):
                raise GraphError(f"module {name}: its source range {start}:{end} is outside {SOURCE}")
            artifact = artifact_from_json(name, value, text[start:end], target)
        except (KeyError, TypeError, ValueError) as exc:
            raise GraphError(f"compiled model {str(folder)!r}: the description of module {name} is "
                             f"inconsistent: {exc!r}") from None
        modules[name] = make_module(artifact)
    return modules
