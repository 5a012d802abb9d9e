"""Loading a folder written by ``export.py``: the code is trusted, everything else is checked before use.

``load_executor(folder)`` (a ``GraphError`` naming the folder for anything wrong):

- files: ``graph.json``, ``params.npz``, ``kernels.so`` / ``kernels.cu`` must be regular files inside the folder (a
  symbolic link may point only to another file of the folder; ``/dev/zero``, a FIFO or a folder is refused), and
  what is read is bounded: ``graph.json`` at most ``MAX_GRAPH_BYTES`` and ``MAX_GRAPH_DEPTH`` deep, ``params.npz``
  at most the bytes its parameters' types need (plus the archive's overhead), each array's header read and checked
  before its data;
- ``graph.json``: every field has its type and bounds (names, known dtypes, non-negative dimensions, storages),
  every value a kernel, an input or an output names has a type and a storage or parameter large enough, every
  random state is a parameter of the state's type, and every parameter's array has exactly the dtype (byte order
  included) and shape of its type;
- kernels: every entry ``graph.json`` names must be one the compiler listed in the code (read by the target's
  backend: ``kernels.so``'s ``tcomp_kernels`` constant, looked up in ``kernels.so`` alone, never in the libraries it
  depends on, so ``system`` or ``abort`` of libc cannot be called; for ``cuda``, the launch descriptions in
  ``kernels.cu``); the values passed to a kernel must have exactly the dtypes and shapes of its parameters; the
  runtime checks' messages and the error area come from the code, not from ``graph.json``.

What it trusts, and must: ``kernels.so`` is native code (loading it runs its initializers) and ``kernels.cu`` is
compiled and run. Load folders only from someone you trust to run code on your machine.
"""

from __future__ import annotations

import math
import os
import stat
import zipfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from tcomp.backend import ExportError, backend_for
from tcomp.graph.cuda_executor import make_executor
from tcomp.graph.executor import ExecutorProgram, GraphExecutor, KernelSpec
from tcomp.graph.export import FORMAT, GRAPH, PARAMS, param_key, stored_dtype
from tcomp.graph.ir import GraphError, TensorType, known_dtype
from tcomp.graph.opdefs.random import STATE_TYPE
from tcomp.ir import dtype as dt
from tcomp.json_value import JSONValueError, as_int, as_list, as_object, as_str, parse_json
from tcomp.runtime.library import LibraryError
from tcomp.target import Target

MAX_GRAPH_BYTES = 64 << 20
MAX_GRAPH_DEPTH = 16
MAX_NAME = 4096
MAX_ITEMS = 1 << 20  # values, kernels, storages, parameters, arguments
MAX_DIMS = 32
MAX_TENSOR_BYTES = 1 << 48
MAX_ARRAY_HEADER = 1 << 16  # an .npy header, bounded as numpy bounds it
_ARCHIVE_SLACK = 1 << 20  # the zip directory and the .npy headers of params.npz


def _fail(folder: Path, reason: str) -> GraphError:
    return GraphError(f"compiled model {str(folder)!r}: {reason}")


def folder_file(folder: Path, name: str) -> Path:
    """``folder / name`` resolved, if it is a regular file inside ``folder``; else a ``GraphError``."""
    path = folder / name
    try:
        os.lstat(path)
    except FileNotFoundError:
        raise _fail(folder, f"{name} is missing (was the folder written by `tcomp compile`?)") from None
    root = folder.resolve()
    resolved = path.resolve()
    if resolved.parent != root and root not in resolved.parents:
        raise _fail(folder, f"{name} is a link to {str(resolved)!r}, outside the folder")
    try:
        info = os.stat(resolved)
    except OSError as exc:
        raise _fail(folder, f"{name} cannot be read: {exc.strerror}") from None
    if not stat.S_ISREG(info.st_mode):
        raise _fail(folder, f"{name} is not a regular file")
    return resolved


def _read_bounded(folder: Path, name: str, limit: int) -> bytes:
    path = folder_file(folder, name)
    with open(path, "rb") as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise _fail(folder, f"{name} is larger than {limit} bytes")
    return data


def read_document(folder: Path) -> dict[str, Any]:
    try:
        document = as_object(parse_json(_read_bounded(folder, GRAPH, MAX_GRAPH_BYTES), MAX_GRAPH_DEPTH), GRAPH)
    except JSONValueError as exc:
        raise _fail(folder, f"{GRAPH} is not valid JSON this tcomp reads: {exc}") from None
    if document.get("format") != FORMAT:
        found = document.get("format")
        found = found if isinstance(found, str) and len(found) < 40 else "none"
        raise _fail(folder, f"{GRAPH} is not a tcomp graph of format {FORMAT} (format: {found}); compile and "
                            "export the model again with this tcomp")
    return document


# ------------------------------------------------------------------------------------------------------ graph.json
def _name(value: Any, what: str) -> str:
    return as_str(value, what, MAX_NAME)


def _names(value: Any, what: str) -> tuple[str, ...]:
    return tuple(_name(v, what) for v in as_list(value, what, MAX_ITEMS))


