"""LLVM through llvmlite: target machines, the O3 pipeline, assembly and JIT compilation.

llvmlite 0.50 (LLVM 22) initializes LLVM itself; the native target and assembly printer are registered here once.
The pipeline is the new pass builder's O3 with loop and SLP vectorization enabled. LLVM's global context is not
safe for concurrent use, so every call into it here holds one process-wide lock (builds from several Python threads
serialize their LLVM work; running compiled code does not take the lock). Kernels therefore compile in compile
processes where there are some (``compile_ir``, ``llvm_pool``): this process then only loads their object files.
"""

from __future__ import annotations

import concurrent.futures as cf
import functools
import threading
from collections.abc import Sequence
from typing import Any

import llvmlite.binding as llvm

from tcomp.runtime import llvm_pool
from tcomp.runtime.llvm_worker import initialize, optimize_module
from tcomp.target import Target

_LOCK = threading.RLock()


def target_machine(target: Target) -> llvm.TargetMachine:
    """The shared target machine for ``target`` (CPU name + features), opt level 3, JIT code model, used to
    optimize and to print assembly. Never hand it to a JIT engine: the engine takes ownership and frees it."""
    return _cached_target_machine(target.mcpu, target.features)


@functools.cache
def _cached_target_machine(cpu: str, features: str) -> llvm.TargetMachine:
    return new_target_machine(cpu, features)


def new_target_machine(cpu: str, features: str) -> llvm.TargetMachine:
    """A fresh target machine (for a JIT engine, which will own it)."""
    initialize()
    with _LOCK:
        llvm_target = llvm.Target.from_triple(process_triple())
        return llvm_target.create_target_machine(cpu=cpu, features=features, opt=3, codemodel="jitdefault")


@functools.cache
def process_triple() -> str:
    """The triple of this process (``tm.triple`` of llvmlite 0.50 may return a dangling string, so it is avoided)."""
    return str(llvm.get_process_triple())


def data_layout(tm: llvm.TargetMachine) -> str:
    return str(tm.target_data)


def parse(ll: str, tm: llvm.TargetMachine) -> llvm.ModuleRef:
    """Parse and verify LLVM IR text, setting the process triple and the machine's data layout."""
    initialize()
    with _LOCK:
        module = llvm.parse_assembly(ll)
        module.triple = process_triple()
        module.data_layout = data_layout(tm)
        module.verify()
    return module


def optimize(module: llvm.ModuleRef, tm: llvm.TargetMachine) -> None:
    """Run the O3 module pipeline with loop and SLP vectorization on ``module`` in place. llvmlite 0.50 leaks
    about 70 KiB per pass builder (the instrumentation callbacks it registers are never freed), and a pass builder
    cannot be reused (its callbacks would outlive the run that registered them), so each distinct kernel costs that
    much for the life of the process (or of a compile process); the build cache keeps repeated kernels from paying
    it twice."""
    with _LOCK:
        optimize_module(module, tm)


def assembly(module: llvm.ModuleRef, tm: llvm.TargetMachine) -> str:
    with _LOCK:
        return str(tm.emit_assembly(module))


def optimize_ir(ll_unopt: str, target: Target) -> str:
    """Parse, verify and optimize ``ll_unopt`` for ``target``; return the optimized IR text."""
    with _LOCK:
        tm = target_machine(target)
        module = parse(ll_unopt, tm)
        optimize(module, tm)
        ll = str(module)
        del module
    return ll


def assemble(ll: str, target: Target) -> str:
    """The assembly of (already optimized) IR text ``ll`` for ``target``."""
    with _LOCK:
        tm = target_machine(target)
        module = parse(ll, tm)
        asm = assembly(module, tm)
        del module
    return asm


class CompiledIR:
    """A kernel's optimized IR text and, where a compile process made it (``llvm_pool``), its object file: ready,
    or a future the first ``result()`` waits for. A compile process that could not start leaves the kernel to this
    process."""

    def __init__(self, ll_unopt: str, target: Target, ll: str | None = None,
                 pending: cf.Future[tuple[str, bytes]] | None = None) -> None:
        self._ll_unopt = ll_unopt
        self._target = target
        self._ll = ll
        self._object: bytes | None = None
        self._pending = pending
        self._lock = threading.Lock()

    def result(self) -> tuple[str, bytes | None]:
        """The optimized IR and the object file (None: compiled in this process, the JIT compiles the IR)."""
        with self._lock:
            if self._pending is not None:
                try:
                    self._ll, self._object = self._pending.result()
                except llvm_pool.StartFailure:
                    llvm_pool.mark_broken()
                    self._ll = optimize_ir(self._ll_unopt, self._target)
                self._pending = None
            assert self._ll is not None
            return self._ll, self._object

    def __getstate__(self) -> dict[str, Any]:
        """The optimized IR without the object file: the receiving process (perhaps on another machine) compiles
        its own machine code."""
        return {"ll_unopt": self._ll_unopt, "target": self._target, "ll": self.result()[0]}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["ll_unopt"], state["target"], ll=state["ll"])  # type: ignore[misc]


