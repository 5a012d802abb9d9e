"""An exported folder's data is checked against its code before use: what once crashed the interpreter (libc
functions called as kernels, a storage shrunk below what a kernel writes, a float16 parameter read as float32) or
read without end (``graph.json`` pointing at ``/dev/zero``, nested 100,000 deep) is a ``GraphError`` now.

The cases that crashed run in a child process, which must report the error and exit normally.
"""

from __future__ import annotations

import ctypes
import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import tcomp.graph as tg
from tcomp.graph import load
from tcomp.runtime.library import LibraryError, library_data, library_function, load_library

ROOT = Path(__file__).resolve().parents[2]
W = np.arange(24, dtype=np.float32).reshape(4, 6) / 10


def model() -> onnx.ModelProto:
    # a power with varying exponents is computed by libm's powf: kernels.so depends on libm and, through it, libc
    nodes = [helper.make_node("MatMul", ["x", "w"], ["m"]), helper.make_node("Relu", ["m"], ["r"]),
             helper.make_node("Pow", ["r", "r"], ["p"]), helper.make_node("Softmax", ["p"], ["y"], axis=1)]
    graph = helper.make_graph(nodes, "checked", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [8, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [8, 6])],
                              [numpy_helper.from_array(W, "w")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


X = np.random.default_rng(0).standard_normal((8, 4)).astype(np.float32)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("exported") / "model"
    tg.compile(model()).export(str(folder))
    return folder


@pytest.fixture
def folder(exported: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "model"
    shutil.copytree(exported, copy)
    return copy


def edit_graph(folder: Path, edit: Any) -> None:
    document = json.loads((folder / "graph.json").read_text())
    edit(document)
    (folder / "graph.json").write_text(json.dumps(document))


_LOAD_AND_RUN = """
import sys, numpy as np
import tcomp.graph as tg
for folder in sys.argv[1:]:
    try:
        executor = tg.load_executor(folder)
        executor.run([np.ones((8, 4), np.float32)])
        print("ran", flush=True)
    except tg.GraphError as error:
        print("GraphError:", error, flush=True)
"""


def load_in_child(folders: list[Path]) -> list[str]:
    """Load and run each folder in one child process; its report per folder."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    child = subprocess.run([sys.executable, "-c", _LOAD_AND_RUN, *map(str, folders)], env=env,
                           capture_output=True, text=True, timeout=120)
    assert child.returncode == 0, f"the child died ({child.returncode}): {child.stdout[-500:]} {child.stderr[-2000:]}"
    return child.stdout.strip().splitlines()


def test_an_intact_folder_loads_and_runs(exported: Path) -> None:
    [want] = tg.compile(model()).run([X])
    [got] = tg.load_executor(str(exported)).run([X])
    np.testing.assert_array_equal(got, want)


def _libc_entry(entry: str) -> Any:
    def edit(document: dict[str, Any]) -> None:
        document["kernels"][0]["entry"] = entry

    return edit


def _shrunk_storage(document: dict[str, Any]) -> None:
    """The storage of the matmul's output shrunk to 16 bytes, its type to 4 elements: the kernel writes 192."""
    value = document["kernels"][0]["args"][-1]
    document["types"][value]["shape"] = [2, 2]
    document["storage_bytes"][document["storage_of"][value]] = 16


def _float16_params(folder: Path) -> None:
    np.savez(folder / "params.npz", **{k: v.astype(np.float16) for k, v in _params(folder).items()})


def test_folders_that_crashed_the_loader_are_refused(exported: Path, tmp_path: Path) -> None:
    """libc functions as kernel entries (``abort`` killed the process), a storage shrunk with its value's type
    (a heap overflow) and float16 parameters read as float32 (out of bounds): one child process loads them all."""
    cases: list[tuple[Path, str]] = []
    for entry in ("abort", "exit", "system", "puts"):
        folder = tmp_path / entry
        shutil.copytree(exported, folder)
        edit_graph(folder, _libc_entry(entry))
        cases.append((folder, f"kernel {entry!r} is not one the compiler wrote into kernels.so"))
    shutil.copytree(exported, tmp_path / "shrunk")
    edit_graph(tmp_path / "shrunk", _shrunk_storage)
    cases.append((tmp_path / "shrunk", "the kernel's parameter is float32[8, 6]"))
    shutil.copytree(exported, tmp_path / "float16")
    name, shape = _first_param(exported)
    _float16_params(tmp_path / "float16")
    cases.append((tmp_path / "float16", f"parameter {name!r} is stored as float16{shape}; its type is float32{shape}"))
    reports = load_in_child([folder for folder, _ in cases])
    assert len(reports) == len(cases)
    for (folder, message), report in zip(cases, reports):
        assert report.startswith(f"GraphError: compiled model {str(folder)!r}") and message in report, report


def test_symbols_are_looked_up_in_the_library_alone(exported: Path) -> None:
    library = load_library(exported / "kernels.so")
    for name in ("abort", "system", "malloc"):
        assert hasattr(library, name)  # dlsym finds them in libc, a dependency
        with pytest.raises(LibraryError, match=f"does not define kernel {name!r}"):
            library_function(library, name)
    with pytest.raises(LibraryError, match="has no kernel 'no_such_symbol'"):
        library_function(library, "no_such_symbol")
    assert json.loads(library_data(library, "tcomp_kernels", 1 << 20))["format"] == "tcomp.kernels.v1"
    address = library_function(library, tg.load_executor(str(exported)).program.kernels[0].entry)
    assert address == ctypes.cast(getattr(library, tg.load_executor(str(exported)).program.kernels[0].entry),
                                  ctypes.c_void_p).value


def test_a_value_retyped_is_refused(folder: Path) -> None:
    def edit(document: dict[str, Any]) -> None:
        document["types"][document["kernels"][0]["args"][-1]]["dtype"] = "float16"

    edit_graph(folder, edit)
    with pytest.raises(tg.GraphError, match=r"of type float16\[8, 6\]; the kernel's parameter is float32\[8, 6\]"):
        tg.load_executor(str(folder))


def test_a_kernel_given_another_number_of_arguments_is_refused(folder: Path) -> None:
    def edit(document: dict[str, Any]) -> None:
        document["kernels"][0]["args"] = document["kernels"][0]["args"][:-1]
        document["kernels"][0]["num_inputs"] = 1

    edit_graph(folder, edit)
    with pytest.raises(tg.GraphError, match="the kernel takes 3 arguments, graph.json passes 2"):
        tg.load_executor(str(folder))


def _params(folder: Path) -> dict[str, np.ndarray]:
    with np.load(folder / "params.npz") as archive:
        return {k: archive[k] for k in archive.files}


def _first_param(folder: Path) -> tuple[str, list[int]]:
    """The name (as ``graph.json`` lists it) and shape of the folder's first parameter: the compiler may have
    replaced the model's weight by a packed copy."""
    name = json.loads((folder / "graph.json").read_text())["params"][0]
    return name, list(next(iter(_params(folder).values())).shape)


def test_a_big_endian_or_reshaped_parameter_is_refused(folder: Path) -> None:
    params = _params(folder)
    _, shape = _first_param(folder)
    np.savez(folder / "params.npz", **{k: v.astype(">f4") for k, v in params.items()})
    big_endian = f"stored as >f4 (big-endian){shape}; its type is float32{shape}"
    with pytest.raises(tg.GraphError, match=re.escape(big_endian)):
        tg.load_executor(str(folder))
    np.savez(folder / "params.npz", **{k: v.reshape(-1, 1) for k, v in params.items()})
    with pytest.raises(tg.GraphError, match=re.escape(f"stored as float32[{math.prod(shape)}, 1]")):
        tg.load_executor(str(folder))
    np.savez(folder / "params.npz", **{k: np.asfortranarray(v) for k, v in params.items()})
    with pytest.raises(tg.GraphError, match="in Fortran order"):
        tg.load_executor(str(folder))
    np.savez(folder / "params.npz", **{k: np.zeros(1 << 20, np.float32) for k in params})
    with pytest.raises(tg.GraphError, match="params.npz is larger than its parameters need"):
        tg.load_executor(str(folder))
    (folder / "params.npz").write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(tg.GraphError, match="params.npz cannot be read"):
        tg.load_executor(str(folder))


@pytest.mark.parametrize("name", ["kernels.so", "params.npz", "graph.json"])
def test_links_that_leave_the_folder_are_refused(folder: Path, tmp_path: Path, name: str) -> None:
    outside = tmp_path / f"outside_{name}"
    shutil.move(folder / name, outside)
    os.symlink(outside, folder / name)
    with pytest.raises(tg.GraphError, match=f"{name} is a link to .*, outside the folder"):
        tg.load_executor(str(folder))
    os.unlink(folder / name)
    os.symlink(f"inside_{name}", folder / name)  # a link to a file of the folder is fine
    shutil.move(outside, folder / f"inside_{name}")
    tg.load_executor(str(folder)).run([X])


def test_files_that_are_not_regular_are_refused(folder: Path) -> None:
    (folder / "graph.json").unlink()
    os.symlink("/dev/zero", folder / "graph.json")
    with pytest.raises(tg.GraphError, match="outside the folder"):
        tg.load_executor(str(folder))
    (folder / "graph.json").unlink()
    os.mkfifo(folder / "graph.json")
    with pytest.raises(tg.GraphError, match="graph.json is not a regular file"):
        tg.load_executor(str(folder))
    (folder / "graph.json").unlink()
    (folder / "graph.json").mkdir()
    with pytest.raises(tg.GraphError, match="graph.json is not a regular file"):
        tg.load_executor(str(folder))


def test_graph_json_is_bounded(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = (folder / "graph.json").read_text()
    (folder / "graph.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(tg.GraphError, match="nested too deeply"):
        tg.load_executor(str(folder))
    document = json.loads(text)
    document["stats"] = {"a": json.loads("[" * 20 + "]" * 20)}
    (folder / "graph.json").write_text(json.dumps(document))
    with pytest.raises(tg.GraphError, match="nested deeper than 16"):
        tg.load_executor(str(folder))
    (folder / "graph.json").write_text(text)
    monkeypatch.setattr(load, "MAX_GRAPH_BYTES", len(text) - 1)
    with pytest.raises(tg.GraphError, match="graph.json is larger than"):
        tg.load_executor(str(folder))


@pytest.mark.parametrize("edit, message", [
    (lambda d: d["types"].__setitem__("x", {"shape": [8, -4], "dtype": "float32"}), "outside"),
    (lambda d: d["types"].__setitem__("x", {"shape": [8, 4], "dtype": "object"}), "unknown tensor dtype"),
    (lambda d: d["types"].__setitem__("x", {"shape": [2**40, 2**40], "dtype": "float32"}), "too large"),
    (lambda d: d.__setitem__("storage_bytes", [1] * len(d["storage_bytes"])), "does not fit its storage"),
    (lambda d: d["storage_of"].__setitem__("x", 10**6), "outside"),
    (lambda d: d.__setitem__("kernels", {"a": 1}), "expected a JSON list"),
    (lambda d: d["kernels"][0]["args"].__setitem__(0, "nope"), "which has no storage"),
    (lambda d: d["kernels"][0].__setitem__("num_inputs", 99), "outside"),
    (lambda d: d.__setitem__("inputs", d["params"][:1]), "has no storage of its own"),
    (lambda d: d.__setitem__("params", d["params"][:1] * 2), "lists a parameter twice"),
    (lambda d: d.__setitem__("format", "tcomp.graph.v1"), "format: tcomp.graph.v1"),
    (lambda d: d.__setitem__("name", 5), "expected a string"),
    (lambda d: d.__setitem__("target", "llvm -mcpu=nosuchcpu"), "target"),
])
def test_edited_graph_json_is_refused(folder: Path, edit: Any, message: str) -> None:
    edit_graph(folder, edit)
    with pytest.raises(tg.GraphError, match=message):
        tg.load_executor(str(folder))


def test_a_library_without_a_kernel_list_is_refused(folder: Path) -> None:
    from tcomp.runtime.library import export_library

    executor = tg.compile(model())
    assert executor.modules is not None
    modules = {m.artifact.entry_name: m for m in executor.modules}
    export_library([m.artifact for m in modules.values()], folder / "kernels.so",
                   executor.modules[0].artifact.target)
    with pytest.raises(tg.GraphError, match="kernels.so lists no kernels .* older tcomp"):
        tg.load_executor(str(folder))


def test_a_replaced_library_at_a_loaded_path_is_refused(exported: Path, tmp_path: Path) -> None:
    """dlopen hands back the library already loaded under a name: the file replaced since would not run."""
    folder = tmp_path / "model"
    shutil.copytree(exported, folder)
    tg.load_executor(str(folder)).run([X])
    shutil.rmtree(folder)
    shutil.copytree(exported, folder)  # the same code, in a new file at the same path
    with pytest.raises(tg.GraphError, match="an earlier library at .* is still loaded in this process"):
        tg.load_executor(str(folder))