def _type(value: Any, what: str) -> TensorType:
    fields = as_object(value, what)
    shape = tuple(as_int(d, f"{what}: dimension", 0, MAX_TENSOR_BYTES) for d in as_list(fields.get("shape"),
                                                                                         f"{what}: shape", MAX_DIMS))
    dtype = known_dtype(fields.get("dtype"))
    if math.prod(shape) * dt.storage_bytes(dtype) > MAX_TENSOR_BYTES:
        raise JSONValueError(f"{what}: a tensor of shape {shape} is too large")
    return TensorType(shape, dtype)


def _kernel(value: Any, k: int) -> KernelSpec:
    fields = as_object(value, f"kernel {k}")
    args = _names(fields.get("args"), f"kernel {k}: arguments")
    num_inputs = as_int(fields.get("num_inputs"), f"kernel {k}: number of inputs", 0, len(args))
    return KernelSpec(_name(fields.get("name"), f"kernel {k}: name"), _name(fields.get("entry"), f"kernel {k}: entry"),
                      args, num_inputs, (), 0)


def program_of(folder: Path, document: dict[str, Any]) -> ExecutorProgram:
    """The program ``graph.json`` describes, every field checked (parameters not read yet)."""
    try:
        types = {_name(k, "value name"): _type(v, f"type of {k!r}")
                 for k, v in as_object(document.get("types"), "types").items()}
        storage_bytes = tuple(as_int(v, "storage size", 0, MAX_TENSOR_BYTES)
                              for v in as_list(document.get("storage_bytes"), "storage sizes", MAX_ITEMS))
        storage_of = {_name(k, "value name"): as_int(v, f"storage of {k!r}", 0, max(0, len(storage_bytes) - 1))
                      for k, v in as_object(document.get("storage_of"), "storages").items()}
        offset_of = {_name(k, "value name"): as_int(v, f"offset of {k!r}", 0, MAX_TENSOR_BYTES)
                     for k, v in as_object(document.get("offset_of", {}), "offsets").items()}
        kernels = [_kernel(v, k) for k, v in enumerate(as_list(document.get("kernels"), "kernels", MAX_ITEMS))]
        stats = document.get("stats", {})
        program = ExecutorProgram(_name(document.get("name"), "name"), _names(document.get("inputs"), "inputs"),
                                  _names(document.get("outputs"), "outputs"), types, storage_of, storage_bytes, {},
                                  kernels, _name(document.get("target"), "target"),
                                  stats if isinstance(stats, dict) else {},
                                  _names(document.get("constants", []), "constants"), offset_of,
                                  _names(document.get("random_states", []), "random states"))
        param_names = _names(document.get("params"), "params")
    except (JSONValueError, GraphError) as exc:
        raise _fail(folder, f"{GRAPH} is inconsistent: {exc}") from None
    _check_program(folder, program, param_names)
    program.params = read_params(folder, [(name, program.types[name]) for name in param_names])
    return program


def _check_program(folder: Path, program: ExecutorProgram, param_names: tuple[str, ...]) -> None:
    if len(set(param_names)) != len(param_names):
        raise _fail(folder, f"{GRAPH} lists a parameter twice")
    for name in param_names:
        if name not in program.types:
            raise _fail(folder, f"parameter {name!r} has no type")
        if name in program.storage_of:
            raise _fail(folder, f"parameter {name!r} also has a storage")
    for name in program.random_states:
        if name not in param_names or program.types[name] != STATE_TYPE:
            raise _fail(folder, f"random state {name!r} is not a parameter of two uint64 elements")
    for name in program.offset_of:
        if name not in program.storage_of:
            raise _fail(folder, f"value {name!r} has an offset but no storage")
    for name, storage in program.storage_of.items():
        t = program.types.get(name)
        if t is None or program.storage_bytes[storage] < program.offset_of.get(name, 0) + t.nbytes:
            raise _fail(folder, f"value {name!r} has no type or does not fit its storage")
    readable = set(program.storage_of) | set(param_names)
    for spec in program.kernels:
        for arg in spec.args:
            if arg not in readable:
                raise _fail(folder, f"kernel {spec.entry} reads {arg!r}, which has no storage")
    for name in (*program.inputs, *program.outputs):
        if name not in readable:
            raise _fail(folder, f"input/output {name!r} has no storage")
    for name in program.inputs:
        if name not in program.storage_of:
            raise _fail(folder, f"input {name!r} has no storage of its own")


