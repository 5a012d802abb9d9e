"""The parallel runtime's thread pool, emitted as an LLVM module (no C compiler needed): kernels call

    void tcomp_parallel_for(void (*task)(i8* closure, i64 index, i64 count), i8* closure, i64 extent,
                            i32 max_threads)

to run ``task(closure, k, count)`` for every ``k < count``, where ``count`` (at most ``extent``) is chosen by the
pool: ``tasks_per_thread`` tasks per thread taking part, or one per iteration when that number does not divide an
extent of up to twice it (tasks of unequal size end unevenly). The calling thread works too, and the call returns
when every task has finished.

Scheduling is dynamic: a task is claimed by whichever thread gets to it first (one compare-and-swap on a shared
word), so a thread that the operating system has not scheduled yet (the machine is busy) takes no task, and the
others, the caller included, do its share. A fork-join pool that hands each thread one fixed share (libgomp's
``GOMP_parallel``) instead waits for the slowest thread to wake up, run its share and arrive at the closing barrier:
on a loaded machine every parallel loop then costs a scheduler time slice.

Protocol. One 64-bit word holds the job's sequence number (bits 40-63), its task count (bits 20-39) and the next
unclaimed task (bits 0-19). The caller (holding the pool: ``busy``, taken by compare-and-swap; a nested or concurrent
caller that cannot take it runs its loop serially) writes the task function and closure, zeroes ``done``, then
publishes the word with the next sequence number. Any thread claims task ``k`` by swapping ``(seq, count, k)`` for
``(seq, count, k + 1)``; only after a successful claim does it read the function and closure, which cannot change
until the claimed task is done because the caller waits until ``done == count`` before it returns. A stale thread's
swap fails on the changed word.

Idle workers spin ``worker_spin`` rounds (a ``pause`` each) watching the sequence number, then sleep on a condition
variable (counted in ``sleepers``; the caller signals only when someone sleeps). The caller waits for the last tasks
spinning ``master_spin`` rounds, then yielding its core (``sched_yield``) to the threads it waits for. Workers are
started on first use, up to ``max_threads - 1``, and restarted in a forked child (the pool notes the pid that
started them). ``tcomp_pool_configure(tasks_per_thread, worker_spin, master_spin, thread_limit, backoff_us,
pin_workers)`` changes the policy (``PoolPolicy``).

Placement (Linux): each worker keeps to a CPU of its own, off the caller's (``pool_workers_ir``).

Serial backoff. Dynamic claiming cannot help when a worker is descheduled in the middle of a task it claimed: the
caller then waits for the operating system to run that worker again, on a busy machine a time slice or more. Nor does
it help when no worker gets a core at all: the caller runs every task, having paid a system call to wake workers that
then take cores from whatever else runs. So the caller times each loop (``clock_gettime``, monotonic): from publishing
the job to the end of its own tasks (``mine`` of ``count`` tasks), and to the last task's end. The loop lost to serial
when it took longer than the caller alone would have (its time per task times ``count``, with 1/8 slack), or when the
caller ran every task itself for over 100 us (a worker woken from sleep is running well within that on an idle
machine). After a loss the next loops run serially for twice the losing loop's time, doubled after every further loss
in a row, at most ``backoff_us`` microseconds; a loop that was shared and ran faster than serially ends the streak (a
quick one the caller ran alone neither loses nor wins, unless no loop lost for 50 ms: a model of short loops, whose
probes end before a sleeping worker wakes, would otherwise keep the streak, and its workers asleep, long after the
machine went quiet). The backoff is proportional to the losing loops' time, so a
loop that lost by chance on an idle machine costs little; on a busy one the streak grows and the kernels run on the
caller, with a parallel probe now and then, until a probe finds the workers responsive again. While a streak lasts,
idle workers sleep at once instead of spinning (measured on 2 busy cores: spinning workers alone made ShuffleNet 1.5x
slower than running it serially, burning time slices the caller needed). Loops the workers ran entirely (``mine == 0``)
are not judged, and none is when ``backoff_us`` is 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import llvmlite.ir as ir

from tcomp.runtime.llvm_types import I8, I8_PTR, I32, I64, VOID
from tcomp.runtime.pool_layout import SEQ_MASK, SEQ_SHIFT, TASK_BITS, TASK_MASK, TASK_TYPE
from tcomp.runtime.pool_workers_ir import emit_settle, emit_start_workers, emit_worker

ENTRY = "tcomp_parallel_for"
CONFIGURE = "tcomp_pool_configure"
JUDGE = "tcomp_pool_judge"
STATE = "tcomp_pool_state"
MAX_THREADS = 256
# the C library functions the pool calls: no kernel may define a symbol of these names
LIBC_FUNCTIONS = frozenset({"pthread_create", "pthread_detach", "pthread_mutex_init", "pthread_mutex_lock",
                            "pthread_mutex_unlock", "pthread_cond_init", "pthread_cond_wait", "pthread_cond_broadcast",
                            "sched_yield", "getpid", "clock_gettime", "sched_getcpu", "sched_getaffinity",
                            "sched_setaffinity"})
_ALONE_NS = 100_000  # a worker that slept is awake well within this on an idle machine
_QUIET_NS = 50_000_000  # a streak of lost loops ends when none lost for this long
_SYNC_BYTES = 128  # room for a pthread_mutex_t / pthread_cond_t on every libc tcomp runs on


@dataclass(frozen=True)
class PoolPolicy:
    """How the pool schedules: ``tasks_per_thread`` tasks per thread taking part in a loop; ``worker_spin`` rounds an
    idle worker spins before it sleeps; ``master_spin`` rounds the caller spins waiting for the last tasks before it
    yields its core; ``thread_limit`` caps the threads of every loop (0: as many as the kernel was compiled for);
    ``backoff_us`` is the longest serial backoff after loops that lost to serial, in microseconds (0: never back
    off; see the module docstring); ``pin_workers`` keeps each worker on a CPU of its own (Linux; see
    ``pool_workers_ir``; workers follow a change when they next wake)."""

    tasks_per_thread: int = 4
    worker_spin: int = 3000
    master_spin: int = 2000
    thread_limit: int = 0
    backoff_us: int = 20000
    pin_workers: bool = True

    def __post_init__(self) -> None:
        for name in ("tasks_per_thread", "worker_spin", "master_spin", "thread_limit", "backoff_us"):
            value = getattr(self, name)
            least = 1 if name == "tasks_per_thread" else 0
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ValueError(f"pool policy: {name} must be an int of at least {least}, got {value!r}")
        if not isinstance(self.pin_workers, bool):
            raise ValueError(f"pool policy: pin_workers must be a bool, got {self.pin_workers!r}")

    def values(self) -> tuple[int, int, int, int, int, int]:
        return (self.tasks_per_thread, self.worker_spin, self.master_spin, self.thread_limit, self.backoff_us,
                int(self.pin_workers))


def declare_entry(module: ir.Module) -> ir.Function:
    """Declare ``tcomp_parallel_for`` in a kernel's module."""
    existing = module.globals.get(ENTRY)
    if isinstance(existing, ir.Function):
        return existing
    return ir.Function(module, ir.FunctionType(VOID, [TASK_TYPE.as_pointer(), I8_PTR, I64, I32]), name=ENTRY)


