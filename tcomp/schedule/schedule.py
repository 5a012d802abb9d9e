"""``Schedule``: one stage per operation, in producer-before-consumer order.

A schedule is its stages' state (relations between axes, annotations, attachments), which primitives change in
place after checking them and lowering reads. It keeps no log of the primitive calls: what reproduces a schedule is
the code that made it, and for a tuned one its template and config, which tuning records hold as data.
"""

from __future__ import annotations

from typing import Any

from tcomp.schedule import cache
from tcomp.schedule.relation import AttachType, ScheduleError
from tcomp.schedule.stage import Stage
from tcomp.te.tensor import Operation, ScanOp, Tensor


def _topological_ops(outputs: list[Operation]) -> list[Operation]:
    order: list[Operation] = []
    visited: set[int] = set()
    stack: list[tuple[Operation, bool]] = [(op, False) for op in reversed(outputs)]
    while stack:
        op, done = stack.pop()
        if done:
            if id(op) not in visited:
                visited.add(id(op))
                order.append(op)
            continue
        if id(op) in visited:
            continue
        stack.append((op, True))
        for tensor in reversed(op.input_tensors()):
            if id(tensor.op) not in visited:
                stack.append((tensor.op, False))
    return order


class Schedule:
    """How to compute a set of output operations."""

    def __init__(self, outputs: list[Operation]) -> None:
        self.outputs = outputs
        self.stages: list[Stage] = []
        self.stage_map: dict[Operation, Stage] = {}
        self.tensor_alias: dict[Tensor, Tensor] = {}
        for op in _topological_ops(outputs):
            self._add_stage(op)
        for op in outputs:
            self.stage_map[op].is_output = True
        for stage in self.stages:
            if isinstance(stage.op, ScanOp):
                for part in (stage.op.init.op, stage.op.update.op):
                    self.stage_map[part].scan_parent = stage

    def _add_stage(self, op: Operation, index: int | None = None) -> Stage:
        stage = Stage(op, self)
        if index is None:
            self.stages.append(stage)
        else:
            self.stages.insert(index, stage)
        self.stage_map[op] = stage
        return stage

    def resolve(self, tensor: Tensor) -> Tensor:
        """The tensor that now holds ``tensor``'s values (after cache_write / cache_read / rfactor rewrites)."""
        seen = 0
        while tensor in self.tensor_alias:
            tensor = self.tensor_alias[tensor]
            seen += 1
            if seen > 1000:  # pragma: no cover - aliases never form cycles
                raise ScheduleError(f"alias cycle at tensor {tensor.name}")
        return tensor

    def insert_stage(self, op: Operation, index: int) -> Stage:
        """Add a stage for a new operation at position ``index`` of the stage order."""
        return self._add_stage(op, index)

    # -- primitives that add stages (see cache.py) -----------------------------------------------------------------
    def cache_read(self, tensor: Tensor, scope: str, readers: Any) -> Tensor:
        """A stage that copies ``tensor`` into ``scope`` for ``readers``; returns the copy."""
        return cache.cache_read(self, tensor, scope, readers)

    def cache_write(self, tensor: Tensor, scope: str) -> Tensor:
        """Compute ``tensor`` into a ``scope`` buffer first and copy it out after; returns the cache tensor."""
        return cache.cache_write(self, tensor, scope)

    def rfactor(self, tensor: Tensor, axis: Any, factor_axis: int = 0) -> Tensor:
        """Factor the reduction of ``tensor`` over the leaf ``axis`` into a partial-result stage; returns it."""
        return cache.rfactor(self, tensor, axis, factor_axis)

    def __getitem__(self, key: Tensor | Operation) -> Stage:
        op = key.op if isinstance(key, Tensor) else key
        stage = self.stage_map.get(op)
        if stage is None:
            name = getattr(op, "name", repr(op))
            raise ScheduleError(f"stage {name}: not part of this schedule (it does not feed any of its outputs)")
        return stage

    def readers(self, stage: Stage) -> list[Stage]:
        """Stages that read ``stage``'s outputs, looking through inlined stages."""
        result: list[Stage] = []
        for other in self.stages:
            if other is stage:
                continue
            if any(self.resolve(t).op is stage.op for t in other.op.input_tensors()):
                if other.attach_type is AttachType.INLINE:
                    result.extend(r for r in self.readers(other) if r not in result)
                elif other not in result:
                    result.append(other)
        return result

    def __repr__(self) -> str:
        return "Schedule(" + ", ".join(repr(s) for s in self.stages) + ")"


def create_schedule(ops: Any) -> Schedule:
    """A schedule for the given output operations (or tensors), every stage with its default loop nest."""
    if isinstance(ops, (Operation, Tensor)):
        ops = [ops]
    result: list[Operation] = []
    for item in ops:
        if isinstance(item, Tensor):
            result.append(item.op)
        elif isinstance(item, Operation):
            result.append(item)
        else:
            raise TypeError(f"create_schedule: expected tensors or operations, got {type(item).__name__}")
    return Schedule(result)
