"""The graph operator registry: for each operator name, its fusion pattern, type inference, lowering to tensor
expressions and (for small integer values) static evaluation.

- ``infer(ctx) -> [TensorType]``: output types from the input types, the attributes and any statically known
  input values (``ctx.value(i)``), raising ``GraphError`` for ill-formed nodes.
- ``lower(ctx) -> [Tensor]``: ``te`` computes of the outputs from the input tensors (``ctx.tensor(i)``); the
  operator library (``tcomp.ops``) does the work. Lowering assumes inference accepted the node.
- ``evaluate(node, arrays) -> [ndarray]`` (optional): numpy evaluation used by type inference to propagate the
  values of small integer tensors (shapes and indices computed in the graph), as ONNX's data propagation does.
  Tensor data is never computed this way: constant folding runs generated code (``passes/fold_constants.py``).
- ``pattern``: how the operator fuses (``OpPattern``, TVM's ``OpPatternKind``).
- ``stateful``: its outputs change from run to run (random numbers): such a node is never computed at compile
  time, however constant its inputs.

The definitions live in ``opdefs/``, which the ``tcomp.graph`` package imports first: the registry is full once
any module of the package is loaded.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tcomp.graph.ir import GraphError, Node, TensorType
from tcomp.te.tensor import Tensor


class OpPattern(enum.IntEnum):
    """Fusion patterns, ordered: a group's pattern is the largest of its members'."""

    ELEMWISE = 0  # out[i] = f(in[i]), same shapes
    BROADCAST = 1  # out[i] = f(in[bcast(i)])
    INJECTIVE = 2  # each output element is a function of one input element (layout changes, gathers)
    COMM_REDUCE = 3  # commutative reduction
    OUT_ELEMWISE_FUSABLE = 4  # complex op (conv, matmul, pooling) whose elementwise consumers fuse into it
    OPAQUE = 8  # never fused


@dataclass
class InferContext:
    node: Node
    types: list[TensorType | None]  # None for an omitted optional input
    values: list[np.ndarray | None]  # statically known values of the inputs
    out_values: dict[int, np.ndarray] = field(default_factory=dict)  # output values known from the types alone

    def set_value(self, index: int, value: np.ndarray) -> None:
        """Declare the value of output ``index`` (for operators such as ``shape_of`` whose result the types fix)."""
        self.out_values[index] = value

    def type(self, index: int) -> TensorType:
        t = self.types[index] if index < len(self.types) else None
        if t is None:
            raise self.error(f"input {index} is required")
        return t

    def has_input(self, index: int) -> bool:
        return index < len(self.types) and self.types[index] is not None

    def value(self, index: int) -> np.ndarray | None:
        return self.values[index] if index < len(self.values) else None

    def attr(self, key: str, default: Any = None) -> Any:
        return self.node.attr(key, default)

    def error(self, reason: str) -> GraphError:
        return GraphError(f"node {self.node.name} ({self.node.op}): {reason}")


@dataclass
class LowerContext:
    node: Node
    tensors: list[Tensor | None]
    types: list[TensorType | None]  # input types
    out_types: list[TensorType]
    values: list[np.ndarray | None]  # statically known input values (params and propagated values)

    def tensor(self, index: int) -> Tensor:
        t = self.tensors[index] if index < len(self.tensors) else None
        if t is None:
            raise GraphError(f"node {self.node.name} ({self.node.op}): input {index} is missing")
        return t

    def has_input(self, index: int) -> bool:
        return index < len(self.tensors) and self.tensors[index] is not None

    def attr(self, key: str, default: Any = None) -> Any:
        return self.node.attr(key, default)

    @property
    def name(self) -> str:
        return self.node.name


InferFunc = Callable[[InferContext], list[TensorType]]
LowerFunc = Callable[[LowerContext], list[Tensor]]
EvalFunc = Callable[[Node, Sequence[np.ndarray]], list[np.ndarray]]


@dataclass(frozen=True)
class OpDef:
    """A graph operator. ``hints``: attributes that choose how its kernel runs (tiles), not what it computes."""

    name: str
    pattern: OpPattern
    infer: InferFunc
    lower: LowerFunc
    evaluate: EvalFunc | None = None
    stateful: bool = False
    hints: tuple[str, ...] = ()


_REGISTRY: dict[str, OpDef] = {}


def register_op(name: str, pattern: OpPattern, infer: InferFunc, lower: LowerFunc,
                evaluate: EvalFunc | None = None, stateful: bool = False, hints: tuple[str, ...] = ()) -> OpDef:
    if name in _REGISTRY:
        raise ValueError(f"graph operator {name!r} is registered twice")
    definition = OpDef(name, pattern, infer, lower, evaluate, stateful, hints)
    _REGISTRY[name] = definition
    return definition


def get_op(name: str) -> OpDef:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise GraphError(f"unknown graph operator {name!r}") from None


def is_stateful(node: Node) -> bool:
    """Whether ``node``'s outputs change from run to run (so that no pass may compute them ahead of time)."""
    return get_op(node.op).stateful


def registered_ops() -> list[str]:
    return sorted(_REGISTRY)


def pattern_of(node: Node, types: dict[str, TensorType] | None = None) -> OpPattern:
    """The node's pattern; a broadcast operator whose inputs all have the output's shape is elementwise."""
    pattern = get_op(node.op).pattern
    if pattern is OpPattern.BROADCAST and types is not None:
        out = types.get(node.outputs[0])
        if out is not None and all(types.get(i) is not None and types[i].shape == out.shape for i in node.inputs if i):
            return OpPattern.ELEMWISE
    return pattern


def compiled_in(value: np.ndarray, members: Sequence[Node]) -> bool:
    """Whether the kernel of the operator nodes ``members`` (a fused group, or one node) compiles the parameter
    ``value`` in as a constant rather than taking it as an argument: a one-element parameter, but not in the kernel
    of a product or convolution (``OUT_ELEMWISE_FUSABLE``). There its load is nothing beside the kernel's work, and
    one-element values that differ from layer to layer (a quantized model's scales and zero points) would otherwise
    compile a kernel per layer."""
    if value.size != 1:
        return False
    return not any(get_op(m.op).pattern is OpPattern.OUT_ELEMWISE_FUSABLE for m in members)
