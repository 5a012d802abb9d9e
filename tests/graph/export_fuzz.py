"""Fuzzing exported folders: a runner (``python -m tests.graph.export_fuzz COUNT SEED FOLDER``) used by
``test_export_fuzz.py`` and run by hand with a large count.

Two small models are compiled and exported once. Each case copies the first folder and makes one to three random
edits: a ``graph.json`` field replaced by a hostile value (libc function names as kernel entries, shrunk storages,
other dtypes and shapes, huge numbers, wrong types) or deleted, ``graph.json`` cut or with bytes flipped,
``params.npz`` swapped with the other model's or rewritten (other dtypes, shapes, byte order, truncated),
``kernels.so`` swapped with the other model's (valid code that does not match), and files replaced by links leaving
the folder (symbolic and hard), ``/dev/zero``, a folder or a dangling link. The code itself is never edited: a
``.so`` is trusted as code. Every eighth case is left intact and must load and compute the original outputs.

The runner loads each case and runs it on inputs of the types the loaded program declares, and prints one JSON
line: ``{"case", "edits", "outcome": "ok" | "graph_error" | "kernel_error" | <other exception>}``. A crash shows
as a child that stops reporting.
"""

from __future__ import annotations

import copy
import json
import os
import random
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np

from tests.fuzzing import json_paths

X = np.linspace(-1, 1, 32, dtype=np.float32).reshape(8, 4)
ENTRIES = ["abort", "exit", "system", "puts", "malloc", "free", "_exit", "raise", "tcomp_kernels",
           "tcomp_kernels_size"]
HOSTILE: list[Any] = [None, True, 0, -1, 1, 7, 2**31, 2**40, 2**63, 10**30, -(2**63), 0.5, 1e308, "", "x",
                      "float16", "float64", "int8", "bool", "handle", "object", [], {}, [8], [2, 2], [8, 6, 1],
                      [-1, 6], [2**40, 2**40], ["y"], {"shape": [2], "dtype": "float32"}, "y", "x" * 10_000]


def build_models(folder: Path) -> tuple[Path, Path, np.ndarray]:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    import tcomp.graph as tg

    def export(nodes: list[Any], inits: list[Any], name: str) -> tuple[Path, np.ndarray]:
        graph = helper.make_graph(nodes, name, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [8, 4])],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [8, 6])], inits)
        executor = tg.compile(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]))
        executor.export(str(folder / name))
        [y] = executor.run([X])
        return folder / name, y

    w = numpy_helper.from_array(np.arange(24, dtype=np.float32).reshape(4, 6) / 10, "w")
    first, want = export([onnx.helper.make_node("MatMul", ["x", "w"], ["m"]), helper.make_node("Relu", ["m"], ["r"]),
                          helper.make_node("Softmax", ["r"], ["y"], axis=1)], [w], "first")
    b = numpy_helper.from_array(np.ones((8, 6), np.float32), "b")
    second, _ = export([helper.make_node("MatMul", ["x", "w"], ["m"]), helper.make_node("Add", ["m", "b"], ["y"])],
                       [w, b], "second")
    return first, second, want


def edit_json(rng: random.Random, case: Path) -> str:
    document = json.loads((case / "graph.json").read_text())
    try:
        edit = _targeted_edit(rng, document)
    except (KeyError, TypeError, IndexError, AttributeError, ValueError):  # an earlier edit changed the layout
        edit = _path_edit(rng, document)
    (case / "graph.json").write_text(json.dumps(document))
    return edit


def _targeted_edit(rng: random.Random, document: Any) -> str:
    choice = rng.random()
    if choice < 0.2:
        kernel = rng.choice(document["kernels"])
        kernel["entry"] = rng.choice(ENTRIES + [k["entry"] for k in document["kernels"]])
        return f"entry {kernel['entry']}"
    if choice < 0.35:
        storage = rng.randrange(len(document["storage_bytes"]))
        document["storage_bytes"][storage] = rng.choice([0, 1, 16, 4, 2**62])
        return f"storage {storage}"
    if choice < 0.5:
        name = rng.choice(sorted(document["types"]))
        document["types"][name] = {"shape": rng.choice([[2, 2], [8, 6], [4, 6], [48], [], [8, 4, 1]]),
                                   "dtype": rng.choice(["float32", "float16", "int32", "float64", "bool"])}
        return f"type {name}"
    return _path_edit(rng, document)


def _path_edit(rng: random.Random, document: Any) -> str:
    paths = json_paths(document)
    if not paths:
        return "nothing to edit"
    path = rng.choice(paths)
    target = document
    for key in path[:-1]:
        target = target[key]
    if rng.random() < 0.2:
        del target[path[-1]]
        return f"delete {path}"
    target[path[-1]] = copy.deepcopy(rng.choice(HOSTILE))
    return f"set {path}"


