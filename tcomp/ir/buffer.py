"""Buffers: named, typed, shaped storage with a memory scope."""

from __future__ import annotations

from dataclasses import dataclass

from tcomp.ir.expr import Expr

SCOPES = ("global", "local", "shared")


@dataclass(frozen=True, eq=False)
class Buffer:
    """Row-major storage of ``shape`` elements of ``dtype`` in ``scope``.

    ``scope`` is ``"global"`` (function arguments and heap temporaries), ``"local"`` (registers or stack) or
    ``"shared"`` (GPU shared memory). ``align`` is the byte alignment codegen may assume for the data pointer.
    ``strides`` (in elements) lets a dimension's rows be padded, as ``storage_align`` asks.
    Buffers compare by identity.
    """

    name: str
    shape: tuple[Expr, ...]
    dtype: str
    scope: str = "global"
    align: int = 0
    strides: tuple[Expr, ...] | None = None  # element strides per dimension; None means compact row-major

    def __post_init__(self) -> None:
        if self.scope not in SCOPES:
            raise ValueError(f"buffer {self.name}: unknown scope {self.scope!r}; expected one of {SCOPES}")

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __str__(self) -> str:
        dims = ", ".join(str(s) for s in self.shape)
        scope = "" if self.scope == "global" else f", scope={self.scope}"
        return f"{self.name}: {self.dtype}[{dims}]{scope}"

    __repr__ = __str__
