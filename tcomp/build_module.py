"""``lower`` and ``build``: the named stages from a schedule to a callable module.

Stages: ``te`` (the schedule) -> ``tir`` (``lower_schedule``) -> ``tir.opt`` (the pass pipeline) -> ``ll`` / ``asm``
(LLVM code generation) -> a runtime ``Module``. Building a function structurally equal to one built before (same
target, same options) reuses its compiled code: the cache finds candidates by structural hash and confirms each by
structural equality.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from tcomp import config
from tcomp.ir.stmt import PrimFunc
from tcomp.ir.structural import structural_equal, structural_hash
from tcomp.lru import LRUCache
from tcomp.schedule.loop_nest import lower_schedule
from tcomp.schedule.schedule import Schedule
from tcomp.target import Target
from tcomp.te.tensor import Tensor
from tcomp.transform.pipeline import default_pipeline, run_pipeline


def lower(
    schedule: Schedule,
    args: Sequence[Tensor],
    name: str = "main",
    *,
    check_bounds: bool | None = None,
    simple_mode: bool = False,
) -> PrimFunc:
    """The optimized loop IR of ``schedule`` over ``args`` (inputs and outputs in call order).

    ``simple_mode=True`` returns the loop nest straight from the schedule, before the pass pipeline.
    """
    func = lower_schedule(schedule, args, name)
    if simple_mode:
        return func
    checked = config.current().check_bounds if check_bounds is None else check_bounds
    return run_pipeline(func, default_pipeline(checked))


class _BuildCache:
    """Compiled artifacts by (structural hash, target, options); hits confirmed by structural equality. An LRU of
    ``Settings.build_cache_size`` entries: a long-lived process building ever new kernels stays bounded."""

    def __init__(self) -> None:
        self.entries: LRUCache[tuple[int, str], list[tuple[PrimFunc, Any]]] = LRUCache(
            lambda: config.current().build_cache_size)
        self.lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, func: PrimFunc, target_key: str) -> Any:
        with self.lock:
            for cached_func, artifact in self.entries.get((structural_hash(func), target_key)) or []:
                if structural_equal(cached_func, func):
                    self.hits += 1
                    return artifact
            self.misses += 1
            return None

    def put(self, func: PrimFunc, target_key: str, artifact: Any) -> None:
        with self.lock:
            key = (structural_hash(func), target_key)
            self.entries.put(key, [*(self.entries.get(key) or []), (func, artifact)])

    def clear(self) -> None:
        with self.lock:
            self.entries.clear()
            self.hits = self.misses = 0


build_cache = _BuildCache()


def build(
    schedule: Schedule | PrimFunc,
    args: Sequence[Tensor] | None = None,
    target: str | Target = "llvm",
    name: str = "main",
    *,
    check_bounds: bool | None = None,
) -> Any:
    """Compile ``schedule`` (or an already lowered function) for ``target`` and return a callable module.

    ``target="cuda"`` builds CUDA C kernels (``tcomp.codegen.cuda.build_cuda``): the module runs on a GPU when one
    is available and in CPU emulation otherwise (its ``repr`` says which)."""
    tgt = target if isinstance(target, Target) else Target.parse(target)
    if tgt.kind == "cuda":
        from tcomp.codegen.cuda import build_cuda

        return build_cuda(schedule, args, tgt, name)
    if isinstance(schedule, PrimFunc):
        func = schedule
    else:
        if args is None:
            raise TypeError("build: pass the argument tensors (inputs and outputs, in call order)")
        func = lower(schedule, args, name, check_bounds=check_bounds)
    if tgt.kind != "llvm":
        raise ValueError(f"build: target {tgt} is not supported yet; supported: llvm, cuda")
    from tcomp.codegen.llvm import codegen_llvm
    from tcomp.runtime import Module

    use_cache = config.current().build_cache
    target_key = str(tgt)
    artifact = build_cache.get(func, target_key) if use_cache else None
    if artifact is None:
        artifact = codegen_llvm(func, tgt)
        if use_cache:
            build_cache.put(func, target_key, artifact)
    return Module(func, artifact, tgt)
