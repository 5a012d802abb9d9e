"""Features of a config for the cost model, from its lowered loop IR (as in the TVM paper) or from its knobs.

``FeatureKind.LOOP_IR``: lower the config (``tcomp.lower``) and walk the loop nest. For each store statement the
walk keeps its loops (outermost first; a vector ``ramp`` index counts as an innermost vectorized loop of ``lanes``
iterations) and its buffer accesses with the coefficient of every loop variable in the flat index. The vector is
made of ``MAX_STMTS`` statement blocks (statements with the most iterations first) plus a global block; each
statement block holds

- its iteration count, arithmetic per iteration (float add/sub, mul, div, math calls, integer ops, compares and
  selects) and total float operations;
- per loop level, innermost first (``MAX_LOOPS``): extent, annotation one-hot (serial, parallel, vectorized,
  unrolled, thread), iterations inside the level, nesting depth;
- per buffer access (``MAX_ACCESSES``; the store first, then loads by buffer name): store flag, element bytes,
  stride of the innermost loop, and per loop level the bytes touched inside it and the reuse ratio (iterations per
  distinct element; touched elements are the product of the extents of loops the index depends on, capped by the
  buffer size);
- its register tile: the fraction of its loops' iterations that its guards let through (a split that does not
  divide its axis runs a guarded tail: ``x.outer * 6 + x.inner < 14`` keeps 14 of 18), and the innermost loops that
  are all unrolled or vectorized: their iterations, the bytes the store and the loads touch inside them (how many
  accumulators and operands the code keeps in registers, where spills begin) and how many loops they span.

A tensorized call (``Evaluate`` of one of tcomp's micro-kernels, ``codegen.llvm.microkernels``) is a statement too:
its enclosing loops plus the loops the micro-kernel runs inside (the reduction ``depth``, the ``mr`` rows unrolled,
the ``nr`` columns vectorized; a dot product's reduction vectorized), one multiply-add per iteration, and the
accesses of its pointer arguments with their row strides, so two register tiles never look alike. A tensorize
block describes the call with the most FLOPs: intrinsic, ``mr``, ``nr``, reduction depth, calls, FLOPs, bytes per
call and their ratio.

A last block holds the GPU features of ``feature_gpu`` (threads, shared memory, registers, occupancy, vector widths,
the tile of a GEMM tile kernel; zeros for CPU functions). Counts go through ``log2(1 + x)``; missing slots are 0, so
every vector has the same length. ``FeatureKind.KNOB``
encodes the knob choices instead (``feature_knob``: log2 split factors, permutation, annotation one-hots, option
value), for comparison.
"""

from __future__ import annotations

import dataclasses
import enum
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tcomp import backend
from tcomp.arith.evaluate import EvaluationError, evaluate
from tcomp.autotune.feature_gpu import GPU_WIDTH, gpu_features, ptxas_registers
from tcomp.autotune.feature_knob import knob_features, stable_bucket
from tcomp.autotune.space import (
    ConfigEntity,
    ConfigSpace,
)
from tcomp.autotune.task import Task
from tcomp.codegen.llvm.microkernels import MicroKernelCall, describe_call
from tcomp.ir import dtype as dt
from tcomp.ir import expr as E
from tcomp.ir import stmt as S
from tcomp.ir.functor import post_order_visit

MAX_STMTS = 3
MAX_LOOPS = 8
MAX_ACCESSES = 4
_KINDS = (S.ForKind.SERIAL, S.ForKind.PARALLEL, S.ForKind.VECTORIZED, S.ForKind.UNROLLED, S.ForKind.THREAD_BINDING)
_ARITH_SLOTS = 6
LOOP_WIDTH = 3 + len(_KINDS)
ACCESS_WIDTH = 3 + 2 * MAX_LOOPS
REGISTER_WIDTH = 5
STMT_WIDTH = 2 + _ARITH_SLOTS + MAX_LOOPS * LOOP_WIDTH + MAX_ACCESSES * ACCESS_WIDTH + REGISTER_WIDTH
GUARD_POINTS = 1024  # a guard is evaluated over at most this many iterations of the loops it reads
GLOBAL_WIDTH = 6
TENSORIZE_WIDTH = 10
LOOP_IR_LENGTH = MAX_STMTS * STMT_WIDTH + GLOBAL_WIDTH + TENSORIZE_WIDTH + GPU_WIDTH


