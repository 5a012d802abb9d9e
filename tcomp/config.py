"""One typed settings object for the whole compiler (instead of environment variables read deep in the code)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, fields, replace


@dataclass(frozen=True)
class Settings:
    """``verify_ir``: run the loop-IR verifier after every pass. ``dump_ir``: print the function after every pass.
    ``dump_stages``: the named build stages every build prints (as ``tcomp.build(..., dump=...)`` does for one).
    ``check_bounds``: build in checked mode (every access verifies its indices). ``build_cache``: reuse the code of a
    structurally equal function built before. ``build_cache_size``: how many compiled kernels the build cache keeps
    (the least recently used go first; each costs about 1 MiB), and as many the graph compiler's kernel cache; a
    dropped module or executor frees its kernels once no cache holds them. The parallel runtime's policy (applied
    when its pool is first compiled; ``tcomp.runtime.thread_pool.configure_pool`` changes it later):
    ``parallel_tasks_per_thread``: how many tasks a parallel loop is cut into per thread (claimed dynamically);
    ``thread_spin_count``: rounds idle pool threads spin before sleeping (also libgomp's ``GOMP_SPINCOUNT`` for the
    CUDA emulation, unless the user set ``OMP_WAIT_POLICY`` or ``GOMP_SPINCOUNT``); ``join_spin_count``: rounds the
    calling thread spins waiting for the last tasks of a loop before it yields its core to them;
    ``parallel_thread_limit``: at most this many threads per loop (0: as many as the target has cores);
    ``parallel_backoff_us``: the longest time parallel loops run serially after loops that lost to serial (the
    machine is busy: a worker was descheduled in a task), in microseconds; 0 never backs off; ``pin_threads``: keep
    each pool thread on a CPU of its own, not the calling thread's (Linux). ``compile_processes``: how many
    processes compile kernels' LLVM IR beside this one (``tcomp.runtime.llvm_pool``; -1: one per core, at most 4,
    none on one core; 0: every kernel compiles in this process)."""

    verify_ir: bool = False
    dump_ir: bool = False
    dump_stages: tuple[str, ...] = ()  # build stages to print as they are made ("tir.opt", "ll", "asm", "cu" ...)
    check_bounds: bool = False
    build_cache: bool = True
    build_cache_size: int = 128  # compiled kernels kept by the build cache (and by the graph's kernel cache)
    parallel_tasks_per_thread: int = 4
    thread_spin_count: int = 3000  # rounds idle pool threads spin before sleeping; 0 sleeps at once
    join_spin_count: int = 2000
    parallel_thread_limit: int = 0  # threads a parallel loop may use at most; 0: the target's cores
    parallel_backoff_us: int = 20000
    pin_threads: bool = True
    compile_processes: int = -1  # LLVM compile processes beside this one; -1: one per core (at most 4), 0: none


_current = Settings()


def current() -> Settings:
    return _current


@contextlib.contextmanager
def override(**changes: object) -> Iterator[Settings]:
    """Temporarily change settings: ``with tcomp.config.override(verify_ir=True): ...``."""
    global _current
    names = {f.name for f in fields(Settings)}
    unknown = set(changes) - names
    if unknown:
        raise TypeError(f"unknown settings {sorted(unknown)}; known: {sorted(names)}")
    previous = _current
    _current = replace(_current, **changes)
    try:
        yield _current
    finally:
        _current = previous


def set_settings(**changes: object) -> None:
    """Change settings for the rest of the process."""
    global _current
    _current = replace(_current, **changes)