class PoolBuilder:
    """Emits the pool's globals and functions into ``module``."""

    def __init__(self, module: ir.Module, triple: str, policy: PoolPolicy) -> None:
        self.module = module
        self.triple = triple
        self.word = self._global("tcomp_pool.word", I64, 0, 64)
        self.task = self._global("tcomp_pool.task", TASK_TYPE.as_pointer(), None, 8)
        self.closure = self._global("tcomp_pool.closure", I8_PTR, None, 8)
        self.done = self._global("tcomp_pool.done", I64, 0, 64)
        self.busy = self._global("tcomp_pool.busy", I32, 0, 64)
        self.sleepers = self._global("tcomp_pool.sleepers", I32, 0, 64)
        self.workers = self._global("tcomp_pool.workers", I32, 0, 8)
        self.pid = self._global("tcomp_pool.pid", I32, 0, 8)
        self.tasks_per_thread = self._global("tcomp_pool.tasks_per_thread", I64, policy.tasks_per_thread, 8)
        self.worker_spin = self._global("tcomp_pool.worker_spin", I64, policy.worker_spin, 8)
        self.master_spin = self._global("tcomp_pool.master_spin", I64, policy.master_spin, 8)
        self.thread_limit = self._global("tcomp_pool.thread_limit", I32, policy.thread_limit, 8)
        self.backoff_ns = self._global("tcomp_pool.backoff_ns", I64, policy.backoff_us * 1000, 8)
        self.serial_until = self._global("tcomp_pool.serial_until", I64, 0, 64)  # monotonic ns
        self.streak = self._global("tcomp_pool.streak", I64, 0, 8)  # loops lost to serial in a row
        self.lost_loops = self._global("tcomp_pool.lost_loops", I64, 0, 8)
        self.serial_loops = self._global("tcomp_pool.serial_loops", I64, 0, 8)  # run serially by a backoff
        self.last_loss = self._global("tcomp_pool.last_loss", I64, 0, 8)  # monotonic ns
        self.pin = self._global("tcomp_pool.pin", I32, int(policy.pin_workers), 4)
        self.caller_cpu = self._global("tcomp_pool.caller_cpu", I32, -1, 4)  # the CPU of the last loop's caller
        sync = ir.ArrayType(I8, _SYNC_BYTES)
        self.mutex = self._global("tcomp_pool.mutex", sync, None, 64)
        self.cond = self._global("tcomp_pool.cond", sync, None, 64)
        self._libc()

    def _global(self, name: str, typ: ir.Type, value: int | None, align: int) -> ir.GlobalVariable:
        variable = ir.GlobalVariable(self.module, typ, name)
        variable.linkage = "internal"
        variable.initializer = ir.Constant(typ, None) if value is None else ir.Constant(typ, value)
        variable.align = align
        return variable

    def _libc(self) -> None:
        declare = self._declare
        self.pthread_create = declare("pthread_create", I32, [I64.as_pointer(), I8_PTR,
                                                              ir.FunctionType(I8_PTR, [I8_PTR]).as_pointer(), I8_PTR])
        self.pthread_detach = declare("pthread_detach", I32, [I64])
        self.mutex_init = declare("pthread_mutex_init", I32, [I8_PTR, I8_PTR])
        self.mutex_lock = declare("pthread_mutex_lock", I32, [I8_PTR])
        self.mutex_unlock = declare("pthread_mutex_unlock", I32, [I8_PTR])
        self.cond_init = declare("pthread_cond_init", I32, [I8_PTR, I8_PTR])
        self.cond_wait = declare("pthread_cond_wait", I32, [I8_PTR, I8_PTR])
        self.cond_broadcast = declare("pthread_cond_broadcast", I32, [I8_PTR])
        self.sched_yield = declare("sched_yield", I32, [])
        self.getpid = declare("getpid", I32, [])
        self.timespec = ir.LiteralStructType([I64, I64])
        self.clock_gettime = declare("clock_gettime", I32, [I32, self.timespec.as_pointer()])
        self.linux = "linux" in self.triple  # CPU affinity: glibc's and musl's sched_* functions
        if self.linux:
            self.getcpu = declare("sched_getcpu", I32, [])
            self.getaffinity = declare("sched_getaffinity", I32, [I32, I64, I8_PTR])
            self.setaffinity = declare("sched_setaffinity", I32, [I32, I64, I8_PTR])
        if self.triple.startswith(("x86_64", "i686", "i386")):
            self.pause: ir.Function | None = declare("llvm.x86.sse2.pause", VOID, [])
            self.pause_args: list[ir.Value] = []
        elif self.triple.startswith(("aarch64", "arm64")):
            self.pause = declare("llvm.aarch64.hint", VOID, [I32])
            self.pause_args = [I32(1)]  # YIELD
        else:
            self.pause = None
            self.pause_args = []

    def _declare(self, name: str, ret: ir.Type, args: list[ir.Type]) -> ir.Function:
        return ir.Function(self.module, ir.FunctionType(ret, args), name=name)

    def function(self, name: str, ret: ir.Type, args: list[ir.Type], external: bool = False) -> ir.Function:
        function = ir.Function(self.module, ir.FunctionType(ret, args), name=name)
        if not external:
            function.linkage = "internal"
        return function

    @staticmethod
    def bytes_of(bld: ir.IRBuilder, variable: ir.GlobalVariable) -> ir.Value:
        return bld.bitcast(variable, I8_PTR)

    def monotonic_clock(self) -> int:
        """``CLOCK_MONOTONIC`` of the target's C library."""
        if "apple" in self.triple or "darwin" in self.triple:
            return 6
        if "freebsd" in self.triple:
            return 4
        return 1

    def now(self, bld: ir.IRBuilder, spec: ir.Value) -> ir.Value:
        """Monotonic nanoseconds (``spec``: a ``timespec`` alloca)."""
        bld.call(self.clock_gettime, [I32(self.monotonic_clock()), spec])
        seconds = bld.load(bld.gep(spec, [I32(0), I32(0)], inbounds=True))
        nanoseconds = bld.load(bld.gep(spec, [I32(0), I32(1)], inbounds=True))
        return bld.add(bld.mul(seconds, I64(1_000_000_000)), nanoseconds)

    def relax(self, bld: ir.IRBuilder) -> None:
        if self.pause is not None:
            bld.call(self.pause, self.pause_args)

    # -- the pieces ------------------------------------------------------------------------------------------------
    def emit(self) -> None:
        self.run_tasks = self._emit_run_tasks()
        self.judge = self._emit_judge()
        self.settle = emit_settle(self) if self.linux else None
        self.worker = emit_worker(self)
        self.start_workers = emit_start_workers(self)
        self._emit_parallel_for()
        self._emit_configure()
        self._emit_observe()

    def _emit_run_tasks(self) -> ir.Function:
        """``run_tasks(seq) -> ran``: claim and run tasks of job ``seq`` until none is left (or a newer job began);
        returns how many it ran."""
        function = self.function("tcomp_pool.run_tasks", I64, [I64])
        (seq,) = function.args
        entry = function.append_basic_block("entry")
        loop = function.append_basic_block("claim")
        check = function.append_basic_block("check")
        swap = function.append_basic_block("swap")
        run = function.append_basic_block("run")
        done = function.append_basic_block("done")
        bld = ir.IRBuilder(entry)
        ran = bld.alloca(I64, name="ran")
        bld.store(I64(0), ran)
        bld.branch(loop)
        bld.position_at_end(loop)
        word = bld.load_atomic(self.word, "acquire", 8)
        same_job = bld.icmp_unsigned("==", bld.lshr(word, I64(SEQ_SHIFT)), seq)
        bld.cbranch(same_job, check, done)
        bld.position_at_end(check)
        index = bld.and_(word, I64(TASK_MASK))
        count = bld.and_(bld.lshr(word, I64(TASK_BITS)), I64(TASK_MASK))
        bld.cbranch(bld.icmp_unsigned("<", index, count), swap, done)
        bld.position_at_end(swap)
        result = bld.cmpxchg(self.word, word, bld.add(word, I64(1)), "acq_rel", "acquire")
        bld.cbranch(bld.extract_value(result, 1), run, loop)
        bld.position_at_end(run)
        task = bld.load(self.task, align=8)
        closure = bld.load(self.closure, align=8)
        bld.call(task, [closure, index, count])
        bld.atomic_rmw("add", self.done, I64(1), "release")
        bld.store(bld.add(bld.load(ran), I64(1)), ran)
        bld.branch(loop)
        bld.position_at_end(done)
        bld.ret(bld.load(ran))
        return function

    def _emit_parallel_for(self) -> None:
        function = self.function(ENTRY, VOID, [TASK_TYPE.as_pointer(), I8_PTR, I64, I32], external=True)
        task, closure, extent, max_threads = function.args
        task.name, closure.name, extent.name, max_threads.name = "task", "closure", "extent", "max_threads"
        blocks = {name: function.append_basic_block(name) for name in (
            "entry", "try", "owned", "restart", "started", "publish", "signal", "join", "join.wait", "join.spin",
            "join.yield", "finish", "release", "serial", "empty")}
        bld = ir.IRBuilder(blocks["entry"])
        threads = bld.select(bld.icmp_signed("<", max_threads, I32(MAX_THREADS)), max_threads, I32(MAX_THREADS))
        limit = bld.load_atomic(self.thread_limit, "monotonic", 4)
        limited = bld.and_(bld.icmp_signed(">", limit, I32(0)), bld.icmp_signed("<", limit, threads))
        threads = bld.select(limited, limit, threads)
        several = bld.and_(bld.icmp_signed(">", threads, I32(1)), bld.icmp_signed(">", extent, I64(1)))
        positive = bld.icmp_signed(">", extent, I64(0))
        bld.cbranch(positive, blocks["try"], blocks["empty"])

        bld.position_at_end(blocks["try"])  # take the pool, or run serially when one thread would do or it is taken
        spec = _entry_alloca(function, self.timespec, "now")
        backoff = function.append_basic_block("backoff")
        take = function.append_basic_block("take")
        bld.cbranch(several, backoff, blocks["serial"])
        bld.position_at_end(backoff)  # serially while a backoff lasts (see the module docstring)
        until = bld.load_atomic(self.serial_until, "monotonic", 8)
        backing_off = function.append_basic_block("backoff.check")
        bld.cbranch(bld.icmp_signed(">", until, I64(0)), backing_off, take)
        bld.position_at_end(backing_off)
        backed_off = function.append_basic_block("backoff.serial")
        bld.cbranch(bld.icmp_signed("<", self.now(bld, spec), until), backed_off, take)
        bld.position_at_end(backed_off)
        bld.atomic_rmw("add", self.serial_loops, I64(1), "monotonic")
        bld.branch(blocks["serial"])
        bld.position_at_end(take)
        result = bld.cmpxchg(self.busy, I32(0), I32(1), "acquire", "monotonic")
        bld.cbranch(bld.extract_value(result, 1), blocks["owned"], blocks["serial"])

        bld.position_at_end(blocks["owned"])
        me = bld.call(self.getpid, [])
        bld.cbranch(bld.icmp_signed("!=", bld.load(self.pid), me), blocks["restart"], blocks["started"])

        bld.position_at_end(blocks["restart"])  # first use, or a forked child: none of the workers exist here
        bld.store(I32(0), self.workers)
        bld.store_atomic(I32(0), self.sleepers, "seq_cst", 4)
        bld.call(self.mutex_init, [self.bytes_of(bld, self.mutex), ir.Constant(I8_PTR, None)])
        bld.call(self.cond_init, [self.bytes_of(bld, self.cond), ir.Constant(I8_PTR, None)])
        bld.store(me, self.pid)
        bld.branch(blocks["started"])

        bld.position_at_end(blocks["started"])
        word = bld.load_atomic(self.word, "monotonic", 8)
        seq = bld.lshr(word, I64(SEQ_SHIFT))
        workers = bld.call(self.start_workers, [bld.sub(threads, I32(1)), seq])
        no_workers = bld.icmp_signed("<=", workers, I32(0))
        release_then_serial = function.append_basic_block("no_workers")
        bld.cbranch(no_workers, release_then_serial, blocks["publish"])
        bld.position_at_end(release_then_serial)
        bld.store_atomic(I32(0), self.busy, "release", 4)
        bld.branch(blocks["serial"])

        bld.position_at_end(blocks["publish"])
        team = bld.sext(bld.add(bld.select(bld.icmp_signed("<", workers, bld.sub(threads, I32(1))), workers,
                                           bld.sub(threads, I32(1))), I32(1)), I64)
        per_thread = bld.load_atomic(self.tasks_per_thread, "monotonic", 8)
        wanted = bld.mul(team, per_thread)
        # an extent up to twice that which it does not divide: a task per iteration (12 iterations over 8 tasks of
        # 1 and 2, claimed in turn by 2 threads, end 7/6 of an even split late)
        uneven = bld.and_(bld.icmp_signed("<=", extent, bld.add(wanted, wanted)),
                          bld.icmp_signed("!=", bld.srem(extent, wanted), I64(0)))
        count = bld.select(bld.or_(uneven, bld.icmp_signed("<", extent, wanted)), extent, wanted)
        count = bld.select(bld.icmp_signed("<", count, I64(TASK_MASK)), count, I64(TASK_MASK))
        bld.store(task, self.task, align=8)
        bld.store(closure, self.closure, align=8)
        bld.store_atomic(I64(0), self.done, "monotonic", 8)
        if self.settle is not None:
            bld.store_atomic(bld.call(self.getcpu, []), self.caller_cpu, "monotonic", 4)
        started_at = self.now(bld, spec)
        next_seq = bld.and_(bld.add(seq, I64(1)), I64(SEQ_MASK))
        published = bld.or_(bld.shl(next_seq, I64(SEQ_SHIFT)), bld.shl(count, I64(TASK_BITS)))
        bld.store_atomic(published, self.word, "seq_cst", 8)
        sleeping = bld.load_atomic(self.sleepers, "seq_cst", 4)
        bld.cbranch(bld.icmp_signed(">", sleeping, I32(0)), blocks["signal"], blocks["join"])

        bld.position_at_end(blocks["signal"])
        mutex = self.bytes_of(bld, self.mutex)
        bld.call(self.mutex_lock, [mutex])
        bld.call(self.cond_broadcast, [self.bytes_of(bld, self.cond)])
        bld.call(self.mutex_unlock, [mutex])
        bld.branch(blocks["join"])

        bld.position_at_end(blocks["join"])
        mine = bld.call(self.run_tasks, [next_seq])
        own_done_at = self.now(bld, spec)
        rounds = _entry_alloca(function, I64, "rounds")
        bld.store(I64(0), rounds)
        bld.branch(blocks["join.wait"])
        bld.position_at_end(blocks["join.wait"])
        finished = bld.load_atomic(self.done, "acquire", 8)
        bld.cbranch(bld.icmp_signed(">=", finished, count), blocks["release"], blocks["join.spin"])
        bld.position_at_end(blocks["join.spin"])
        spun = bld.load(rounds)
        spin_more = bld.icmp_signed("<", spun, bld.load_atomic(self.master_spin, "monotonic", 8))
        spin_step = function.append_basic_block("join.pause")
        bld.cbranch(spin_more, spin_step, blocks["join.yield"])
        bld.position_at_end(spin_step)
        self.relax(bld)
        bld.store(bld.add(spun, I64(1)), rounds)
        bld.branch(blocks["join.wait"])
        bld.position_at_end(blocks["join.yield"])
        bld.call(self.sched_yield, [])
        bld.branch(blocks["join.wait"])

        bld.position_at_end(blocks["release"])
        bld.call(self.judge, [started_at, own_done_at, self.now(bld, spec), mine, count])
        bld.store_atomic(I32(0), self.busy, "release", 4)
        bld.branch(blocks["finish"])

        bld.position_at_end(blocks["serial"])
        bld.call(task, [closure, I64(0), I64(1)])
        bld.branch(blocks["finish"])

        bld.position_at_end(blocks["empty"])
        bld.branch(blocks["finish"])
        bld.position_at_end(blocks["finish"])
        bld.ret_void()

    def _emit_judge(self) -> ir.Function:
        """``judge(start, own_done, end, mine, count)`` after a parallel loop, by the caller holding the pool: start
        or extend the serial backoff when the loop lost to serial, end the streak when it won (the module docstring
        states the rule). Times in monotonic nanoseconds."""
        function = self.function("tcomp_pool.judge", VOID, [I64] * 5)
        start, own_done, end, mine, count = function.args
        entry = function.append_basic_block("entry")
        judged = function.append_basic_block("judge")
        lose = function.append_basic_block("lost")
        win = function.append_basic_block("won")
        after = function.append_basic_block("done")
        bld = ir.IRBuilder(entry)
        total, own = bld.sub(end, start), bld.sub(own_done, start)
        longest = bld.load_atomic(self.backoff_ns, "monotonic", 8)
        bld.cbranch(bld.and_(bld.icmp_signed(">", mine, I64(0)), bld.icmp_signed(">", longest, I64(0))), judged, after)
        bld.position_at_end(judged)
        # total > own / mine * count * 9 / 8, multiplied out (nanoseconds times tasks stay far below 2**63)
        slower = bld.icmp_signed(">", bld.mul(bld.mul(total, mine), I64(8)), bld.mul(bld.mul(own, count), I64(9)))
        alone = bld.icmp_signed(">=", mine, count)
        alone_long = bld.and_(alone, bld.icmp_signed(">", own, I64(_ALONE_NS)))
        won = function.append_basic_block("maybe.won")
        bld.cbranch(bld.or_(slower, alone_long), lose, won)
        bld.position_at_end(won)  # a quick loop the caller ran alone is no evidence either way...
        quiet = bld.icmp_signed(">", bld.sub(end, bld.load_atomic(self.last_loss, "monotonic", 8)), I64(_QUIET_NS))
        bld.cbranch(bld.and_(alone, bld.not_(quiet)), after, win)  # ...unless no loop lost for a while
        bld.position_at_end(lose)
        streak = bld.add(bld.load_atomic(self.streak, "monotonic", 8), I64(1))
        bld.store_atomic(streak, self.streak, "monotonic", 8)
        bld.store_atomic(end, self.last_loss, "monotonic", 8)
        bld.atomic_rmw("add", self.lost_loops, I64(1), "monotonic")
        shift = bld.select(bld.icmp_signed("<", streak, I64(20)), streak, I64(20))
        penalty = bld.shl(total, shift)
        penalty = bld.select(bld.icmp_signed("<", penalty, longest), penalty, longest)
        bld.store_atomic(bld.add(end, penalty), self.serial_until, "monotonic", 8)
        bld.branch(after)
        bld.position_at_end(win)
        bld.store_atomic(I64(0), self.streak, "monotonic", 8)
        bld.branch(after)
        bld.position_at_end(after)
        bld.ret_void()
        return function

    def _emit_observe(self) -> None:
        """``tcomp_pool_judge(start, own_done, end, mine, count) -> 0`` judges a loop of those times as the pool does
        after each of its loops (or returns 1 when the pool is in use); ``tcomp_pool_state(i64* out)`` writes the
        streak of lost loops, the end of the backoff (monotonic ns), and how many loops lost and how many ran
        serially because of a backoff since the pool was compiled."""
        function = self.function(JUDGE, I32, [I64] * 5, external=True)
        entry = function.append_basic_block("entry")
        take = function.append_basic_block("take")
        refuse = function.append_basic_block("refuse")
        bld = ir.IRBuilder(entry)
        result = bld.cmpxchg(self.busy, I32(0), I32(1), "acquire", "monotonic")
        bld.cbranch(bld.extract_value(result, 1), take, refuse)
        bld.position_at_end(take)
        bld.call(self.judge, list(function.args))
        bld.store_atomic(I32(0), self.busy, "release", 4)
        bld.ret(I32(0))
        bld.position_at_end(refuse)
        bld.ret(I32(1))

        function = self.function(STATE, VOID, [I64.as_pointer()], external=True)
        (out,) = function.args
        bld = ir.IRBuilder(function.append_basic_block("entry"))
        values = [bld.load_atomic(self.streak, "monotonic", 8), bld.load_atomic(self.serial_until, "monotonic", 8),
                  bld.load_atomic(self.lost_loops, "monotonic", 8), bld.load_atomic(self.serial_loops, "monotonic", 8)]
        for position, value in enumerate(values):
            bld.store(value, bld.gep(out, [I64(position)]))
        bld.ret_void()

    def _emit_configure(self) -> None:
        """``tcomp_pool_configure(tasks_per_thread, worker_spin, master_spin, thread_limit, backoff_us, pin) -> 0``,
        or 1 when the pool is in use (nothing changes then). Non-positive task counts mean one task per thread. It
        ends a backoff under way."""
        function = self.function(CONFIGURE, I32, [I64, I64, I64, I32, I64, I32], external=True)
        per_thread, worker_spin, master_spin, thread_limit, backoff_us, pin = function.args
        entry = function.append_basic_block("entry")
        take = function.append_basic_block("set")
        refuse = function.append_basic_block("refuse")
        bld = ir.IRBuilder(entry)
        result = bld.cmpxchg(self.busy, I32(0), I32(1), "acquire", "monotonic")
        bld.cbranch(bld.extract_value(result, 1), take, refuse)
        bld.position_at_end(take)
        one = bld.select(bld.icmp_signed("<", per_thread, I64(1)), I64(1), per_thread)
        bld.store_atomic(one, self.tasks_per_thread, "monotonic", 8)
        bld.store_atomic(_at_least_zero(bld, worker_spin), self.worker_spin, "monotonic", 8)
        bld.store_atomic(_at_least_zero(bld, master_spin), self.master_spin, "monotonic", 8)
        positive_limit = bld.select(bld.icmp_signed("<", thread_limit, I32(0)), I32(0), thread_limit)
        bld.store_atomic(positive_limit, self.thread_limit, "monotonic", 4)
        bld.store_atomic(bld.mul(_at_least_zero(bld, backoff_us), I64(1000)), self.backoff_ns, "monotonic", 8)
        bld.store_atomic(bld.zext(bld.icmp_signed("!=", pin, I32(0)), I32), self.pin, "monotonic", 4)
        bld.store_atomic(I64(0), self.serial_until, "monotonic", 8)
        bld.store_atomic(I64(0), self.streak, "monotonic", 8)
        bld.store_atomic(I32(0), self.busy, "release", 4)
        bld.ret(I32(0))
        bld.position_at_end(refuse)
        bld.ret(I32(1))


def _at_least_zero(bld: ir.IRBuilder, value: ir.Value) -> ir.Value:
    return bld.select(bld.icmp_signed("<", value, I64(0)), I64(0), value)


def _entry_alloca(function: ir.Function, typ: ir.Type, name: str) -> ir.Value:
    bld = ir.IRBuilder(function.entry_basic_block)
    bld.position_at_start(function.entry_basic_block)
    return bld.alloca(typ, name=name)


def pool_module(triple: str, policy: PoolPolicy, data_layout: str = "") -> str:
    """The LLVM assembly of the pool for ``triple`` with ``policy`` (see the module docstring)."""
    module = ir.Module(name="tcomp_pool")
    module.triple = triple
    if data_layout:
        module.data_layout = data_layout
    PoolBuilder(module, triple, policy).emit()
    return str(module)
