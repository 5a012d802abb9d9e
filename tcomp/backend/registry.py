"""The backends by target kind: the one place that maps a ``TargetKind`` to the code that serves it."""

from __future__ import annotations

from tcomp.backend.base import Backend
from tcomp.backend.cuda import CudaBackend
from tcomp.backend.llvm import LLVMBackend
from tcomp.target import Target, TargetKind, as_target

BACKENDS: dict[TargetKind, Backend] = {backend.kind: backend for backend in (LLVMBackend(), CudaBackend())}


def backend_for(target: Target | TargetKind | str | None) -> Backend:
    """The backend of ``target`` (a ``Target``, a target string, a kind, or ``None`` for this machine)."""
    kind = target if isinstance(target, TargetKind) else as_target(target).kind
    return BACKENDS[kind]