def compile_ir(ll_unopt: str, target: Target) -> CompiledIR:
    """Optimize ``ll_unopt`` for ``target`` and make its machine code: in a compile process where there are
    some (``llvm_pool``; the result is pending until it is needed), else here (the JIT makes the code)."""
    workers = llvm_pool.pool()
    if workers is None:
        return CompiledIR(ll_unopt, target, ll=optimize_ir(ll_unopt, target))
    return CompiledIR(ll_unopt, target, pending=workers.submit(ll_unopt, target.mcpu, target.features,
                                                               process_triple()))


class JITFunction:
    """A compiled module kept alive in an MCJIT engine; ``address`` is the entry function's address. The engine
    compiles the optimized IR ``ll``, or loads ``obj``, the object file a compile process made of it."""

    def __init__(self, ll: str, entry: str, target: Target, obj: bytes | None = None) -> None:
        with _LOCK:
            tm = new_target_machine(target.mcpu, target.features)
            module = parse("" if obj is not None else ll, tm)
            self._engine = llvm.create_mcjit_compiler(module, tm)
            if obj is not None:
                self._engine.add_object_file(llvm.ObjectFileRef.from_data(obj))
            self._engine.finalize_object()
            self._engine.run_static_constructors()
            self.address = int(self._engine.get_function_address(entry))
        if self.address == 0:
            raise RuntimeError(f"the JIT did not produce function {entry!r}")

    def address_of(self, name: str) -> int:
        """The address of another function of the module (0 when it has none of that name)."""
        with _LOCK:
            return int(self._engine.get_function_address(name))


def shared_object(modules: Sequence[tuple[str, str]], target: Target,
                  data: Sequence[tuple[str, bytes]] = (), runtime: Sequence[str] = ()) -> bytes:
    """A position-independent object file for ``target`` holding the optimized modules ``(ll, entry)``, linked into
    one: only the entry functions keep external linkage (helpers and globals become internal, so their names
    cannot collide). Each ``(name, bytes)`` of ``data`` becomes an exported constant byte array ``name`` and an
    exported ``int64`` ``name_size`` holding its length. The ``runtime`` modules (the thread pool) are linked in
    after the kernels, so the kernels' calls resolve to them, and then become internal too."""
    initialize()
    with _LOCK:
        machine = llvm.Target.from_triple(process_triple()).create_target_machine(
            cpu=target.mcpu, features=target.features, opt=3, reloc="pic", codemodel="default")
        linked: llvm.ModuleRef | None = None
        for ll, entry in modules:
            module = llvm.parse_assembly(ll)
            module.triple = process_triple()
            module.data_layout = str(machine.target_data)
            for function in module.functions:
                if not function.is_declaration and function.name != entry:
                    function.linkage = llvm.Linkage.internal
            for variable in module.global_variables:
                if not variable.is_declaration:
                    variable.linkage = llvm.Linkage.internal
            if linked is None:
                linked = module
            else:
                linked.link_in(module)
        if linked is None:
            linked = llvm.parse_assembly("")
            linked.triple = process_triple()
        for ll in runtime:
            support = llvm.parse_assembly(ll)
            support.triple = process_triple()
            support.data_layout = str(machine.target_data)
            defined = [f.name for f in support.functions if not f.is_declaration]
            linked.link_in(support)
            for name in defined:
                linked.get_function(name).linkage = llvm.Linkage.internal
        if data:
            constants = llvm.parse_assembly(_data_module(data))
            constants.triple = process_triple()
            constants.data_layout = str(machine.target_data)
            linked.link_in(constants)
        linked.verify()
        return bytes(machine.emit_object(linked))


def _data_module(data: Sequence[tuple[str, bytes]]) -> str:
    """LLVM assembly of exported constants: ``@name = constant [n x i8]`` and ``@name_size = constant i64 n``."""
    lines = []
    for name, payload in data:
        if not name.isidentifier():
            raise ValueError(f"exported data needs a C identifier as its name, got {name!r}")
        text = "".join(chr(b) if 32 <= b < 127 and b not in (34, 92) else f"\\{b:02X}" for b in payload)
        lines.append(f'@{name} = constant [{len(payload)} x i8] c"{text}", align 1')
        lines.append(f"@{name}_size = constant i64 {len(payload)}, align 8")
    return "\n".join(lines) + "\n"
