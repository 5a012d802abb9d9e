"""The thread pool's workers, emitted into the pool's LLVM module (``pool_ir``): the worker loop, each worker's
placement on a CPU (``settle``) and their start.

Placement (Linux). Each worker keeps to one CPU of those it may use, other than the one its creator ran on, the
workers on different CPUs where there are enough (``pin_workers``; the caller is never pinned). Left to the
scheduler, a worker woken from sleep can land on the CPU of the caller that woke it: Linux places a wakee on the
waker's CPU when the other CPUs look busy, as idle virtual CPUs that the host descheduled do. The two threads then
share a core until the load balancer moves one, milliseconds later (measured on a 2-core KVM guest: a 300 us loop
ran at serial speed for the first calls after every 20 ms pause, 345 us against 177 us pinned). The caller, never
pinned, can land on a worker's CPU all the same, and the balancer took about ten inferences to move it (seen on a
2-core znver4 guest: ShuffleNet at 6.4 ms against 5.2 once it moved). So the caller notes its
CPU (``sched_getcpu``) as it publishes each loop, and a worker that sees the caller on another CPU than the one it
avoids pins itself again, off the caller's CPU (the caller pinned to the worker's CPU: ShuffleNet 5.38 -> 3.33
ms, as fast as with the caller elsewhere).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import llvmlite.ir as ir

from tcomp.runtime.llvm_types import I8, I8_PTR, I32, I64, VOID
from tcomp.runtime.pool_layout import SEQ_SHIFT

if TYPE_CHECKING:
    from tcomp.runtime.pool_ir import PoolBuilder

_CPU_SET_BYTES = 128  # a cpu_set_t: CPUs 0-1023


def emit_worker(pool: PoolBuilder) -> ir.Function:
    """A worker thread: run each new job's tasks; between jobs spin, then sleep until the next one."""
    function = pool.function("tcomp_pool.worker", I8_PTR, [I8_PTR])
    entry = function.append_basic_block("entry")
    top = function.append_basic_block("top")
    work = function.append_basic_block("work")
    spin = function.append_basic_block("spin")
    spin_body = function.append_basic_block("spin.body")
    sleep = function.append_basic_block("sleep")
    wait = function.append_basic_block("sleep.wait")
    wait_body = function.append_basic_block("sleep.body")
    wake = function.append_basic_block("wake")
    bld = ir.IRBuilder(entry)
    last = bld.alloca(I64, name="last")
    rounds = bld.alloca(I64, name="rounds")
    start = bld.ptrtoint(function.args[0], I64)  # see start_workers
    bld.store(bld.and_(start, I64(0xFFFFFFFF)), last)
    place: Callable[[ir.IRBuilder, ir.Value], None] | None = None
    if pool.settle is not None:
        settle = pool.settle
        mask = bld.alloca(ir.ArrayType(I8, _CPU_SET_BYTES), name="allowed")
        pinned = bld.alloca(I32, name="pinned")
        bld.store(ir.Constant(mask.type.pointee, None), mask)  # no CPU, should the next call fail
        allowed = bld.bitcast(mask, I8_PTR)
        bld.call(pool.getaffinity, [I32(0), I64(_CPU_SET_BYTES), allowed])
        bld.store(I32(0), pinned)
        number = bld.trunc(bld.and_(bld.lshr(start, I64(32)), I64(0xFFFF)), I32)
        avoid = bld.alloca(I32, name="avoid")  # the CPU to keep off: the creator's, then the caller's
        bld.store(bld.sub(bld.trunc(bld.lshr(start, I64(48)), I32), I32(1)), avoid)

        def place(b: ir.IRBuilder, off: ir.Value) -> None:
            b.call(settle, [allowed, number, off, pinned])

        place(bld, bld.load(avoid))
    bld.branch(top)

    bld.position_at_end(top)
    seq = bld.lshr(bld.load_atomic(pool.word, "acquire", 8), I64(SEQ_SHIFT))
    bld.store(I64(0), rounds)
    bld.cbranch(bld.icmp_unsigned("!=", seq, bld.load(last)), work, spin)

    bld.position_at_end(work)
    if place is not None:  # the caller moved to another CPU (a pinned worker's, maybe): keep off that one
        caller = bld.load_atomic(pool.caller_cpu, "monotonic", 4)
        moved = bld.and_(bld.icmp_signed(">=", caller, I32(0)), bld.icmp_signed("!=", caller, bld.load(avoid)))
        with bld.if_then(moved, likely=False):
            bld.store(caller, avoid)
            bld.store(I32(0), pinned)  # pin again (when the policy pins), to the worker's CPU other than that
            place(bld, caller)
    bld.call(pool.run_tasks, [seq])
    bld.store(seq, last)
    bld.branch(top)

    bld.position_at_end(spin)  # no spinning while loops lose to serial: the spin takes a core the caller needs
    count = bld.load(rounds)
    losing = bld.icmp_signed(">", bld.load_atomic(pool.streak, "monotonic", 8), I64(0))
    limit = bld.select(losing, I64(0), bld.load_atomic(pool.worker_spin, "monotonic", 8))
    bld.cbranch(bld.icmp_signed("<", count, limit), spin_body, sleep)
    bld.position_at_end(spin_body)
    pool.relax(bld)
    bld.store(bld.add(count, I64(1)), rounds)
    now = bld.lshr(bld.load_atomic(pool.word, "monotonic", 8), I64(SEQ_SHIFT))
    bld.cbranch(bld.icmp_unsigned("!=", now, bld.load(last)), top, spin)

    bld.position_at_end(sleep)
    mutex, cond = pool.bytes_of(bld, pool.mutex), pool.bytes_of(bld, pool.cond)
    bld.call(pool.mutex_lock, [mutex])
    bld.atomic_rmw("add", pool.sleepers, I32(1), "seq_cst")
    bld.branch(wait)
    bld.position_at_end(wait)
    now = bld.lshr(bld.load_atomic(pool.word, "seq_cst", 8), I64(SEQ_SHIFT))
    bld.cbranch(bld.icmp_unsigned("==", now, bld.load(last)), wait_body, wake)
    bld.position_at_end(wait_body)
    bld.call(pool.cond_wait, [cond, mutex])
    bld.branch(wait)
    bld.position_at_end(wake)
    bld.atomic_rmw("sub", pool.sleepers, I32(1), "seq_cst")
    bld.call(pool.mutex_unlock, [mutex])
    if place is not None:
        place(bld, bld.load(avoid))
    bld.branch(top)
    return function

