"""A kernel (loop IR after the GPU passes) as an ``extern "C" __global__`` CUDA C function.

Statements: a loop bound to ``threadIdx.x`` prints as ``const int tx = (int)threadIdx.x;`` (the kernel is SPMD);
serial loops as ``for``, unrolled and vectorized ones (and those whose pragma ``unroll_max_extent`` is at least
their constant extent) with ``#pragma unroll``; shared allocations as ``__shared__``
arrays declared at the top of the kernel (they live as long as the block), or, for a kernel over the 48 KB a kernel
may declare statically, as pointers into the block's dynamic shared memory; local ones as arrays in registers; the
barrier as ``__syncthreads();``. Parameters are the kernel's buffers (``const`` and ``__restrict__`` where the kernel
only reads them) and its size variables. The launch bounds are the block's thread count.

In a kernel with double-buffered stages, a copy of 4 bytes (or a 16-byte vector copy) from global to shared memory
prints as an asynchronous copy (``tc_cp_async4`` / ``tc_cp_async16``: ``cp.async`` on compute capability 8.0 and
later, a plain copy elsewhere), and every barrier first waits for the thread's copies (``tc_cp_async_wait_all``).
The copies into one buffer then run while the block computes on the other: a thread no longer stalls at the store
into shared memory until the global load arrives. Other copies (a padding select, other types) stay plain.
"""

from __future__ import annotations

from tcomp.arith import const_int_bound, simplify
from tcomp.codegen.cuda.device_functions import DeviceFunction, device_function
from tcomp.codegen.cuda.doc import Doc
from tcomp.codegen.cuda.exprs import CudaCodegenError, ExprPrinter, NameTable, c_type, storage_type
from tcomp.codegen.cuda.vector import VectorCopy, match_vector_copy
from tcomp.ir import dtype as dt
from tcomp.ir import expr as E
from tcomp.ir import stmt as S
from tcomp.ir.buffer import Buffer
from tcomp.ir.functor import children, post_order_visit
from tcomp.ir.gpu import UNROLL_MAX_EXTENT, is_barrier, is_launch_loop
from tcomp.transform.bind_threads import launch_dims
from tcomp.transform.double_buffer import ATTR as DOUBLE_BUFFER

ASYNC_COPY_BYTES = 4  # element size of scalar copies printed as cp.async (cp.async copies 4, 8 or 16 bytes)


def written_buffers(stmt: S.Stmt) -> set[int]:
    """Ids of the buffers ``stmt`` stores into, or passes by address to a device function (which may write)."""
    written: set[int] = set()

    def visit(node: object) -> None:
        if isinstance(node, S.BufferStore):
            written.add(id(node.buffer))
        elif isinstance(node, E.Call) and node.kind == "extern":
            for arg in node.args:
                if isinstance(arg, E.Call) and arg.op == "address_of" and isinstance(arg.args[0], E.BufferLoad):
                    written.add(id(arg.args[0].buffer))

    post_order_visit(stmt, visit)
    return written


def called_device_functions(stmt: S.Stmt) -> list[DeviceFunction]:
    """The registered device functions ``stmt`` calls, in order of first call."""
    found: dict[str, DeviceFunction] = {}

    def visit(node: object) -> None:
        if isinstance(node, E.Call) and node.kind == "extern" and node.op not in found:
            function = device_function(node.op)
            if function is not None:
                found[node.op] = function

    post_order_visit(stmt, visit)
    return list(found.values())


def shared_buffers(stmt: S.Stmt) -> list[Buffer]:
    """The shared-memory arrays allocated in ``stmt``, in order."""
    found: list[Buffer] = []
    stack: list[object] = [stmt]
    while stack:
        node = stack.pop()
        if isinstance(node, S.Allocate) and node.buffer.scope == "shared":
            found.append(node.buffer)
        if isinstance(node, S.Stmt):
            stack.extend(reversed([c for c in children(node) if isinstance(c, S.Stmt)]))
    return found


SHARED_ALIGNMENT = 16


