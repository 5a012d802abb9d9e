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