def edit_json_bytes(rng: random.Random, case: Path) -> str:
    data = bytearray((case / "graph.json").read_bytes())
    if rng.random() < 0.5:
        (case / "graph.json").write_bytes(bytes(data[: rng.randrange(len(data))]))
        return "cut graph.json"
    for _ in range(rng.randint(1, 8)):
        data[rng.randrange(len(data))] = rng.randrange(256)
    (case / "graph.json").write_bytes(bytes(data))
    return "flip graph.json"


def edit_params(rng: random.Random, case: Path, other: Path) -> str:
    path = case / "params.npz"
    choice = rng.random()
    if choice < 0.3:
        shutil.copyfile(other / "params.npz", path)
        return "swap params.npz"
    try:
        with np.load(path) as archive:
            arrays = {k: archive[k] for k in archive.files}
    except Exception:  # noqa: BLE001 - an earlier edit broke the archive: cut it further
        path.write_bytes(path.read_bytes()[: rng.randrange(1 + path.stat().st_size)])
        return "cut params.npz"
    if not arrays:
        return "params.npz is empty"
    key = rng.choice(sorted(arrays))
    if choice < 0.5:
        arrays[key] = arrays[key].astype(rng.choice([np.float16, np.float64, np.int32, ">f4", np.uint8]))
    elif choice < 0.65:
        arrays[key] = arrays[key].reshape(-1)[: rng.randint(0, arrays[key].size)]
    elif choice < 0.75:
        arrays["extra"] = np.zeros(rng.choice([1, 1 << 16]), np.float32)
    elif choice < 0.85:
        del arrays[key]
    else:
        data = path.read_bytes()
        path.write_bytes(data[: rng.randrange(len(data))])
        return "cut params.npz"
    np.savez(path, **arrays)
    return f"rewrite params.npz {key}"


def edit_files(rng: random.Random, case: Path, other: Path) -> str:
    name = rng.choice(["graph.json", "params.npz", "kernels.so"])
    path = case / name
    choice = rng.random()
    if name == "kernels.so" and choice < 0.4:
        shutil.copyfile(other / "kernels.so", path)
        return "swap kernels.so"
    path.unlink()
    if choice < 0.55:
        os.symlink(other / name, path)
        return f"symlink {name} out"
    if choice < 0.7:
        os.link(other / name, path)
        return f"hard link {name} out"  # the folder's own data, as far as the loader can tell: must still be safe
    if choice < 0.8:
        os.symlink("/dev/zero", path)
        return f"{name} -> /dev/zero"
    if choice < 0.9:
        path.mkdir()
        return f"{name} is a folder"
    os.symlink(case / "missing", path)
    return f"{name} dangles"


def mutate(rng: random.Random, case: Path, other: Path) -> list[str]:
    edits = []
    for _ in range(rng.randint(1, 3)):
        kind = rng.random()
        if kind < 0.45:
            edits.append(edit_json(rng, case))
        elif kind < 0.6:
            edits.append(edit_json_bytes(rng, case))
            break  # graph.json is no JSON to edit any more
        elif kind < 0.85:
            edits.append(edit_params(rng, case, other))
        else:
            edits.append(edit_files(rng, case, other))
            break  # no edit may write through a link into the other folder
    return edits


def _input_for(executor: Any, name: str) -> np.ndarray:
    """``X`` when the (edited) program still takes it, else zeros of the type the program declares."""
    from tcomp.ir import dtype as dt

    t = executor.program.types[name]
    if t.shape == X.shape and t.dtype == "float32":
        return X
    return np.zeros(t.shape, dt.to_numpy(t.dtype))


def main(count: int, seed: int, folder: Path) -> None:
    import tcomp.graph as tg
    from tcomp.runtime.errors import KernelError

    first, second, want = build_models(folder)
    rng = random.Random(seed)
    for case_number in range(count):
        case = folder / f"case{case_number}"  # a new path each time: dlopen knows loaded libraries by name
        shutil.copytree(first, case)
        edits = [] if case_number % 8 == 0 else mutate(rng, case, second)
        report: dict[str, Any] = {"case": case_number, "edits": edits}
        try:
            executor = tg.load_executor(str(case))
            outputs = executor.run({name: _input_for(executor, name) for name in executor.input_names})
            report["outcome"] = "ok"
            report["same_output"] = len(outputs) == 1 and bool(np.array_equal(outputs[0], want))
        except tg.GraphError:
            report["outcome"] = "graph_error"
        except KernelError:
            report["outcome"] = "kernel_error"
        except Exception as error:  # noqa: BLE001 - reported, and the test fails on it
            report["outcome"] = f"{type(error).__name__}: {str(error)[:300]}"
        print(json.dumps(report), flush=True)
        shutil.rmtree(case)


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3]))