def emit_settle(pool: PoolBuilder) -> ir.Function:
    """``settle(allowed, number, avoid, pinned*)``, by worker ``number`` (from 1) as it starts and when it wakes:
    follow the policy's ``pin_workers``. Pinned, the worker may run only on the ``number``-th CPU (cycling) of
    the CPUs it was allowed at start (``allowed``, a ``cpu_set_t``) other than ``avoid``, the CPU its creator
    ran on or, once the caller of a loop ran elsewhere, the caller's; unpinned, on all of ``allowed``.
    ``*pinned`` is its state."""
    function = pool.function("tcomp_pool.settle", VOID, [I8_PTR, I32, I32, I32.as_pointer()])
    allowed, number, avoid, pinned = function.args
    blocks = {name: function.append_basic_block(name) for name in (
        "entry", "change", "unpin", "pin", "count.bit", "count.next", "counted", "find", "find.bit",
        "find.next", "done")}
    bld = ir.IRBuilder(blocks["entry"])
    bits = _CPU_SET_BYTES * 8
    single = bld.alloca(ir.ArrayType(I8, _CPU_SET_BYTES), name="single")
    index = bld.alloca(I32, name="index")
    seen = bld.alloca(I32, name="seen")
    want = bld.zext(bld.icmp_signed("!=", bld.load_atomic(pool.pin, "monotonic", 4), I32(0)), I32)
    bld.cbranch(bld.icmp_signed("==", want, bld.load(pinned)), blocks["done"], blocks["change"])
    bld.position_at_end(blocks["change"])
    bld.store(want, pinned)
    bld.cbranch(bld.icmp_signed("!=", want, I32(0)), blocks["pin"], blocks["unpin"])
    bld.position_at_end(blocks["unpin"])
    bld.call(pool.setaffinity, [I32(0), I64(_CPU_SET_BYTES), allowed])
    bld.branch(blocks["done"])

    def eligible(b: ir.IRBuilder, cpu: ir.Value) -> ir.Value:
        byte = b.load(b.gep(allowed, [b.lshr(cpu, I32(3))], inbounds=True))
        bit = b.and_(b.lshr(byte, b.trunc(b.and_(cpu, I32(7)), I8)), I8(1))
        return b.and_(b.icmp_unsigned("!=", bit, I8(0)), b.icmp_signed("!=", cpu, avoid))

    # two passes over the bits: how many CPUs are eligible, then which is the worker's (the second pass finds
    # it: its rank is below the count)
    for phase, after in (("count", "counted"), ("find", "done")):
        bld.position_at_end(blocks["pin"] if phase == "count" else blocks["counted"])
        if phase == "find":
            total = bld.load(seen)
            bld.cbranch(bld.icmp_signed(">", total, I32(0)), blocks["find"], blocks["done"])
            bld.position_at_end(blocks["find"])
            target = bld.urem(bld.sub(number, I32(1)), total)
        bld.store(I32(0), index)
        bld.store(I32(0), seen)
        bld.branch(blocks[f"{phase}.bit"])
        bld.position_at_end(blocks[f"{phase}.bit"])
        cpu = bld.load(index)
        bld.cbranch(bld.icmp_signed("<", cpu, I32(bits)), blocks[f"{phase}.next"], blocks[after])
        bld.position_at_end(blocks[f"{phase}.next"])
        hit = eligible(bld, cpu)
        if phase == "find":
            chosen = bld.and_(hit, bld.icmp_signed("==", bld.load(seen), target))
            take = function.append_basic_block("find.take")
            skip = function.append_basic_block("find.skip")
            bld.cbranch(chosen, take, skip)
            bld.position_at_end(take)
            bld.store(ir.Constant(single.type.pointee, None), single)
            raw = bld.bitcast(single, I8_PTR)
            bld.store(bld.shl(I8(1), bld.trunc(bld.and_(cpu, I32(7)), I8)),
                      bld.gep(raw, [bld.lshr(cpu, I32(3))], inbounds=True))
            bld.call(pool.setaffinity, [I32(0), I64(_CPU_SET_BYTES), raw])
            bld.branch(blocks["done"])
            bld.position_at_end(skip)
        bld.store(bld.add(bld.load(seen), bld.zext(hit, I32)), seen)
        bld.store(bld.add(cpu, I32(1)), index)
        bld.branch(blocks[f"{phase}.bit"])
    bld.position_at_end(blocks["done"])
    bld.ret_void()
    return function

