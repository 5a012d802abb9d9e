"""A single compiled kernel exported as a shared library with a description of its signature, and loaded back.

``write_kernel(func, artifact, path)`` writes ``path`` (the ``.so``: the kernel's entry function, linked by
``library.export_library``) and, beside it, ``path`` with the suffix ``.json``: the signature description::

    {"format": "tcomp-kernel/1", "name": "add", "entry": "add_3f2a...", "target": "llvm -mcpu=znver3 ...",
     "params": [{"name": "A", "dtype": "float32", "shape": ["n"], "written": false}, ...],
     "size_vars": [{"name": "n", "dtype": "int32"}], "may_alias": [],
     "asserts": [["message {}", 1], ...], "library": "add.so", "library_sha256": "..."}

A dimension is an integer, a size variable's name, or ``[op, a, b]`` with ``op`` one of ``+ - * // % min max``.

``read_kernel(path)`` takes the library or its description (what ``write_kernel`` returns; its ``library`` field
names the library's file beside it, a bare file name) and checks the description before the library is opened:
the format, every field's type and bounds, dtypes tcomp knows, dimensions over declared size variables only, each
size variable bound by a dimension of its own, the target string (``Target`` checks it against LLVM), and the
library's SHA-256 against the one recorded (a description cannot pair with another library). It returns a
parameter-only ``PrimFunc`` (the argument checks) and a ``LibraryArtifact`` whose entry is the library's function.
Opening a shared library runs its initializers: load only libraries you trust, as with any native code.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tcomp.ir import dtype as dt
from tcomp.ir import expr as E
from tcomp.ir import stmt as S
from tcomp.ir.buffer import Buffer
from tcomp.runtime.args import ArgumentChecker, written_params
from tcomp.runtime.artifact import AssertInfo, LLVMArtifact
from tcomp.runtime.library import LibraryError, export_library, library_function, load_library
from tcomp.target import Target, TargetError, TargetKind

FORMAT = "tcomp-kernel/1"
MAX_DESCRIPTION_BYTES = 1 << 20
MAX_DIM_DEPTH = 16

_OPS: dict[str, type[E.BinaryOp]] = {"+": E.Add, "-": E.Sub, "*": E.Mul, "//": E.FloorDiv, "%": E.FloorMod,
                                      "min": E.Min, "max": E.Max}
_OP_NAMES = {cls: name for name, cls in _OPS.items()}


class KernelLibraryError(LibraryError):
    """An exported kernel that cannot be written or loaded (its description or library is wrong or missing)."""


def description_path(path: str | os.PathLike[str]) -> Path:
    """Where the description of the library at ``path`` lives: the same name with the suffix ``.json``."""
    return Path(path).with_suffix(".json")


def _dim_to_json(extent: E.Expr, where: str) -> Any:
    if isinstance(extent, E.IntImm):
        return extent.value
    if isinstance(extent, E.Var):
        return extent.name
    op = _OP_NAMES.get(type(extent))
    if op is not None and isinstance(extent, E.BinaryOp):
        return [op, _dim_to_json(extent.a, where), _dim_to_json(extent.b, where)]
    raise KernelLibraryError(f"{where}: dimension {extent} cannot be described (only integers, size variables and "
                             f"{', '.join(_OPS)})")


def describe(func: S.PrimFunc, artifact: LLVMArtifact, library_sha256: str) -> dict[str, Any]:
    """The description of ``func`` compiled as ``artifact`` (see the module docstring)."""
    written = written_params(func)
    params = [{"name": b.name, "dtype": b.dtype,
               "shape": [_dim_to_json(d, f"{func.name}: parameter {b.name}") for d in b.shape],
               "written": k in written} for k, b in enumerate(func.params)]
    return {
        "format": FORMAT,
        "name": func.name,
        "entry": artifact.entry_name,
        "target": str(artifact.target),
        "params": params,
        "size_vars": [{"name": v.name, "dtype": v.dtype} for v in func.size_vars],
        "may_alias": sorted(int(i) for i in func.attr("may_alias", ())),
        "asserts": [[a.message, a.num_values] for a in artifact.asserts],
        "uses_threads": artifact.uses_threads,
        "library_sha256": library_sha256,
    }


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_kernel(func: S.PrimFunc, artifact: LLVMArtifact, path: str | os.PathLike[str]) -> Path:
    """Write the library to ``path`` and its description beside it; returns the description's path."""
    library = Path(path)
    if library.suffix == ".json":
        raise KernelLibraryError(f"{library}: the library needs a suffix other than .json (its description's)")
    problem = _unbound(func)
    if problem:
        raise KernelLibraryError(f"{func.name} cannot be exported: {problem}")
    description = describe(func, artifact, "")  # fails on an indescribable signature before anything is written
    export_library([artifact], library, artifact.target)
    description["library"] = library.name
    description["library_sha256"] = _sha256(library)
    target = description_path(library)
    target.write_text(json.dumps(description, indent=1) + "\n")
    return target


