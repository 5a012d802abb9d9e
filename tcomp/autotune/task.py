"""``Task``: one template instantiated with arguments for a target; the unit of tuning and of records.

The key is the JSON text ``[template name, args, target string]``: stable across processes and runs, so records
written by one run are found by the next. The FLOP count is what the template declared (``cfg.add_flop``) or else
the floating-point arithmetic of its compute stages (each reduction counts its combine as one operation), used to
report GFLOP/s.
"""

from __future__ import annotations

import functools
import inspect
import json
import math
from dataclasses import dataclass
from typing import Any

from tcomp.autotune.space import Config, ConfigEntity, ConfigSpace
from tcomp.autotune.template import Template, get_template, import_registering_module, registered_module
from tcomp.ir import dtype as dt
from tcomp.ir import expr as E
from tcomp.ir.functor import post_order_visit
from tcomp.json_value import JSONValueError, as_nested, as_object, as_str
from tcomp.schedule.schedule import Schedule
from tcomp.target import Target, as_target
from tcomp.te.tensor import ComputeOp, Operation, Tensor

MAX_NAME = 1000  # characters of a template name or a target string in a record
MAX_ARGS = 64  # entries of a template argument list (and of each list inside it)
MAX_ARG_DEPTH = 3  # template arguments are scalars, lists of them, and lists of those


def freeze_args(value: Any) -> Any:
    """Lists become tuples (recursively) so arguments hash; enum members become their values."""
    if isinstance(value, (list, tuple)):
        return tuple(freeze_args(v) for v in value)
    if hasattr(value, "value") and not isinstance(value, (int, float, str, bool)):
        return value.value
    if value is None or isinstance(value, (int, float, str, bool)):
        return value
    raise TypeError(f"template arguments must be JSON values (int, float, str, bool, lists), got {value!r}")


def _thaw(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_thaw(v) for v in value]
    return value


@dataclass(frozen=True)
class Task:
    """``template`` name, its ``args`` and the ``target``. The template is looked up by name in the registry."""

    name: str
    args: tuple[Any, ...]
    target: Target

    @property
    def key(self) -> str:
        return json.dumps([self.name, _thaw(self.args), str(self.target)], separators=(",", ":"))

    @property
    def workload_key(self) -> str:
        """The key without the target: the same computation on any machine."""
        return json.dumps([self.name, _thaw(self.args)], separators=(",", ":"))

    @property
    def template(self) -> Template:
        return get_template(self.name)

    @property
    def config_space(self) -> ConfigSpace:
        return _space(self)

    @property
    def flop(self) -> float:
        return _flop(self)

    def instantiate(self, config: Config | None = None) -> tuple[Schedule, list[Tensor]]:
        """The schedule and tensors for ``config`` (a ``ConfigEntity``; ``None`` means the fallback config)."""
        if config is None:
            config = self.config_space.fallback
        if isinstance(config, ConfigEntity) and config.target != self.target:
            config = config.with_target(self.target)
        return self.template(config, *self.args)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "args": _thaw(self.args), "target": str(self.target)}

    @staticmethod
    def from_json(value: Any) -> Task:
        """The task a record describes. Its template must be registered (``TemplateError`` otherwise); records
        written before templates were looked up by name alone carry a ``"module"`` field, which is ignored."""
        fields = as_object(value, "task")
        name = as_str(fields.get("name"), "task name", MAX_NAME)
        get_template(name)
        args = freeze_args(as_nested(fields.get("args"), "task arguments", MAX_ARG_DEPTH, MAX_ARGS))
        if not isinstance(args, tuple):
            raise JSONValueError("task arguments: expected a JSON list")
        text = as_str(fields.get("target"), "task target", MAX_NAME)
        try:
            target = parse_target(text)
        except Exception as error:  # noqa: BLE001 - any rejection of the target text means a bad record
            raise JSONValueError(f"task target: {type(error).__name__}: {error}") from None
        return Task(name, args, target)

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled for this process's own worker processes: the module that registered the template goes along,
        so a worker imports it (templates defined outside tcomp live in modules the worker has not imported)."""
        return (_task_for_worker, (self.name, self.args, self.target, registered_module(self.name)))

    @property
    def label(self) -> str:
        """``matmul(64, 64, 64, float32)``: the template and its arguments, for tables and plots."""
        return f"{self.name}({', '.join(str(a) for a in self.args)})"

    def __str__(self) -> str:
        return f"{self.label} on {self.target}"


def _task_for_worker(name: str, args: tuple[Any, ...], target: Target, module: str) -> Task:
    import_registering_module(name, module)
    return Task(name, args, target)


@functools.lru_cache(maxsize=256)
def parse_target(text: str) -> Target:
    return Target.parse(text)


def create_task(name: str, args: Any, target: Target | str | None = None) -> Task:
    """A task for the registered template ``name`` with ``args`` on ``target`` (default: this machine). Omitted
    arguments with defaults are filled in, so ``(64, 64, 64)`` and ``(64, 64, 64, "float32")`` are one task."""
    entry = get_template(name)
    return Task(name, canonical_args(entry, freeze_args(tuple(args))), as_target(target))


def canonical_args(entry: Template, args: tuple[Any, ...]) -> tuple[Any, ...]:
    """``args`` with the template's defaults applied to every positional parameter after the config."""
    try:
        signature = inspect.signature(entry.func)
        bound = signature.bind(None, *args)
    except (TypeError, ValueError):
        return args  # the template call will report the mismatch
    bound.apply_defaults()
    names = [p.name for p in list(signature.parameters.values())[1:]
             if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    extra = tuple(bound.arguments.get(p.name, ()) for p in signature.parameters.values()
                  if p.kind is p.VAR_POSITIONAL)
    return freeze_args(tuple(bound.arguments[n] for n in names) + tuple(v for group in extra for v in group))


@functools.lru_cache(maxsize=64)
def _space(task: Task) -> ConfigSpace:
    space = ConfigSpace(task.target)
    schedule, tensors = task.template(space, *task.args)
    space.flop = space.flop or float(count_flop([schedule[t].op for t in tensors if schedule[t].is_output]))
    return space


def _flop(task: Task) -> float:
    return _space(task).flop


_ARITH = (E.Add, E.Sub, E.Mul, E.Div, E.Mod, E.FloorDiv, E.FloorMod, E.Min, E.Max)


def _body_flop(expr: E.Expr) -> int:
    count = 0

    def visit(node: Any) -> None:
        nonlocal count
        if isinstance(node, _ARITH) and dt.is_float(node.dtype):
            count += 1
        elif isinstance(node, E.Call) and dt.is_float(node.dtype):
            count += 1
        elif isinstance(node, E.Reduce):
            count += 1  # the combine

    post_order_visit(expr, visit)
    return count


def count_flop(outputs: list[Operation]) -> int:
    """Floating-point operations to compute ``outputs`` and every compute stage they read."""
    total = 0
    seen: set[int] = set()
    stack = list(outputs)
    while stack:
        op = stack.pop()
        if id(op) in seen:
            continue
        seen.add(id(op))
        if isinstance(op, ComputeOp):
            points = 1
            for iv in op.axis + op.reduce_axis:
                extent = E.const_int_value(iv.dom.extent) if iv.dom is not None else None
                points *= extent if extent is not None else 1
            total += points * sum(_body_flop(b) for b in op.body)
        stack.extend(t.op for t in op.input_tensors())
    return total


def gflops(task: Task, seconds: float) -> float:
    if seconds <= 0 or not math.isfinite(seconds):
        return 0.0
    return task.flop / seconds / 1e9