def emit_start_workers(pool: PoolBuilder) -> ir.Function:
    """``start_workers(want, seq) -> started``: start detached workers (that have seen job ``seq``) until there
    are ``want``; returns how many there are (fewer if the system refuses threads). A worker's argument packs
    ``seq`` (bits 0-31), its number from 1 (bits 32-47) and 1 + the CPU the caller runs on (bits 48-63; 0:
    unknown)."""
    function = pool.function("tcomp_pool.start_workers", I32, [I32, I64])
    want, seq = function.args
    entry = function.append_basic_block("entry")
    loop = function.append_basic_block("loop")
    create = function.append_basic_block("create")
    created = function.append_basic_block("created")
    done = function.append_basic_block("done")
    bld = ir.IRBuilder(entry)
    handle = bld.alloca(I64, name="thread")
    have = bld.alloca(I32, name="have")
    bld.store(bld.load(pool.workers), have)
    caller = I64(0)
    if pool.linux:
        cpu = bld.call(pool.getcpu, [])
        known = bld.and_(bld.icmp_signed(">=", cpu, I32(0)), bld.icmp_signed("<", cpu, I32(_CPU_SET_BYTES * 8)))
        caller = bld.shl(bld.zext(bld.select(known, bld.add(cpu, I32(1)), I32(0)), I64), I64(48))
    bld.branch(loop)
    bld.position_at_end(loop)
    bld.cbranch(bld.icmp_signed("<", bld.load(have), want), create, done)
    bld.position_at_end(create)
    number = bld.shl(bld.zext(bld.add(bld.load(have), I32(1)), I64), I64(32))
    argument = bld.or_(bld.or_(bld.and_(seq, I64(0xFFFFFFFF)), number), caller)
    status = bld.call(pool.pthread_create, [handle, ir.Constant(I8_PTR, None), pool.worker,
                                            bld.inttoptr(argument, I8_PTR)])
    bld.cbranch(bld.icmp_signed("==", status, I32(0)), created, done)
    bld.position_at_end(created)
    bld.call(pool.pthread_detach, [bld.load(handle)])
    bld.store(bld.add(bld.load(have), I32(1)), have)
    bld.branch(loop)
    bld.position_at_end(done)
    result = bld.load(have)
    bld.store(result, pool.workers)
    bld.ret(result)
    return function
