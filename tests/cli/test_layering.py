"""The command line sits on top: no module of the library imports ``tcomp.cli``."""

from __future__ import annotations

import ast
from pathlib import Path

import tcomp

PACKAGE = Path(tcomp.__file__).parent


def _imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_no_library_module_imports_the_cli() -> None:
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE)
        if relative.parts[0] == "cli":
            continue
        imported = _imported_modules(path)
        if any(name == "tcomp.cli" or name.startswith("tcomp.cli.") for name in imported):
            offenders.append(str(relative))
    assert offenders == []


def test_every_command_is_a_module_with_arguments_and_run() -> None:
    from tcomp.cli import build_parser, commands

    names = [name for name, _, _ in commands()]
    assert {"demo", "target", "tune", "pick", "compile", "run"} <= set(names)
    for _, module, _ in commands():
        assert callable(module.add_arguments) and callable(module.run)
    build_parser()  # every command's arguments register without clashing
