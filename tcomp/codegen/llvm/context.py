"""State shared by every function emitted into one LLVM module: declarations, assert table, loop metadata."""

from __future__ import annotations

import re

import llvmlite.ir as ir

from tcomp.ir.buffer import Buffer
from tcomp.runtime.artifact import AssertInfo
from tcomp.target import Target

# LLVM cuts local value names at 1024 characters (``-non-global-value-max-name-size``): two longer names that
# share their first 1024 would define one value twice
MAX_VALUE_NAME = 200


class CodegenError(Exception):
    """The loop IR holds something the LLVM backend cannot translate (the message names it)."""


def argument_names(names: list[str]) -> list[str]:
    """Names for a function's arguments from ``names``: letters, digits, ``_`` and ``.`` only, at most
    ``MAX_VALUE_NAME`` characters and distinct (a repeated name gets ``.1``, ``.2`` ...)."""
    seen: set[str] = set()
    result = []
    for name in names:
        clean = (re.sub(r"[^A-Za-z0-9_.]", "_", name) or "arg")[:MAX_VALUE_NAME]
        unique, count = clean, 0
        while unique in seen:
            count += 1
            unique = f"{clean}.{count}"
        seen.add(unique)
        result.append(unique)
    return result


class _LoopID(ir.values.MDValue):
    """A ``distinct`` self-referential metadata node, as ``llvm.loop`` requires: ``!5 = distinct !{!5, !6}``."""

    def descr(self, buf: list[str]) -> None:
        refs = [self.get_reference()] + [op.get_reference() for op in self.operands]
        buf += ("distinct !{ " + ", ".join(refs) + " }", "\n")

    def __hash__(self) -> int:
        return id(self)

    def __eq__(self, other: object) -> bool:
        return self is other


class ModuleContext:
    """Owns the ``ir.Module`` being built and what its functions share.

    Guarantees: a declared function or intrinsic is declared once; assert ids are dense from 1; names made by
    ``unique_name`` do not collide.
    """

    def __init__(self, name: str, target: Target, use_threads: bool) -> None:
        self.module = ir.Module(name=name)
        self.target = target
        self.use_threads = use_threads
        self.asserts: list[AssertInfo] = []
        self._counters: dict[str, int] = {}
        # parameters that may share memory with each other (``func.attr("may_alias")``): never ``noalias``
        self.may_alias: frozenset[Buffer] = frozenset()
        # an integer division by zero fails the call instead of giving 0 (``func.attr(CHECK_DIVISION)``)
        self.check_division = False

    def unique_name(self, prefix: str) -> str:
        count = self._counters.get(prefix, 0)
        self._counters[prefix] = count + 1
        return prefix if count == 0 and prefix not in self.module.globals else f"{prefix}.{count}"

    def declare(self, name: str, ret: ir.Type, args: list[ir.Type], var_arg: bool = False) -> ir.Function:
        """Get or declare the external function ``name``."""
        existing = self.module.globals.get(name)
        if isinstance(existing, ir.Function):
            return existing
        fnty = ir.FunctionType(ret, args, var_arg=var_arg)
        return ir.Function(self.module, fnty, name=name)

    def add_assert(self, message: str, num_values: int) -> int:
        info = AssertInfo(len(self.asserts) + 1, message, num_values)
        self.asserts.append(info)
        return info.id

    def loop_metadata(self, options: list[tuple[str | bool | int, ...]]) -> ir.values.MDValue:
        """A fresh loop id carrying ``options``: ``[("llvm.loop.unroll.full",)]`` or
        ``[("llvm.loop.vectorize.enable", True)]``."""
        nodes = []
        for option in options:
            operands: list[ir.Value] = [ir.MetaDataString(self.module, str(option[0]))]
            for value in option[1:]:
                if isinstance(value, bool):
                    operands.append(ir.Constant(ir.IntType(1), int(value)))
                else:
                    operands.append(ir.Constant(ir.IntType(32), int(value)))  # type: ignore[arg-type]
            nodes.append(self.module.add_metadata(operands))
        return _LoopID(self.module, nodes, name=str(len(self.module.metadata)))