class FeatureKind(enum.Enum):
    LOOP_IR = "loop_ir"
    KNOB = "knob"


@dataclass(frozen=True)
class _Loop:
    var: E.Var | None  # None for the lanes of a vector expression
    extent: int
    kind: S.ForKind


@dataclass(frozen=True)
class _Access:
    buffer_name: str
    is_store: bool
    elem_bytes: int
    buffer_elems: int
    coeffs: dict[int, float]  # id(loop var) -> coefficient; key 0 for the vector lanes
    lanes_stride: float


@dataclass(frozen=True)
class _Statement:
    loops: tuple[_Loop, ...]
    accesses: tuple[_Access, ...]
    arith: tuple[int, ...]
    call: MicroKernelCall | None = None  # a tensorized call: the loops end with the micro-kernel's own
    useful: float = 1.0  # the fraction of the loops' iterations its guards (``if``) let through


def _const(expr: E.Expr, default: int = 1) -> int:
    while isinstance(expr, E.Cast):
        expr = expr.value
    value = E.const_int_value(expr)
    return value if value is not None else default


def _linear(expr: E.Expr) -> dict[int, float]:
    """Coefficients of loop variables in an index (approximate through min/max/select/div/mod)."""
    if isinstance(expr, E.Var):
        return {id(expr): 1.0}
    if isinstance(expr, (E.IntImm, E.FloatImm)):
        return {}
    if isinstance(expr, (E.Add, E.Sub)):
        left, right = _linear(expr.a), _linear(expr.b)
        sign = -1.0 if isinstance(expr, E.Sub) else 1.0
        for key, value in right.items():
            left[key] = left.get(key, 0.0) + sign * value
        return left
    if isinstance(expr, E.Mul):
        for const_side, other in ((expr.a, expr.b), (expr.b, expr.a)):
            value = E.const_int_value(const_side)
            if value is not None:
                return {k: v * value for k, v in _linear(other).items()}
        return {**_linear(expr.a), **_linear(expr.b)}
    if isinstance(expr, (E.FloorDiv, E.Div, E.FloorMod, E.Mod)):
        # (c * x + y) // c = x and (c * x + y) % c = y for a split's inner y in [0, c): terms whose coefficient
        # is a multiple of c go to the quotient, the others to the remainder
        divisor = E.const_int_value(expr.b) or 1
        terms = _linear(expr.a)
        if isinstance(expr, (E.FloorDiv, E.Div)):
            return {k: v / divisor for k, v in terms.items() if v % divisor == 0}
        return {k: math.fmod(v, divisor) for k, v in terms.items() if v % divisor != 0}
    if isinstance(expr, (E.Min, E.Max)):
        return _linear(expr.a)
    if isinstance(expr, E.Select):
        return _linear(expr.true_value)
    if isinstance(expr, E.Cast):
        return _linear(expr.value)
    if isinstance(expr, E.Ramp):
        result = _linear(expr.base)
        result[0] = float(_const(expr.stride, 0))
        return result
    if isinstance(expr, E.Broadcast):
        return _linear(expr.value)
    return {}


def _buffer_elems(buffer: object) -> int:
    shape = getattr(buffer, "shape", ())
    return max(1, math.prod(_const(d, 1) for d in shape))


