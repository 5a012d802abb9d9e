"""The packages form layers and every import points down them: no cycle between packages, no backward arrow.

Each module's imports are read with ``ast`` (at the top, inside functions and under ``TYPE_CHECKING`` alike, since
an import that dodges a cycle at run time is still an arrow), and an import of a package on a higher layer, or of
another package on the same layer, fails the test. A module may import anything in its own package."""

from __future__ import annotations

import ast
from pathlib import Path

import tcomp

PACKAGE = Path(tcomp.__file__).parent

# lowest first; the package root (``tcomp/__init__.py``, the public API) sits just below the command line
LAYERS: tuple[tuple[str, ...], ...] = (
    ("config", "json_value", "lru", "target_check", "gpu_probe"),
    ("target",),
    ("ir",),
    ("arith", "te"),
    ("schedule",),
    ("transform",),
    ("runtime",),
    ("codegen",),
    ("ops",),
    ("backend",),
    ("autotune",),
    ("graph",),
    ("__init__",),
    ("cli",),
)
LEVEL = {name: level for level, names in enumerate(LAYERS) for name in names}


def _part(module: str) -> str:
    """The layer unit of a dotted module name: ``tcomp.ops.cpu.dense`` -> ``ops``; ``tcomp`` -> ``__init__``."""
    parts = module.split(".")
    if len(parts) == 1:
        return "__init__"
    return parts[1] if parts[1] in LEVEL else "__init__"  # ``from tcomp import build``: a name of the root


def _imports(tree: ast.AST) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "tcomp":
                found += [(node.lineno, f"tcomp.{alias.name}") for alias in node.names]
            else:
                found.append((node.lineno, node.module))
    return [(line, name) for line, name in found if name == "tcomp" or name.startswith("tcomp.")]


def backward_imports(source: str, part: str) -> list[str]:
    """The imports in ``source`` (a module of the layer unit ``part``) that point up or sideways."""
    wrong = []
    for line, name in _imports(ast.parse(source)):
        target = _part(name)
        if target != part and LEVEL[target] >= LEVEL[part]:
            wrong.append(f"line {line}: {name} ({part} -> {target})")
    return wrong


def _layer_unit(path: Path) -> str:
    relative = path.relative_to(PACKAGE)
    return relative.parts[0] if len(relative.parts) > 1 else relative.stem


def test_the_check_finds_what_it_looks_for() -> None:
    assert backward_imports("from tcomp.transform.gpu import WARP_SIZE", "schedule") == [
        "line 1: tcomp.transform.gpu (schedule -> transform)"]
    assert backward_imports("def f():\n    import tcomp\n", "ops") == ["line 2: tcomp (ops -> __init__)"]
    assert backward_imports("from tcomp import te", "arith") == ["line 1: tcomp.te (arith -> te)"]
    assert backward_imports("from tcomp import te\nfrom tcomp.ir import expr", "schedule") == []


def test_every_package_has_a_layer() -> None:
    units = {_layer_unit(path) for path in PACKAGE.rglob("*.py")}
    assert units <= set(LEVEL), f"add {sorted(units - set(LEVEL))} to LAYERS"


def test_imports_point_down_the_layers() -> None:
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        found = backward_imports(path.read_text(), _layer_unit(path))
        offenders += [f"{path.relative_to(PACKAGE)} {entry}" for entry in found]
    assert offenders == []


# Packages tcomp runs without (``pyproject.toml``'s extras, and what the GPU machines add): a module may import them
# inside the function that needs them, so that the rest works where they are missing.
OPTIONAL = frozenset({"onnx", "onnxruntime", "cupy", "xgboost", "dask", "distributed", "matplotlib", "scipy"})
# Imports inside functions for another reason, each with why.
DEFERRED = {
    # ``str()`` of a node prints it; the printer's tables are built from the node classes, so neither module can
    # import the other at its top
    ("ir/expr.py", "tcomp.ir.printer"),
    ("ir/stmt.py", "tcomp.ir.printer"),
}


def _module_path(module: str) -> Path | None:
    relative = Path(*module.split(".")[1:])
    for path in (PACKAGE / relative / "__init__.py", PACKAGE / relative.with_suffix(".py")):
        if path.is_file():
            return path
    return None


def _top_level_imports(tree: ast.Module) -> list[str]:
    names = []
    for node in tree.body:
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
    return names


def _needs_optional(module: str) -> bool:
    """``module`` is an optional package, or a tcomp module that imports one at its top."""
    if module.split(".")[0] in OPTIONAL:
        return True
    path = _module_path(module) if module.startswith("tcomp.") else None
    if path is None:
        return False
    return any(name.split(".")[0] in OPTIONAL for name in _top_level_imports(ast.parse(path.read_text())))


def function_imports(source: str) -> list[tuple[int, str]]:
    """The imports made inside functions in ``source``: (line, module)."""
    found = []
    for function in ast.walk(ast.parse(source)):
        if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for node in ast.walk(function):
            if isinstance(node, ast.Import):
                found += [(node.lineno, alias.name) for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found += [(node.lineno, _imported_module(node.module, alias.name)) for alias in node.names]
    return sorted(set(found))


def _imported_module(module: str, name: str) -> str:
    """What ``from module import name`` loads: the submodule ``module.name`` where there is one, else ``module``."""
    submodule = f"{module}.{name}"
    return submodule if submodule.startswith("tcomp.") and _module_path(submodule) is not None else module


def test_the_function_import_check_finds_what_it_looks_for() -> None:
    source = "def f():\n    import xgboost\n    from tcomp.ir import expr\n    from tcomp.graph.frontend import onnx\n"
    imports = function_imports(source)
    assert imports == [(2, "xgboost"), (3, "tcomp.ir.expr"), (4, "tcomp.graph.frontend.onnx")]
    assert [_needs_optional(name) for _, name in imports] == [True, False, True]


def test_imports_inside_functions_are_of_optional_dependencies() -> None:
    """An import inside a function hides an arrow that a cycle would otherwise show: only optional dependencies
    (and the few ``DEFERRED`` ones) are imported there."""
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        for line, name in function_imports(path.read_text()):
            if not _needs_optional(name) and (relative, name) not in DEFERRED:
                offenders.append(f"{relative} line {line}: {name}")
    assert offenders == []