# ------------------------------------------------------------------------------------------------------ params.npz
def read_params(folder: Path, expected: list[tuple[str, TensorType]]) -> dict[str, np.ndarray]:
    """The parameters of ``params.npz``, each checked against its type (dtype with byte order, shape, C order)
    from its header before its data is read; the file may be no larger than the parameters need."""
    path = folder_file(folder, PARAMS)
    limit = sum(t.nbytes for _, t in expected) + _ARCHIVE_SLACK + len(expected) * MAX_ARRAY_HEADER
    if os.stat(path).st_size > limit:
        raise _fail(folder, f"{PARAMS} is larger than its parameters need ({limit} bytes)")
    params: dict[str, np.ndarray] = {}
    try:
        with zipfile.ZipFile(path) as archive:
            members = {info.filename: info for info in archive.infolist()}
            for index, (name, t) in enumerate(expected):
                info = members.get(param_key(index) + ".npy")
                if info is None:
                    raise _fail(folder, f"{PARAMS} has no array for parameter {name!r}")
                with archive.open(info) as member:
                    params[name] = _read_array(folder, member, name, t)
    except GraphError:
        raise  # a parameter's own check (dtype, shape, order) names it: not a file that cannot be read
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError, NotImplementedError) as exc:
        raise _fail(folder, f"{PARAMS} cannot be read: {type(exc).__name__}: {exc}") from None
    return params


def _read_array(folder: Path, member: Any, name: str, t: TensorType) -> np.ndarray:
    version = np.lib.format.read_magic(member)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(member, max_header_size=MAX_ARRAY_HEADER)
    elif version in ((2, 0), (3, 0)):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(member, max_header_size=MAX_ARRAY_HEADER)
    else:
        raise _fail(folder, f"parameter {name!r}: unknown .npy version {version}")
    expected = stored_dtype(np.dtype(dt.to_numpy(t.dtype)))
    if dtype != expected or tuple(shape) != t.shape or (fortran and len(shape) > 1):
        order = " (big-endian)" if dtype.byteorder == ">" else ""
        raise _fail(folder, f"parameter {name!r} is stored as {dtype}{order}{list(shape)}"
                            f"{' in Fortran order' if fortran else ''}; its type is {t}")
    array = np.empty(t.shape, dtype=expected)
    view = memoryview(array.reshape(-1).view(np.uint8))
    if member.readinto(view) != t.nbytes or member.read(1):
        raise _fail(folder, f"parameter {name!r}: the array's data does not have {t.nbytes} bytes")
    return array.view(dt.to_numpy(t.dtype))


# ------------------------------------------------------------------------------------------------------ kernels
def _checked_spec(folder: Path, program: ExecutorProgram, spec: KernelSpec, signature: Any, code: str) -> KernelSpec:
    """``spec`` with the runtime checks and error area of ``signature`` (from the code), once its arguments are
    the values of the dtypes and shapes the code expects."""
    try:
        fields = as_object(signature, f"kernel {spec.entry}")
        params = as_list(fields.get("params"), "parameters", MAX_ITEMS)
        if len(params) != len(spec.args):
            raise JSONValueError(f"the kernel takes {len(params)} arguments, {GRAPH} passes {len(spec.args)}")
        for position, (arg, param) in enumerate(zip(spec.args, params)):
            dtype, shape = as_list(param, "a parameter", 2)
            wanted = TensorType(tuple(as_int(d, "a dimension", 0) for d in as_list(shape, "a shape", MAX_DIMS)),
                                known_dtype(dtype))
            if program.types[arg] != wanted:
                raise JSONValueError(f"argument {position} is {arg!r} of type {program.types[arg]}; the kernel's "
                                     f"parameter is {wanted}")
        asserts = tuple((as_str(m, "a check's message", 10_000), as_int(n, "a check's values", 0, 64))
                        for m, n in (as_list(a, "a check", 2) for a in as_list(fields.get("asserts"), "checks",
                                                                              MAX_ITEMS)))
        error_slots = as_int(fields.get("error_slots"), "the error area", 1, 65)
    except (JSONValueError, GraphError) as exc:
        raise _fail(folder, f"kernel {spec.name} ({spec.entry}) does not match {code}: {exc}") from None
    return replace(spec, asserts=asserts, error_slots=error_slots)


def load_executor(folder: str | os.PathLike[str]) -> GraphExecutor:
    """An executor for a folder written by ``GraphExecutor.export`` (no compilation; for cuda, the CUDA C is
    compiled for the GPU or the emulation). See the module docstring for what is checked."""
    base = Path(folder)
    program = program_of(base, read_document(base))
    try:
        target = Target.parse(program.target)
    except ValueError as exc:
        raise _fail(base, f"unknown target {program.target!r}: {exc}") from None
    backend = backend_for(target)
    try:
        saved = backend.read_kernels(lambda name: folder_file(base, name), target)
    except (ExportError, LibraryError) as exc:
        raise _fail(base, str(exc)) from None
    kernels = []
    for spec in program.kernels:
        if spec.entry not in saved.signatures:
            raise _fail(base, f"kernel {spec.entry!r} is not one the compiler wrote into {saved.file}")
        kernels.append(_checked_spec(base, program, spec, saved.signatures[spec.entry], saved.file))
    program.kernels = kernels
    try:
        loaded = backend.load_kernels(saved, [spec.entry for spec in program.kernels], target)
    except (ExportError, LibraryError) as exc:
        raise _fail(base, str(exc)) from None
    return make_executor(program, loaded, compiled=False)
