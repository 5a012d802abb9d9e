"""What a block of a schedule needs (threads, shared memory, registers) and whether a target has it.

Default schedules and templates size their tiles from the shape, then check the block they would launch against the
target *before* choosing it: ``first_fitting(candidates, resources, target)`` returns the first candidate (in order of
preference, the biggest tiles first) whose ``BlockResources`` fit, so a schedule never fails to build, or launch, on
a target with less shared memory, fewer threads or fewer registers per block than the default GPU.

Registers are estimated (the accumulators and operands a thread keeps, plus ``REGISTER_OVERHEAD`` for addresses and
indices): what ptxas allocates is only known after compiling. Every kernel also carries ``__launch_bounds__`` with
its thread count, so ptxas keeps it within the registers its block may have (spilling rather than failing to launch).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

from tcomp.codegen.cuda.codegen import MAX_BLOCK_DIMS
from tcomp.ir.gpu import GPUError
from tcomp.target import Target

REGISTER_OVERHEAD = 24  # registers a thread needs besides its data: indices, addresses, loop counters
MAX_REGISTERS_PER_THREAD = 255
REGISTER_GRANULE = 8  # ptxas allocates registers per thread in multiples of this

T = TypeVar("T")


@dataclass(frozen=True)
class BlockResources:
    """One block of a kernel: threads along x, y, z, shared memory in bytes, registers per thread (estimated)."""

    threads: tuple[int, int, int]
    shared_bytes: int = 0
    registers_per_thread: int = REGISTER_OVERHEAD

    @property
    def thread_count(self) -> int:
        x, y, z = self.threads
        return x * y * z

    @property
    def registers_per_block(self) -> int:
        per_thread = -(-self.registers_per_thread // REGISTER_GRANULE) * REGISTER_GRANULE
        return per_thread * self.thread_count

    def problems(self, target: Target) -> list[str]:
        """What exceeds ``target``'s limits (empty when the block fits)."""
        found = []
        if self.thread_count > target.max_threads_per_block:
            found.append(f"{self.thread_count} threads > {target.max_threads_per_block}")
        for axis, (count, limit) in enumerate(zip(self.threads, MAX_BLOCK_DIMS)):
            if count > limit:
                found.append(f"{count} threads along {'xyz'[axis]} > {limit}")
        if self.shared_bytes > target.max_shared_memory_per_block:
            found.append(f"{self.shared_bytes} bytes of shared memory > {target.max_shared_memory_per_block}")
        if self.registers_per_thread > MAX_REGISTERS_PER_THREAD:
            found.append(f"about {self.registers_per_thread} registers per thread > {MAX_REGISTERS_PER_THREAD}")
        if self.registers_per_block > target.max_registers_per_block:
            found.append(f"about {self.registers_per_block} registers per block > {target.max_registers_per_block}")
        return found

    def fits(self, target: Target) -> bool:
        return not self.problems(target)


def first_fitting(candidates: Iterable[T], resources: Callable[[T], BlockResources], target: Target | None,
                  what: str) -> T:
    """The first of ``candidates`` whose block fits ``target`` (the first of all when ``target`` is ``None``);
    ``GPUError`` naming ``what`` and the last candidate's problems when none does."""
    last: tuple[T, list[str]] | None = None
    for candidate in candidates:
        if target is None:
            return candidate
        problems = resources(candidate).problems(target)
        if not problems:
            return candidate
        last = (candidate, problems)
    if last is None:
        raise GPUError(f"{what}: no schedule to choose from")
    raise GPUError(f"{what}: no schedule fits target {target}; the smallest, {last[0]}, needs {'; '.join(last[1])}")


def check_fits(resources: BlockResources, target: Target | None, what: str) -> None:
    """``GPUError`` when ``resources`` exceed ``target`` (a template rejects such a config before it is built)."""
    if target is not None and target.thread_blocks:
        problems = resources.problems(target)
        if problems:
            raise GPUError(f"{what} does not fit target {target}: {'; '.join(problems)}")


def power_of_two_at_most(limit: int, value: int) -> int:
    """The largest power of two that is at most ``value`` and ``limit`` (at least 1)."""
    result = 1
    while result * 2 <= min(limit, value):
        result *= 2
    return result