# ------------------------------------------------------------------------------------------------------ loading
def _fail(path: Path, reason: str) -> KernelLibraryError:
    return KernelLibraryError(f"{path}: {reason}")


def _field(document: dict[str, Any], name: str, kind: type | tuple[type, ...], path: Path) -> Any:
    value = document.get(name)
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise _fail(path, f"field {name!r} is missing or not a {getattr(kind, '__name__', kind)}")
    return value


def _dtype(value: Any, where: str, path: Path) -> str:
    if not isinstance(value, str):
        raise _fail(path, f"{where}: dtype must be a string")
    try:
        dt.to_numpy(value)
    except (ValueError, KeyError, TypeError):
        raise _fail(path, f"{where}: unknown dtype {value!r}") from None
    return value


def _dim_from_json(value: Any, size_vars: dict[str, E.Var], where: str, path: Path, depth: int = 0) -> E.Expr:
    if depth > MAX_DIM_DEPTH:
        raise _fail(path, f"{where}: dimension nested too deeply")
    if isinstance(value, int) and not isinstance(value, bool):
        if not 0 <= value < 1 << 62:
            raise _fail(path, f"{where}: dimension {value} out of range")
        return E.IntImm(value, "int64")
    if isinstance(value, str):
        if value not in size_vars:
            raise _fail(path, f"{where}: dimension {value!r} is no declared size variable")
        return size_vars[value]
    if isinstance(value, list) and len(value) == 3 and value[0] in _OPS:
        a = _dim_from_json(value[1], size_vars, where, path, depth + 1)
        b = _dim_from_json(value[2], size_vars, where, path, depth + 1)
        return _OPS[value[0]](a, b, "int64")
    raise _fail(path, f"{where}: cannot read dimension {str(value)[:60]!r}")


def _signature(document: dict[str, Any], path: Path) -> S.PrimFunc:
    name = _field(document, "name", str, path)
    size_vars: dict[str, E.Var] = {}
    for k, item in enumerate(_field(document, "size_vars", list, path)):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) or item["name"] in size_vars:
            raise _fail(path, f"size variable {k}: expected a unique name and a dtype")
        size_vars[item["name"]] = E.Var(item["name"], _dtype(item.get("dtype"), f"size variable {k}", path))
    buffers, written = [], []
    for k, item in enumerate(_field(document, "params", list, path)):
        where = f"parameter {k}"
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not isinstance(item.get("shape"),
                                                                                                 list):
            raise _fail(path, f"{where}: expected a name, a dtype and a shape")
        shape = tuple(_dim_from_json(d, size_vars, where, path) for d in item["shape"])
        buffers.append(Buffer(item["name"], shape, _dtype(item.get("dtype"), where, path)))
        if item.get("written") is True:
            written.append(k)
    may_alias = _field(document, "may_alias", list, path)
    if not all(isinstance(i, int) and 0 <= i < len(buffers) for i in may_alias):
        raise _fail(path, "field 'may_alias' must list parameter positions")
    func = S.PrimFunc(name, tuple(buffers), S.Evaluate(E.IntImm(0)), tuple(size_vars.values()),
                      (("output_buffers", tuple(written)), ("may_alias", tuple(may_alias))))
    problem = _unbound(func)
    if problem:
        raise _fail(path, problem)
    return func


