"""The sequence runner: kernel entry points run in order in one call, stopping at the first that fails."""

from __future__ import annotations

import ctypes

import pytest

from tcomp.runtime import llvm_toolchain
from tcomp.runtime.sequence import SequenceRunner, sequence_module
from tcomp.target import Target

# entry(buffers, sizes, errors): appends its own number to the int64 log that buffers[0] points at (the log's
# first element counts the entries), stores buffers[1][0] into errors[1] and returns buffers[1][0] as its status
ENTRY_IR = """
define i32 @{name}(i8** %buffers, i64* %sizes, i64* %errors) {{
  %log.raw = load i8*, i8** %buffers
  %log = bitcast i8* %log.raw to i64*
  %n = load i64, i64* %log
  %n1 = add i64 %n, 1
  store i64 %n1, i64* %log
  %slot = getelementptr i64, i64* %log, i64 %n1
  store i64 {number}, i64* %slot
  %status.at = getelementptr i8*, i8** %buffers, i64 1
  %status.raw = load i8*, i8** %status.at
  %status.ptr = bitcast i8* %status.raw to i32*
  %status = load i32, i32* %status.ptr
  %status.wide = sext i32 %status to i64
  %value = getelementptr i64, i64* %errors, i64 1
  store i64 %status.wide, i64* %value
  ret i32 %status
}}
"""


@pytest.fixture(scope="module")
def entries() -> tuple[object, list[int]]:
    triple = llvm_toolchain.process_triple()
    ll = f'target triple = "{triple}"\n' + "".join(ENTRY_IR.format(name=f"e{k}", number=k) for k in range(3))
    jit = llvm_toolchain.JITFunction(ll, "e0", Target.current_host())
    return jit, [jit.address, jit.address_of("e1"), jit.address_of("e2")]


def _calls(addresses: list[int], log: ctypes.Array, statuses: list[ctypes.c_int32]) -> list[tuple]:
    calls = []
    for address, status in zip(addresses, statuses):
        buffers = (ctypes.c_void_p * 2)(ctypes.addressof(log), ctypes.addressof(status))
        calls.append((address, buffers, (ctypes.c_int64 * 1)(), (ctypes.c_int64 * 2)()))
    return calls


def test_runs_every_entry_in_order(entries: tuple[object, list[int]]) -> None:
    _, addresses = entries
    log = (ctypes.c_int64 * 16)()
    statuses = [ctypes.c_int32(0) for _ in range(5)]
    order = [addresses[2], addresses[0], addresses[1], addresses[0], addresses[2]]
    runner = SequenceRunner(_calls(order, log, statuses))
    assert len(runner) == 5
    assert runner.run() == (0, -1)
    assert list(log[:6]) == [5, 2, 0, 1, 0, 2]
    assert runner.run() == (0, -1)
    assert log[0] == 10


def test_stops_at_the_first_failure(entries: tuple[object, list[int]]) -> None:
    _, addresses = entries
    log = (ctypes.c_int64 * 16)()
    statuses = [ctypes.c_int32(0), ctypes.c_int32(3), ctypes.c_int32(7)]
    calls = _calls(addresses, log, statuses)
    assert SequenceRunner(calls).run() == (3, 1)
    assert list(log[:3]) == [2, 0, 1]  # the third never ran
    assert calls[1][3][1] == 3  # the failed entry's error area is the caller's to read


def test_empty_sequence_and_missing_code() -> None:
    assert SequenceRunner([]).run() == (0, -1)
    array = (ctypes.c_int64 * 1)()
    with pytest.raises(ValueError, match="no code"):
        SequenceRunner([(0, array, array, array)])


def test_module_text_defines_the_runner() -> None:
    text = sequence_module("x86_64-unknown-linux-gnu")
    assert 'define i32 @"tcomp_run_sequence"' in text or "define i32 @tcomp_run_sequence" in text