def _access(buffer: object, indices: Sequence[E.Expr], is_store: bool, dtype: str) -> _Access:
    shape = [_const(d, 1) for d in getattr(buffer, "shape", ())]
    coeffs: dict[int, float] = {}
    for dim, index in enumerate(indices):  # row-major: dimension d moves by prod(shape[d + 1:]) elements
        stride = math.prod(shape[dim + 1:]) if len(shape) == len(indices) else 1
        for key, value in _linear(index).items():
            coeffs[key] = coeffs.get(key, 0.0) + value * stride
    elem_bytes = max(1, dt.bits(dt.element(dtype)) // 8)
    return _Access(getattr(buffer, "name", "?"), is_store, elem_bytes, _buffer_elems(buffer), coeffs,
                   coeffs.get(0, 0.0))


def _arith(value: E.Expr) -> tuple[tuple[int, ...], list[_Access], int]:
    counts = [0] * _ARITH_SLOTS
    loads: list[_Access] = []
    lanes = 1

    def visit(node: object) -> None:
        nonlocal lanes
        dtype = getattr(node, "dtype", "")
        if isinstance(node, (E.Ramp, E.Broadcast)):
            lanes = max(lanes, node.lanes)
        if isinstance(node, E.BufferLoad):
            loads.append(_access(node.buffer, node.indices, False, node.dtype))
        elif isinstance(node, (E.Add, E.Sub)):
            counts[0 if dt.is_float(dtype) else 4] += 1
        elif isinstance(node, E.Mul):
            counts[1 if dt.is_float(dtype) else 4] += 1
        elif isinstance(node, (E.Div, E.FloorDiv, E.Mod, E.FloorMod)):
            counts[2 if dt.is_float(dtype) else 4] += 1
        elif isinstance(node, E.Call):
            counts[3] += 1
        elif isinstance(node, (E.Min, E.Max)):
            counts[4] += 1
        elif isinstance(node, (E.CmpOp, E.Select, E.And, E.Or, E.Not)):
            counts[5] += 1

    post_order_visit(value, visit)
    return tuple(counts), loads, lanes


def _collect(body: S.Stmt) -> tuple[list[_Statement], int]:
    """Store statements with their loops, and the bytes of all allocations."""
    statements: list[_Statement] = []
    alloc_bytes = 0
    stack: list[tuple[S.Stmt, tuple[_Loop, ...], float]] = [(body, (), 1.0)]
    while stack:
        node, loops, useful = stack.pop()
        if isinstance(node, S.For):
            stack.append((node.body, loops + (_Loop(node.loop_var, _const(node.extent), node.kind),), useful))
        elif isinstance(node, S.SeqStmt):
            stack.extend((child, loops, useful) for child in reversed(node.seq))
        elif isinstance(node, S.Allocate):
            alloc_bytes += _buffer_elems(node.buffer) * max(1, dt.bits(dt.element(node.buffer.dtype)) // 8)
            stack.append((node.body, loops, useful))
        elif isinstance(node, S.IfThenElse):
            taken = _guard_fraction(node.condition, loops)
            stack.append((node.then_case, loops, useful * taken))
            if node.else_case is not None:
                stack.append((node.else_case, loops, useful * (1.0 - taken)))
        elif isinstance(node, (S.LetStmt, S.AssertStmt)):
            stack.append((node.body, loops, useful))
        elif isinstance(node, S.Evaluate):
            call = _call_statement(node.value, loops)
            if call is not None:
                statements.append(dataclasses.replace(call, useful=useful))
        elif isinstance(node, S.BufferStore):
            counts, loads, lanes = _arith(node.value)
            store = _access(node.buffer, node.indices, True, node.value.dtype)
            for index in node.indices:
                if isinstance(index, E.Ramp):
                    lanes = max(lanes, index.lanes)
            full = loops + ((_Loop(None, lanes, S.ForKind.VECTORIZED),) if lanes > 1 else ())
            ordered = [store] + sorted(loads, key=lambda a: a.buffer_name)
            statements.append(_Statement(full, tuple(ordered), counts, None, useful))
    return statements, alloc_bytes


def _guard_fraction(condition: E.Expr, loops: tuple[_Loop, ...]) -> float:
    """The fraction of the iterations of ``loops`` for which ``condition`` holds, such as a split's tail guard
    ``x.outer * 6 + x.inner < 14`` (14 of 18): the condition evaluated over every iteration of the loops it reads
    (at most ``GUARD_POINTS``); 1 when it reads anything else or cannot be evaluated."""
    by_var = {id(loop.var): loop for loop in loops if loop.var is not None}
    used: dict[int, E.Var] = {}
    readable = True

    def visit(node: object) -> None:
        nonlocal readable
        if isinstance(node, E.Var):
            if id(node) in by_var:
                used[id(node)] = node
            else:
                readable = False
        elif isinstance(node, (E.BufferLoad, E.ProducerLoad, E.Call, E.Ramp, E.Broadcast)):
            readable = False

    post_order_visit(condition, visit)
    extents = [by_var[key].extent for key in used]
    if not readable or math.prod(extents) > GUARD_POINTS:
        return 1.0
    variables = list(used.values())
    taken = 0
    try:
        for values in itertools.product(*(range(extent) for extent in extents)):
            if evaluate(condition, dict(zip(variables, values))) is True:
                taken += 1
    except EvaluationError:
        return 1.0
    return taken / max(1, math.prod(extents))


def _pointer_access(pointer: E.Expr, is_store: bool, strides: dict[E.Var, int]) -> _Access | None:
    """The access of a micro-kernel's pointer argument ``address_of(buffer[indices])``, its coefficients extended
    by the micro-kernel's own loops (``strides``: loop variable -> elements per step)."""
    if not (isinstance(pointer, E.Call) and pointer.op == "address_of" and pointer.args
            and isinstance(pointer.args[0], E.BufferLoad)):
        return None
    load = pointer.args[0]
    access = _access(load.buffer, load.indices, is_store, load.dtype)
    coeffs = dict(access.coeffs)
    for var, stride in strides.items():
        coeffs[id(var)] = coeffs.get(id(var), 0.0) + float(stride)
    return _Access(access.buffer_name, is_store, access.elem_bytes, access.buffer_elems, coeffs, access.lanes_stride)


def _call_statement(value: E.Expr, loops: tuple[_Loop, ...]) -> _Statement | None:
    """A tensorized call as the loop nest it stands for (see the module docstring); None for other calls."""
    if not (isinstance(value, E.Call) and value.kind == "extern"):
        return None
    call = describe_call(value.op, value.args)
    if call is None:
        return None
    depth = max(0, _const(call.depth, 0))
    k, i, j = E.Var("k.micro"), E.Var("i.micro"), E.Var("j.micro")
    inner: list[_Loop] = []
    if call.kind == "sdot":
        inner.append(_Loop(k, depth, S.ForKind.VECTORIZED))
        a_strides, b_strides, c_strides = {k: 1}, {k: 1}, {}
    else:
        if depth:
            inner.append(_Loop(k, depth, S.ForKind.SERIAL))
        inner += [_Loop(i, call.mr, S.ForKind.UNROLLED), _Loop(j, call.nr, S.ForKind.VECTORIZED)]
        lda, ldb, ldc = (_const(stride, 0) for stride in (call.lda, call.ldb, call.ldc))
        a_strides, b_strides, c_strides = {k: 1, i: lda}, {k: ldb, j: 1}, {i: ldc, j: 1}
    store = _pointer_access(call.c, True, c_strides)
    loads = [_pointer_access(call.a, False, a_strides), _pointer_access(call.b, False, b_strides)] if depth else []
    accesses = [a for a in [store, *sorted((x for x in loads if x is not None), key=lambda x: x.buffer_name)] if a]
    arith = (1, 1, 0, 0, 0, 0) if depth else (0,) * _ARITH_SLOTS  # a fused multiply-add per iteration
    return _Statement(loops + tuple(inner), tuple(accesses), arith, call)


def _tensorize_block(statements: Sequence[_Statement]) -> list[float]:
    """The call with the most FLOPs: present, intrinsic, mr, nr, depth, calls, FLOPs, bytes per call, FLOPs per
    byte, and how many call statements there are."""
    computing = [s for s in statements if s.call is not None and s.arith[0]]
    if not computing:
        return [0.0] * TENSORIZE_WIDTH
    main = max(computing, key=lambda s: math.prod(loop.extent for loop in s.loops))
    call = main.call
    assert call is not None
    depth = max(1, _const(call.depth, 0))
    inner = 3 if call.kind == "sgemm" else 1
    calls = math.prod(loop.extent for loop in main.loops[:-inner]) if len(main.loops) > inner else 1
    flops = 2 * call.mr * call.nr * depth
    moved = call.element_bytes * (call.mr * depth + depth * call.nr + 2 * call.mr * call.nr)
    return [1.0, stable_bucket(call.kind), _log(call.mr), _log(call.nr), _log(depth), _log(calls),
            _log(flops * calls), _log(moved), flops / moved, float(len(computing))]


def _log(x: float) -> float:
    return math.log2(1.0 + max(0.0, x))


def _register_block(stmt: _Statement, inner_first: list[_Loop]) -> list[float]:
    """The register tile: the innermost loops that are all unrolled or vectorized (the work one pass of straight-line
    vector code does; a micro-kernel's ``mr`` x ``nr``): the fraction of iterations its guards keep, the run's
    iterations, the bytes the store and the loads touch inside it (the accumulators and the operands it holds in
    registers), and how many loops it spans."""
    run: list[_Loop] = []
    for loop in inner_first:
        if loop.kind not in (S.ForKind.VECTORIZED, S.ForKind.UNROLLED):
            break
        run.append(loop)
    store_bytes = load_bytes = 0.0
    for access in stmt.accesses:
        touched = 1
        for loop in run:
            coefficient = access.lanes_stride if loop.var is None else access.coeffs.get(id(loop.var), 0.0)
            if coefficient != 0.0:
                touched = min(access.buffer_elems, touched * loop.extent)
        if access.is_store:
            store_bytes += touched * access.elem_bytes
        else:
            load_bytes += touched * access.elem_bytes
    iterations = math.prod(loop.extent for loop in run)
    return [stmt.useful, _log(iterations), _log(store_bytes), _log(load_bytes), float(len(run))]


def _statement_block(stmt: _Statement) -> list[float]:
    trips = math.prod(loop.extent for loop in stmt.loops)
    float_ops = sum(stmt.arith[:4])
    block = [_log(trips), _log(trips * float_ops)] + [float(c) for c in stmt.arith]
    inner_first = list(reversed(stmt.loops))[:MAX_LOOPS]
    inside = 1
    for depth, loop in enumerate(inner_first):
        inside *= loop.extent
        block += [_log(loop.extent), _log(inside), float(len(stmt.loops) - depth)]
        block += [1.0 if loop.kind is kind else 0.0 for kind in _KINDS]
    block += [0.0] * (LOOP_WIDTH * (MAX_LOOPS - len(inner_first)))
    for access in stmt.accesses[:MAX_ACCESSES]:
        block += _access_block(access, inner_first)
    block += [0.0] * (ACCESS_WIDTH * (MAX_ACCESSES - min(MAX_ACCESSES, len(stmt.accesses))))
    return block + _register_block(stmt, inner_first)


def _access_block(access: _Access, inner_first: list[_Loop]) -> list[float]:
    def coefficient(loop: _Loop) -> float:
        return access.lanes_stride if loop.var is None else access.coeffs.get(id(loop.var), 0.0)

    innermost_stride = abs(coefficient(inner_first[0])) if inner_first else 0.0
    values = [1.0 if access.is_store else 0.0, float(access.elem_bytes), _log(innermost_stride)]
    touched, iterations = 1, 1
    levels = []
    for loop in inner_first:
        iterations *= loop.extent
        if coefficient(loop) != 0.0:
            touched = min(access.buffer_elems, touched * loop.extent)
        levels += [_log(touched * access.elem_bytes), _log(iterations / touched)]
    levels += [0.0] * (2 * (MAX_LOOPS - len(inner_first)))
    return values + levels


def loop_ir_features(func: S.PrimFunc, registers: int | None = None, gpu: bool = True) -> np.ndarray:
    """The fixed-length feature vector of a lowered function (see the module docstring); ``gpu=False`` (a function
    for a CPU target) leaves the GPU block zeros without looking for kernel launches."""
    statements, alloc_bytes = _collect(func.body)
    ranked = sorted(statements, key=lambda s: -math.prod(loop.extent for loop in s.loops))
    vector: list[float] = []
    for stmt in ranked[:MAX_STMTS]:
        vector += _statement_block(stmt)
    vector += [0.0] * (STMT_WIDTH * (MAX_STMTS - min(MAX_STMTS, len(ranked))))
    loops = [loop for stmt in statements for loop in stmt.loops]
    parallel = [loop.extent for loop in loops if loop.kind is S.ForKind.PARALLEL]
    vector += [float(len(statements)), _log(alloc_bytes), float(len(parallel)), _log(max(parallel, default=0)),
               float(sum(1 for loop in loops if loop.kind is S.ForKind.VECTORIZED)),
               _log(max((lp.extent for lp in loops if lp.kind is S.ForKind.VECTORIZED), default=0))]
    vector += _tensorize_block(statements)
    if gpu:
        vector += gpu_features(func, registers)
    else:  # a CPU function: the GPU block is zeros, without a second walk of the function
        vector += [0.0] * GPU_WIDTH
    return np.asarray(vector, dtype=np.float32)


_ARITH_NAMES = ("float_add", "float_mul", "float_div", "math_call", "int_op", "compare_select")
_REGISTER_NAMES = ("guard_useful", "register_iterations", "register_store_bytes", "register_load_bytes",
                   "register_loops")
_GLOBAL_NAMES = ("statements", "alloc_bytes", "parallel_loops", "parallel_extent", "vector_loops", "vector_width")
_TENSORIZE_NAMES = ("present", "intrinsic", "mr", "nr", "depth", "calls", "flops", "bytes_per_call",
                    "flops_per_byte", "statements")


def feature_names() -> list[str]:
    """A name for each entry of the loop-IR vector, in order (``stmt0.loop1.extent``: the extent of the second
    innermost loop of the statement with the most iterations), for reports of the model's feature importances."""
    names: list[str] = []
    for k in range(MAX_STMTS):
        stmt = f"stmt{k}"
        names += [f"{stmt}.iterations", f"{stmt}.flops"] + [f"{stmt}.{a}" for a in _ARITH_NAMES]
        for level in range(MAX_LOOPS):
            loop = f"{stmt}.loop{level}"
            names += [f"{loop}.extent", f"{loop}.inside", f"{loop}.depth"] + [f"{loop}.{kind.value}" for kind in _KINDS]
        for a in range(MAX_ACCESSES):
            access = f"{stmt}.access{a}"
            names += [f"{access}.store", f"{access}.elem_bytes", f"{access}.inner_stride"]
            for level in range(MAX_LOOPS):
                names += [f"{access}.loop{level}.bytes", f"{access}.loop{level}.reuse"]
        names += [f"{stmt}.{n}" for n in _REGISTER_NAMES]
    names += [f"global.{n}" for n in _GLOBAL_NAMES] + [f"micro_kernel.{n}" for n in _TENSORIZE_NAMES]
    names += [f"gpu.{k}" for k in range(GPU_WIDTH)]
    assert len(names) == LOOP_IR_LENGTH
    return names


class FeatureExtractor:
    """Features of configs of one task by index, cached. A config that cannot be instantiated or lowered gets a
    vector of NaN (``invalid`` tells which). ``ptxas``: on a cuda task, registers per thread come from ``ptxas -v``
    (each config compiled by nvcc, where it exists) instead of an estimate: exact, but seconds per config."""

    def __init__(self, task: Task, kind: FeatureKind = FeatureKind.LOOP_IR, ptxas: bool = False) -> None:
        if not isinstance(kind, FeatureKind):
            raise TypeError(f"kind must be a FeatureKind, got {kind!r}")
        self.task = task
        self.kind = kind
        self.ptxas = ptxas and task.target is not None and task.target.thread_blocks
        self.space: ConfigSpace = task.config_space
        self.cache: dict[int, np.ndarray] = {}
        self.buildable: dict[int, bool] = {}  # knob features: whether the template accepts the config
        self.length = LOOP_IR_LENGTH if kind is FeatureKind.LOOP_IR else len(knob_features(self.space.fallback))

    def of_config(self, config: ConfigEntity) -> np.ndarray:
        if self.kind is FeatureKind.KNOB:
            return knob_features(config)
        try:
            schedule, tensors = self.task.instantiate(config)
            func = backend.lower(schedule, tensors, simple_mode=True)
            registers = ptxas_registers(schedule, tensors, self.task.target) if self.ptxas else None
        except Exception:  # noqa: BLE001 - an invalid config; its measurement will say why
            return np.full(self.length, np.nan, dtype=np.float32)
        gpu = self.task.target is not None and self.task.target.thread_blocks
        return loop_ir_features(func, registers, gpu=gpu)

    def get(self, indices: Sequence[int]) -> np.ndarray:
        rows = []
        for index in indices:
            row = self.cache.get(index)
            if row is None:
                row = self.of_config(self.space.get(index))
                self.cache[index] = row
            rows.append(row)
        if not rows:
            return np.zeros((0, self.length), dtype=np.float32)
        return np.stack(rows)

    def valid(self, indices: Sequence[int]) -> np.ndarray:
        """Which configs the template can instantiate and lower (loop-IR features: the rows that are not NaN;
        knob features: an instantiation, cached). The search walks these only."""
        if self.kind is FeatureKind.LOOP_IR:
            return ~self.invalid(self.get(indices))
        result = []
        for index in indices:
            ok = self.buildable.get(index)
            if ok is None:
                try:
                    self.task.instantiate(self.space.get(index))
                    ok = True
                except Exception:  # noqa: BLE001 - a config the template rejects
                    ok = False
                self.buildable[index] = ok
            result.append(ok)
        return np.asarray(result, dtype=bool)

    @staticmethod
    def invalid(rows: np.ndarray) -> np.ndarray:
        return np.isnan(rows).all(axis=1) if rows.size else np.zeros(len(rows), dtype=bool)