def dynamic_shared_layout(body: S.Stmt) -> tuple[list[tuple[Buffer, int]], int]:
    """The byte offset of each shared array in the block's dynamic shared memory (each aligned to 16 bytes, for
    ``float4`` and ``cp.async`` copies), and the total."""
    offsets: list[tuple[Buffer, int]] = []
    total = 0
    for buffer in shared_buffers(body):
        offsets.append((buffer, total))
        total += -(-allocation_bytes(buffer) // SHARED_ALIGNMENT) * SHARED_ALIGNMENT
    return offsets, total


def allocation_bytes(buffer: Buffer) -> int:
    """Bytes of a constant-size allocation."""
    size = E.const_int_value(simplify(buffer.shape[0])) if len(buffer.shape) == 1 else None
    if size is None:
        raise CudaCodegenError(
            f"buffer {buffer.name} in {buffer.scope} memory has the non-constant size {buffer.shape}; a kernel's "
            "local and shared arrays need constant sizes (split by constant factors)"
        )
    return size * dt.storage_bytes(buffer.dtype)


class KernelPrinter:
    """Prints one kernel into ``doc``; ``dynamic_shared``: its shared arrays are carved from the block's dynamic
    shared memory (``TC_DYNAMIC_SHARED``, at 16-byte aligned offsets) instead of declared statically."""

    def __init__(self, kernel: S.PrimFunc, doc: Doc, dynamic_shared: bool = False) -> None:
        self.kernel = kernel
        self.dynamic_shared = dynamic_shared
        self.doc = doc
        self.names = NameTable()
        self.expr = ExprPrinter(self.names)
        self.async_copies = bool(kernel.attr(DOUBLE_BUFFER, ()))

    def print(self) -> None:
        kernel = self.kernel
        written = written_buffers(kernel.body)
        params: list[str] = []
        for buffer in kernel.params:
            name = self.names.define(buffer, buffer.name)
            const = "" if id(buffer) in written else "const "
            params.append(f"{const}{storage_type(buffer.dtype)}* __restrict__ {name}")
        for var in kernel.size_vars:
            params.append(f"{c_type(var.dtype)} {self.names.define(var, var.name)}")
        bounds = str(launch_dims(kernel).threads_per_block)
        min_blocks = max((f.min_blocks for f in called_device_functions(kernel.body)), default=0)
        if min_blocks:
            bounds += f", {min_blocks}"
        head = f'extern "C" __global__ void __launch_bounds__({bounds}) {kernel.name}({", ".join(params)})'
        with self.doc.block(head):
            if self.dynamic_shared:
                self.declare_dynamic_shared()
            else:
                for buffer in shared_buffers(kernel.body):
                    name = self.names.define(buffer, buffer.name)
                    count = allocation_bytes(buffer) // dt.storage_bytes(buffer.dtype)
                    self.doc.line(f"__shared__ __align__(16) {storage_type(buffer.dtype)} {name}[{count}];")
            self.stmt(kernel.body)

    def declare_dynamic_shared(self) -> None:
        """The block's dynamic shared memory, and each shared array as a pointer into it."""
        self.expr.helpers.add("tc_dynamic_shared")
        base = self.names.define(self, "tc_shared")
        offsets, total = dynamic_shared_layout(self.kernel.body)
        self.doc.line(f"TC_DYNAMIC_SHARED({base}, {total});")
        for buffer, offset in offsets:
            name = self.names.define(buffer, buffer.name)
            ctype = storage_type(buffer.dtype)
            self.doc.line(f"{ctype}* __restrict__ {name} = ({ctype}*)({base} + {offset});")

    # -- statements ------------------------------------------------------------------------------------------------
    def stmt(self, s: S.Stmt) -> None:
        doc, expr = self.doc, self.expr
        if isinstance(s, S.SeqStmt):
            for item in s.seq:
                self.stmt(item)
        elif isinstance(s, S.For):
            self.loop(s)
        elif isinstance(s, S.BufferStore):
            name = self.names.get(s.buffer, f"buffer {s.buffer.name}")
            if self._async_copy(s.buffer, s.value):
                assert isinstance(s.value, E.BufferLoad)
                src = self.names.get(s.value.buffer, f"buffer {s.value.buffer.name}")
                doc.line(f"tc_cp_async4({name} + {expr(s.indices[0])}, {src} + {expr(s.value.indices[0])});")
            else:
                doc.line(f"{name}[{expr(s.indices[0])}] = {expr(s.value)};")
        elif isinstance(s, S.IfThenElse):
            with doc.block(f"if ({expr(s.condition)})", "}" if s.else_case is None else "} else {"):
                self.stmt(s.then_case)
            if s.else_case is not None:
                with doc.indented():
                    self.stmt(s.else_case)
                doc.line("}")
        elif isinstance(s, S.Allocate):
            self.allocate(s)
        elif isinstance(s, S.LetStmt):
            self.bind_range(s.var, s.value)
            name = self.names.define(s.var, s.var.name)
            doc.line(f"const {c_type(s.var.dtype)} {name} = {expr(s.value)};")
            self.stmt(s.body)
        elif is_barrier(s):
            if self.async_copies:
                self.expr.helpers.add("tc_cp_async")
                doc.line("tc_cp_async_wait_all();")
            doc.line("__syncthreads();")
        elif isinstance(s, S.Evaluate) and isinstance(s.value, E.Call) and s.value.kind == "extern":
            doc.line(f"{expr(s.value)};")
        elif isinstance(s, S.NoOp):
            return
        else:
            name = type(s).__name__
            raise CudaCodegenError(f"kernel {self.kernel.name}: statement {name} cannot run on the GPU:\n{s}")

    def bind_range(self, var: E.Var, value: E.Expr) -> None:
        low, high = const_int_bound(value, self.expr.bounds)
        if low is not None and high is not None:
            self.expr.bounds[var] = (low, high)

    def loop(self, s: S.For) -> None:
        doc, expr = self.doc, self.expr
        if is_launch_loop(s):
            name = self.names.define(s.loop_var, s.loop_var.name)
            _, high = const_int_bound(s.extent, self.expr.bounds)
            self.expr.bounds[s.loop_var] = (0, max((high or 1) - 1, 0)) if high is not None else (0, 2**31 - 2)
            ctype = c_type(s.loop_var.dtype)  # long long for a loop fused past 2^31 iterations
            doc.line(f"const {ctype} {name} = ({ctype}){s.thread_tag};")
            self.stmt(s.body)
            return
        if s.kind is S.ForKind.PARALLEL:
            raise CudaCodegenError(
                f"kernel {self.kernel.name}: loop {s.loop_var.name} is marked parallel, which is for CPU targets; "
                "bind it to a GPU thread axis instead"
            )
        if s.kind is S.ForKind.THREAD_BINDING:
            raise CudaCodegenError(f"kernel {self.kernel.name}: loop {s.loop_var.name} is bound to {s.thread_tag!r}")
        copy = match_vector_copy(s, self.expr.bounds)
        if copy is not None:
            self.vector_copy(copy)
            return
        low, _ = const_int_bound(s.min, self.expr.bounds)
        _, high = const_int_bound(simplify(s.min + s.extent - 1, self.expr.bounds), self.expr.bounds)
        if low is not None and high is not None:
            self.expr.bounds[s.loop_var] = (low, max(low, high))
        name = self.names.define(s.loop_var, s.loop_var.name)
        ctype = c_type(s.loop_var.dtype)
        end = simplify(s.min + s.extent, self.expr.bounds)
        if s.kind in (S.ForKind.UNROLLED, S.ForKind.VECTORIZED) or self._unroll_by_pragma(s):
            doc.line("#pragma unroll")
        with doc.block(f"for ({ctype} {name} = {expr(s.min)}; {name} < {expr(end)}; ++{name})"):
            self.stmt(s.body)
        self.expr.bounds.pop(s.loop_var, None)

    def vector_copy(self, copy: VectorCopy) -> None:
        expr, vtype = self.expr, copy.vector_type
        dst = self.names.get(copy.dst.buffer, f"buffer {copy.dst.buffer.name}")
        src = self.names.get(copy.src.buffer, f"buffer {copy.src.buffer.name}")
        line = f"*({vtype}*)({dst} + {expr(copy.dst_base)}) = *(const {vtype}*)({src} + {expr(copy.src_base)});"
        if copy.lanes == 4 and self._async_copy(copy.dst.buffer, copy.src):
            line = f"tc_cp_async16({dst} + {expr(copy.dst_base)}, {src} + {expr(copy.src_base)});"
        if copy.condition is None:
            self.doc.line(line)
            return
        with self.doc.block(f"if ({expr(copy.condition)})"):
            self.doc.line(line)

    @staticmethod
    def _unroll_by_pragma(s: S.For) -> bool:
        """A loop with the pragma ``unroll_max_extent`` (n) and a constant extent of at most n is unrolled."""
        limit = dict(s.annotations).get(UNROLL_MAX_EXTENT)
        extent = E.const_int_value(simplify(s.extent))
        return isinstance(limit, int) and extent is not None and extent <= limit

    def _async_copy(self, dst: Buffer, value: E.Expr) -> bool:
        """Whether a store of ``value`` into ``dst`` prints as an asynchronous copy (see the module docstring)."""
        if not (self.async_copies and dst.scope == "shared" and isinstance(value, E.BufferLoad)):
            return False
        src = value.buffer
        if src.scope not in ("global", "") or src.dtype != dst.dtype or dt.lanes(value.dtype) != 1:
            return False
        if dt.storage_bytes(dst.dtype) != ASYNC_COPY_BYTES:
            return False
        self.expr.helpers.add("tc_cp_async")
        return True

    def allocate(self, s: S.Allocate) -> None:
        buffer = s.buffer
        if buffer.scope == "global":
            raise CudaCodegenError(
                f"kernel {self.kernel.name}: buffer {buffer.name} in global memory is allocated inside the kernel; "
                "compute its stage at the root (its own kernel) or give it local or shared scope"
            )
        if buffer.scope != "shared":  # shared arrays are declared at the top of the kernel
            count = allocation_bytes(buffer) // dt.storage_bytes(buffer.dtype)
            name = self.names.define(buffer, buffer.name)
            self.doc.line(f"{c_type(buffer.dtype)} {name}[{count}];")
        self.stmt(s.body)
