"""Errors, attach types and the relations a schedule records between axes (split, fuse)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from tcomp.ir.expr import Expr, IterVar, Var
from tcomp.ir.stmt import ForKind


class ScheduleError(ValueError):
    """An illegal schedule request; the message names the stage, the primitive, the axis and the reason."""


def schedule_error(stage: Any, primitive: str, axis: Any, reason: str) -> ScheduleError:
    axis_text = "" if axis is None else f" axis {_axis_name(axis)}:"
    return ScheduleError(f"stage {stage.name}: {primitive}:{axis_text} {reason}")


def _axis_name(axis: Any) -> str:
    if isinstance(axis, IterVar):
        return axis.var.name
    if isinstance(axis, Var):
        return axis.name
    return repr(axis)


class AttachType(enum.Enum):
    ROOT = "root"
    INLINE = "inline"
    SCOPE = "scope"


@dataclass(eq=False)
class Split:
    parent: IterVar
    outer: IterVar
    inner: IterVar
    factor: Expr | None
    nparts: Expr | None


@dataclass(eq=False)
class Fuse:
    outer: IterVar
    inner: IterVar
    fused: IterVar


Relation = Split | Fuse


@dataclass(eq=False)
class IterAttr:
    """What a schedule said about one leaf axis: its loop kind, a thread binding, pragmas, a tensor intrinsic."""

    kind: ForKind = ForKind.SERIAL
    bind_thread: IterVar | None = None
    pragmas: list[tuple[str, Any]] = field(default_factory=list)
    tensor_intrin: Any = None
