"""Specialization: models whose shapes are decided at run time compile when they run, once per shape and value.

An ONNX model may leave dimensions symbolic (``dim_param``: a dynamic batch) or take as graph inputs the tensors
that decide shapes (Reshape's shape, Slice's starts, Pad's pads, Resize's sizes, Tile's repeats ...). tcomp
compiles for static shapes, so such a model gets a ``SpecializingExecutor``::

    ex = tcomp.graph.compile("bert.onnx")           # symbolic batch: nothing is compiled yet
    ex.run({"input_ids": ids, "attention_mask": m})  # compiles for these shapes, then runs
    ex.run({"input_ids": ids4, "attention_mask": m4})  # another batch size: compiles once more
    ex.compilations                                   # 2

Each specialization is a ``GraphExecutor`` compiled from the model with every input shape bound and the inputs
that decide shapes frozen to the values seen (they become constants); the executor keeps the most recent
``max_specializations`` of them, keyed by the input shapes and those values, and reuses one whenever a run matches
its key. Which inputs decide shapes is found while compiling: the frontend raises ``ValueNeededError`` naming the
graph inputs a needed value is computed from (through anything but their shapes), those inputs join the key, and
the compilation starts again. Every compilation is logged at debug level on ``tcomp.graph.specialize``.

The specializations share their constants (``SharedConstants``, ``constants``): the weights are read from the model
once, and the weights packed, merged or folded from them are computed once, so a new shape costs the kernels whose
shapes changed, not another copy of the model's weights. A constant only dropped specializations used goes with
the last of them.

Once a symbolic dimension takes a second value, the model is compiled for all its values where its shapes are
multilinear in them (``dynamic.py`` probes it, ``dynamic_executor.py`` runs it): later shapes then run on kernels
compiled once, and only shapes it does not cover (a graph that is not multilinear) compile as above
(``compile(..., symbolic_dimensions=False)``: always). A dimension of 1 broadcasts, so runs with one (a batch of
one) pin it: their first shapes compile as above, and the next ones probe the model for the other dimensions with
it fixed (``dynamic_model(pins)``), so a batch of one prompt of any length compiles once too. Dimensions that no
template follows are held the same way, at every value: a channel count that a convolution's weight fixes, an
image's height and width that strided convolutions divide (a model exported with them symbolic, as optimum exports
vision models). Probing finds them (``NoTemplate.symbols``), and the model is probed again for the others with them
fixed, once per set of their values: a model served at one resolution compiles once for every batch size.

``compile(..., input_values={...})`` (``tcomp compile --freeze name=value``) fixes such inputs once and for all,
and ``input_shapes`` binds symbolic dimensions; a model left with nothing to decide at run time compiles at once to
a plain ``GraphExecutor`` (which can be exported).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from tcomp.graph.dim_expr import binding_of, dimension_symbols, pinned
from tcomp.graph.dynamic import SMALLEST, NoTemplate
from tcomp.graph.dynamic_executor import DynamicModel, ResizingExecutor
from tcomp.graph.executor import GraphExecutor, take_inputs
from tcomp.graph.ir import GraphError, ValueNeededError
from tcomp.graph.shared_constants import SharedConstants
from tcomp.ir import dtype as dt

if TYPE_CHECKING:
    from tcomp.graph.frontend.onnx_inputs import InputDecl

logger = logging.getLogger(__name__)

MAX_SPECIALIZATIONS = 16

BuildFunc = Callable[[Mapping[str, Sequence[int]], Mapping[str, np.ndarray], SharedConstants | None], GraphExecutor]
DynamicFunc = Callable[[Sequence["InputDecl"], Mapping[str, Sequence[int]], Mapping[str, Any], SharedConstants,
                        Mapping[str, int]], DynamicModel]
Key = tuple[Any, ...]
Pins = tuple[tuple[str, int], ...]


def compile_or_defer(decls: Sequence[InputDecl], input_shapes: Mapping[str, Sequence[int]],
                     input_values: Mapping[str, Any], build: BuildFunc, name: str = "model",
                     max_specializations: int = MAX_SPECIALIZATIONS,
                     dynamic: DynamicFunc | None = None) -> GraphExecutor | SpecializingExecutor:
    """A ``GraphExecutor`` when every shape is known now, else a ``SpecializingExecutor`` that compiles at run time.

    ``decls``: the model's run-time inputs; ``build(shapes, values, constants)`` compiles the model with those input
    shapes and those inputs frozen to values (``input_values`` and the values found to decide shapes), sharing the
    constants of other compilations through ``constants`` (``None``: a compilation of its own).
    ``dynamic(decls, input_shapes, values, constants, actual)`` probes the model for its symbolic dimensions
    (``tcomp.graph.dynamic``; ``actual``: their values at a run); None: one compilation per shape."""
    runtime = [d for d in decls if d.name not in input_values]
    if all(d.static or d.name in input_shapes for d in runtime):
        try:
            return build(input_shapes, input_values, None)
        except ValueNeededError as exc:
            if not exc.sources:
                raise
            value_inputs = exc.sources
    else:
        value_inputs = ()
    return SpecializingExecutor(runtime, input_shapes, input_values, build, value_inputs, name, max_specializations,
                                dynamic)


class SpecializingExecutor:
    """Runs a model by compiling it for the input shapes and shape-deciding input values of each run (see the
    module docstring). The run interface is ``GraphExecutor``'s; ``compilations`` counts the specializations
    compiled, ``specializations`` holds the cached ones (most recently used last)."""

    def __init__(self, decls: Sequence[InputDecl], input_shapes: Mapping[str, Sequence[int]],
                 input_values: Mapping[str, Any], build: BuildFunc, value_inputs: Sequence[str] = (),
                 name: str = "model", max_specializations: int = MAX_SPECIALIZATIONS,
                 dynamic: DynamicFunc | None = None) -> None:
        if max_specializations < 1:
            raise ValueError(f"max_specializations must be at least 1, got {max_specializations}")
        self.name = name
        self._decls = {d.name: d for d in decls}
        self._fixed_shapes = {k: tuple(int(d) for d in v) for k, v in input_shapes.items()}
        self._fixed_values = dict(input_values)
        self._build = build
        self.value_inputs: tuple[str, ...] = tuple(value_inputs)
        self.max_specializations = max_specializations
        self.specializations: OrderedDict[Key, GraphExecutor] = OrderedDict()
        self.compilations = 0
        self.constants = SharedConstants()
        self._probe = dynamic
        # per set of pinned dimensions (``_pins``; () for none): the model compiled for the other dimensions, once
        # probed, or why there is none (the most recently used last, at most ``max_specializations``)
        self._models: OrderedDict[Pins, DynamicModel | str] = OrderedDict()
        self._held: set[str] = set()  # dimensions no template follows: pinned at every value
        self._held_last: Pins = ()  # the held dimensions' values at the last run
        self._exact: list[dict[str, int]] = []  # the latest bindings compiled for their exact shapes
        self.assembled = 0  # executors assembled from ``dynamic``'s kernels (no code generated)
        self.resized = 0  # runs of a resizing executor (``dynamic_executor.py``)
        self._pending: dict[str, np.ndarray] = {}
        self._last: GraphExecutor | None = None

    # ------------------------------------------------------------------------------------------------------ inputs
    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(self._decls)

    @property
    def output_names(self) -> tuple[str, ...]:
        """The model's output names (those of the specialization that ran last; empty before the first run)."""
        return () if self._last is None else self._last.output_names

    def declared_input(self, name: str) -> InputDecl:
        """Input ``name`` as the model declares it (element type, dimensions with symbolic ones named)."""
        try:
            return self._decls[name]
        except KeyError:
            raise KeyError(f"{self.name} has no input {name!r}; inputs: {list(self.input_names)}") from None

    def set_input(self, key: str | int | None = None, value: Any = None, **params: Any) -> None:
        """Hold ``value`` for input ``key`` (a name or an index) until the next run."""
        if key is not None:
            self._hold(key, value)
        take_inputs(self.name, self.input_names, self._hold, None, params)

    def _hold(self, key: str | int, value: Any, copy: bool = True) -> None:
        """Input ``key`` for the next run: a copy of ``value``, or with ``copy=False`` (the inputs of ``run`` itself)
        ``value`` itself where it is already an array of the input's type, kept for later runs without inputs as
        ``GraphExecutor.run`` keeps it."""
        name = self.input_names[key] if isinstance(key, int) else key
        decl = self._decls.get(name)
        if decl is None:
            raise KeyError(f"{self.name} has no input {name!r}; inputs: {list(self.input_names)}")
        self._pending[name] = _checked(decl, value, self._fixed_shapes.get(name), copy)

    def _take(self, key: str | int, value: Any) -> None:
        self._hold(key, value, copy=False)

    def get_input(self, key: str | int) -> np.ndarray:
        name = self.input_names[key] if isinstance(key, int) else key
        if name not in self._pending:
            raise KeyError(f"input {name!r} has not been set")
        return self._pending[name].copy()

    @property
    def dynamic(self) -> DynamicModel | None:
        """The model compiled for its symbolic dimensions (those held fixed at the last run's values), once probed
        (None before, or when there is none)."""
        model = self._models.get(self._held_last)
        return model if isinstance(model, DynamicModel) else None

    @property
    def dynamic_failure(self) -> str | None:
        """Why probing found no template for the symbolic dimensions (None when it did or has not probed)."""
        model = self._models.get(self._held_last, self._models.get(()))
        return model if isinstance(model, str) else None

    @property
    def held_dimensions(self) -> frozenset[str]:
        """The symbolic dimensions no template follows (found by probing): each of their values compiles apart, and
        the model is compiled for the other dimensions once per set of their values."""
        return frozenset(self._held)

    def dynamic_model(self, pins: Mapping[str, int]) -> DynamicModel | None:
        """The model compiled for the symbolic dimensions other than those ``pins`` fixes (to values below 2: a
        batch of one; and the held dimensions, at their values), once probed."""
        model = self._models.get(tuple(sorted(pins.items())))
        return model if isinstance(model, DynamicModel) else None

    # ------------------------------------------------------------------------------------------------------ running
    def run(self, inputs: Sequence[Any] | Mapping[str, Any] | None = None, **named: Any) -> list[np.ndarray] | None:
        """As ``GraphExecutor.run``: compiles first when no specialization matches the inputs."""
        take_inputs(self.name, self.input_names, self._take, inputs, named)
        missing = [n for n in self._decls if n not in self._pending]
        if missing:
            raise ValueError(f"{self.name}: inputs {missing} are not set")
        executor = self._specialization()
        outputs = executor.run({n: a for n, a in self._pending.items() if n in executor.input_names})
        self._last = executor
        return outputs if inputs is not None else None

    def _key(self) -> Key:
        shapes = tuple(self._pending[n].shape for n in self._decls)
        values = tuple((n, self._pending[n].shape, self._pending[n].tobytes()) for n in self.value_inputs)
        return shapes, values

    def _specialization(self) -> GraphExecutor:
        while True:
            key = self._key()
            executor = self.specializations.get(key)
            if executor is not None:
                self.specializations.move_to_end(key)
                return executor
            shapes = {n: a.shape for n, a in self._pending.items() if n not in self.value_inputs}
            values = {**self._fixed_values, **{n: self._pending[n] for n in self.value_inputs}}
            executor = self._assembled(key, shapes, values)
            if executor is not None:
                return executor
            logger.debug("%s: compiling for input shapes %s%s", self.name, shapes,
                         f" and the values of {list(self.value_inputs)}" if self.value_inputs else "")
            try:
                with self.constants.use(key):
                    executor = self._build(shapes, values, self.constants)
            except BaseException as exc:
                self.constants.release(key)  # what only this failed compilation derived
                if not isinstance(exc, ValueNeededError):
                    raise
                new = [n for n in exc.sources if n in self._decls and n not in self.value_inputs]
                if not new:
                    raise
                logger.debug("%s: inputs %s decide shapes; specializing on their values too", self.name, new)
                self.value_inputs = (*self.value_inputs, *new)
                continue
            self.compilations += 1
            self._keep(key, executor)
            binding = None if self.value_inputs else binding_of(list(self._decls.values()), self._fixed_shapes, shapes)
            if binding is not None:
                self._exact = [*self._exact[1 - 4 * self.max_specializations:], binding]
            return executor

    def _keep(self, key: Key, executor: GraphExecutor) -> None:
        self.specializations[key] = executor
        while len(self.specializations) > self.max_specializations:
            dropped, _ = self.specializations.popitem(last=False)
            self.constants.release(dropped)

    def _assembled(self, key: Key, shapes: Mapping[str, Sequence[int]],
                   values: Mapping[str, Any]) -> GraphExecutor | None:
        """An executor for ``shapes`` (of the run ``key``) from the kernels compiled for the symbolic dimensions,
        once the dimensions have taken a second value (the model is probed then); None when there is no such kernel
        set or it does not cover these shapes. Dimensions of 1 (a batch of one) make tensors broadcast: they are
        pinned, and the model is probed for the others apart (once they, too, have taken a second value). An
        executor assembled for these shapes is kept with the specializations; a resizing one
        (``dynamic_executor.py``) serves many shapes and is kept by the model."""
        if self._probe is None or self.value_inputs:
            return None
        decls = list(self._decls.values())
        binding = binding_of(decls, self._fixed_shapes, shapes)
        if binding is None:
            return None
        while True:
            pins = self._pins(binding)
            self._held_last = tuple(pin for pin in pins if pin[0] in self._held)
            model = self._models.get(pins)
            if model is not None:
                self._models.move_to_end(pins)
                break
            if not self._compiled_at(pins):
                return None  # the first shapes compile as they are (those of a batch of one too)
            held = len(self._held)
            model = self._probed(pins, values, binding)
            if len(self._held) == held:
                break  # else dimensions were found that no template follows: look again with them pinned
        if isinstance(model, str):
            return None
        binding = {s: v for s, v in binding.items() if s not in dict(pins)}
        if not model.covers(binding):
            return None
        try:
            executor, new = model.executor(binding)
        except Exception as exc:  # noqa: BLE001 - as above: the exact compilation reports a real error again
            self._models[pins] = f"{type(exc).__name__}: {exc}"
            logger.debug("%s: no executor for symbolic dimensions %s: %s", self.name, binding, self._models[pins])
            return None
        self.assembled += new
        if isinstance(executor, ResizingExecutor):
            self.resized += 1
        else:
            self._keep(key, executor)
        return executor

    def _pins(self, binding: Mapping[str, int]) -> Pins:
        """The dimensions of ``binding`` fixed at their values, sorted: those below ``SMALLEST`` (they broadcast)
        and the held ones."""
        return tuple(sorted((s, v) for s, v in binding.items() if v < SMALLEST or s in self._held))

    def _compiled_at(self, pins: Pins) -> bool:
        """Whether the dimensions that ``pins`` leaves free have taken a second value: a binding compiled for its
        exact shapes has the held dimensions' values of ``pins``, and its dimensions below ``SMALLEST`` too where
        ``pins`` has any."""
        def split(p: Pins) -> tuple[Pins, Pins]:
            return tuple(x for x in p if x[0] in self._held), tuple(x for x in p if x[0] not in self._held)

        held, ones = split(pins)
        for binding in self._exact:
            exact_held, exact_ones = split(self._pins(binding))
            if exact_held == held and (not ones or exact_ones == ones):
                return True
        return False

    def _probed(self, pins: Pins, values: Mapping[str, Any], binding: Mapping[str, int]) -> DynamicModel | str:
        """The model probed for its symbolic dimensions but ``pins`` (fixed to their values), or why there is
        none (``dynamic.py``). A failure that names dimensions no template follows adds them to the held ones,
        unless that would hold every dimension left."""
        fixed = dict(pins)
        decls = pinned(list(self._decls.values()), fixed)
        try:
            if not dimension_symbols(decls, self._fixed_shapes):
                raise GraphError("every symbolic dimension is pinned")
            with self.constants.use(("dynamic", pins)):
                model: DynamicModel | str = self._probe(decls, self._fixed_shapes, values, self.constants,
                                                        {s: v for s, v in binding.items() if s not in fixed})
            logger.debug("%s: compiled for symbolic dimensions %s%s", self.name, list(model.symbols),
                         f" with {fixed}" if fixed else "")
        except Exception as exc:  # noqa: BLE001 - any failure leaves one compilation per shape, as before
            model = f"{type(exc).__name__}: {exc}"
            logger.debug("%s: no compilation for symbolic dimensions%s: %s", self.name,
                         f" with {fixed}" if fixed else "", model)
            free = set(binding) - set(fixed)
            held = exc.symbols & free if isinstance(exc, NoTemplate) else set()
            if held and held != free:  # holding them all would leave nothing to probe
                self._held |= held
                logger.debug("%s: dimensions %s held at each of their values", self.name, sorted(held))
        self._models[pins] = model
        while len(self._models) > self.max_specializations:
            dropped, _ = self._models.popitem(last=False)
            self.constants.release(("dynamic", dropped))
        return model

    def _current(self) -> GraphExecutor:
        if self._last is None:
            raise GraphError(f"{self.name} has not run yet: its shapes are decided at run time")
        return self._last

    def get_output(self, index: int) -> np.ndarray:
        """A copy of output ``index`` of the last run."""
        return self._current().get_output(index)

    def get_num_outputs(self) -> int:
        return self._current().get_num_outputs()

    @property
    def graph(self) -> Any:
        """The optimized graph of the specialization that ran last (None before the first run)."""
        return None if self._last is None else self._last.graph

    @property
    def num_kernels(self) -> int:
        return self._current().num_kernels

    def benchmark(self, repeat: int = 10, number: int = 1, warmup: int = 1, **options: Any) -> list[float]:
        """Runs once on the inputs set (compiling if needed), then the ``benchmark`` of that specialization (with
        its own ``options``, such as a GPU executor's ``cuda_graph``)."""
        self.run()
        return self._current().benchmark(repeat, number, warmup, **options)

    def profile(self, repeat: int = 10) -> list[tuple[str, str, float]]:
        self.run()
        return self._current().profile(repeat)

    def export(self, folder: str) -> None:
        """Refused: an exported model has static shapes. The message says which inputs to fix."""
        fixes = [f"--input-shapes {d.name}:{d.example()}" for d in self._decls.values()
                 if not d.static and d.name not in self._fixed_shapes and d.name not in self.value_inputs]
        fixes += [f"--freeze {n}=VALUE" for n in self.value_inputs]
        if not self.value_inputs:
            fixes.append("--freeze NAME=VALUE for any input whose values decide shapes")
        raise GraphError(f"{self.name}: shapes are decided at run time, so it cannot be exported; fix them with "
                         f"{' and '.join(fixes)} (input_shapes= / input_values= in Python)")


def _checked(decl: InputDecl, value: Any, fixed: tuple[int, ...] | None, copy: bool) -> np.ndarray:
    """``value`` as an array of input ``decl``'s element type and one of its shapes; ``copy``: a copy of its own
    even where ``value`` already is such an array."""
    array = np.asarray(value)
    expected = np.dtype(dt.to_numpy(decl.dtype))
    if array.dtype != expected:
        if not np.can_cast(array.dtype, expected, casting="same_kind"):
            raise TypeError(f"input {decl.name!r}: expected {expected}, got {array.dtype}")
        array = array.astype(expected)
    shape = tuple(int(d) for d in array.shape)
    why = decl.mismatch(shape) if fixed is None else (
        None if shape == fixed else f"the shape bound at compile time is {list(fixed)}")
    if why is not None:
        raise ValueError(f"input {decl.name!r}: shape {list(shape)} does not fit: {why}")
    return np.array(array, order="C", copy=True) if copy else np.require(array, requirements="C")