def _unbound(func: S.PrimFunc) -> str | None:
    """Why ``func``'s shapes do not bind its size variables (the shapes are all a loaded kernel knows of its sizes:
    each variable must be a dimension alone or plus a constant), else None."""
    unbound = [func.size_vars[k].name for k in ArgumentChecker(func).unbound]
    if not unbound:
        return None
    return f"size variable(s) {', '.join(unbound)} appear in no parameter shape alone or plus a constant"


@dataclass
class LibraryArtifact:
    """The artifact of a kernel loaded from an exported library: the entry's address and the checks' messages;
    no source (it was not kept)."""

    func_name: str
    entry_name: str
    target: Target
    asserts: tuple[AssertInfo, ...]
    uses_threads: bool
    library_path: Path
    _address: int = 0
    _library: Any = field(default=None, repr=False)

    has_source = False

    @property
    def error_slots(self) -> int:
        return 1 + max((a.num_values for a in self.asserts), default=0)

    def function_address(self) -> int:
        if self._address == 0:
            self._library = load_library(self.library_path)
            self._address = library_function(self._library, self.entry_name)
        return self._address


def _asserts(document: dict[str, Any], path: Path) -> tuple[AssertInfo, ...]:
    result = []
    for k, item in enumerate(_field(document, "asserts", list, path)):
        if not (isinstance(item, list) and len(item) == 2 and isinstance(item[0], str)
                and isinstance(item[1], int) and not isinstance(item[1], bool) and 0 <= item[1] <= 64):
            raise _fail(path, f"assert {k}: expected [message, number of values]")
        result.append(AssertInfo(k + 1, item[0], item[1]))
    return tuple(result)


def _read_description(description: Path) -> Any:
    """The JSON document of the description at ``description`` (its size bounded)."""
    if description.stat().st_size > MAX_DESCRIPTION_BYTES:
        raise _fail(description, "the description is too large")
    try:
        return json.loads(description.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise _fail(description, f"not JSON: {exc}") from None


def _described_library(description: Path) -> Path:
    """The library that the description at ``description`` names: a file beside it, never a path elsewhere."""
    if not description.is_file():
        raise _fail(description, "no such description")
    document = _read_description(description)
    name = document.get("library") if isinstance(document, dict) else None
    if not isinstance(name, str):
        raise _fail(description, "it names no library: load the library itself (the file beside it)")
    if name in ("", ".", "..") or Path(name).name != name or "\\" in name or Path(name).suffix == ".json":
        raise _fail(description, f"library {name!r}: expected the file name of a library beside the description")
    return description.with_name(name)


def read_kernel(path: str | os.PathLike[str]) -> tuple[S.PrimFunc, LibraryArtifact]:
    """The checked signature and the artifact of the library at ``path`` (see the module docstring)."""
    library = Path(path)
    if library.suffix == ".json":  # the description: the library is the file it names beside it
        library = _described_library(library)
    description = description_path(library)
    if not library.is_file():
        raise _fail(library, "no such library")
    if not description.is_file():
        raise _fail(library, f"its description {description.name} is missing (export_library writes both)")
    document = _read_description(description)
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise _fail(description, f"not a kernel description of format {FORMAT}")
    func = _signature(document, description)
    try:
        target = Target.parse(_field(document, "target", str, description))
    except TargetError as exc:
        raise _fail(description, f"target: {exc}") from None
    if target.kind is not TargetKind.LLVM:
        raise _fail(description, f"target kind {target.kind!r}: only CPU kernels are exported as libraries")
    if _sha256(library) != _field(document, "library_sha256", str, description):
        raise _fail(library, f"the library is not the one {description.name} describes (its SHA-256 differs)")
    artifact = LibraryArtifact(func.name, _field(document, "entry", str, description), target,
                               _asserts(document, description), document.get("uses_threads") is True, library)
    return func, artifact
