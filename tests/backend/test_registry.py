"""The backend registry is the one place that knows target kinds: no module compares a target's kind with a kind's
name (``target.kind == "cuda"``); code asks the target's backend instead."""

from __future__ import annotations

import ast
from pathlib import Path

import tcomp
from tcomp.target import KINDS

PACKAGE = Path(tcomp.__file__).parent
ALLOWED = {"backend/registry.py"}


def _mentions_kind_or_target(node: ast.AST) -> bool:
    text = ast.unparse(node).lower()
    return "kind" in text or "target" in text


def _names_a_kind(node: ast.AST) -> bool:
    if isinstance(node, ast.Constant):
        return node.value in KINDS
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return any(_names_a_kind(element) for element in node.elts)
    return False


def kind_string_comparisons(source: str) -> list[str]:
    """``left op right`` comparisons of a kind's name with an expression that mentions a kind or a target."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Compare):
            continue
        operands = [node.left, *node.comparators]
        if any(_names_a_kind(o) for o in operands) and any(_mentions_kind_or_target(o) for o in operands):
            found.append(f"line {node.lineno}: {ast.unparse(node)}")
    return found


def test_the_check_finds_what_it_looks_for() -> None:
    assert kind_string_comparisons('if target.kind == "cuda": pass') == ["line 1: target.kind == 'cuda'"]
    assert kind_string_comparisons('ok = kind not in ("llvm", "cuda")') == ["line 1: kind not in ('llvm', 'cuda')"]
    assert kind_string_comparisons('if fmt == "cuda": pass') == []


def test_no_module_compares_a_target_kind_with_a_kind_name() -> None:
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        if relative in ALLOWED:
            continue
        offenders += [f"{relative} {found}" for found in kind_string_comparisons(path.read_text())]
    assert offenders == []
