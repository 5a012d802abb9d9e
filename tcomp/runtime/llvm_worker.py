"""LLVM's optimization and code generation of one kernel, in this process or in a compile process.

``optimize_module`` is the one O3 pipeline every kernel goes through (``llvm_toolchain`` runs it in the compiler's
process). ``compile_object`` also emits the machine code, as an object file that a JIT engine loads without
compiling again: it is what a compile process does for ``llvm_pool``.

Run as a script (``python llvm_worker.py``), this file is a compile process: it imports llvmlite and the standard
library only, so it starts in a fraction of a second, and it serves requests on stdin until stdin closes. Frames
are binary, never evaluated: an 8-byte little-endian length and a JSON header, then as many length-prefixed
parts as the header's ``parts`` says. A request's header holds ``cpu``, ``features`` and ``triple`` and its one
part the unoptimized IR text; the answer's header holds ``error`` (LLVM's message) or nothing, and its parts the
optimized IR text and the object file. The process first writes a header naming its LLVM version, so the compiler
only uses processes whose LLVM is its own.
"""

from __future__ import annotations

import functools
import json
import struct
import sys
from typing import Any, BinaryIO

import llvmlite
import llvmlite.binding as llvm

LENGTH = struct.Struct("<Q")
MAX_FRAME = 1 << 31  # a kernel's IR or object is far smaller; a longer length is a broken stream


def optimize_module(module: llvm.ModuleRef, machine: llvm.TargetMachine) -> None:
    """Run the O3 module pipeline with loop and SLP vectorization on ``module`` in place."""
    options = llvm.create_pipeline_tuning_options(speed_level=3)
    options.loop_vectorization = True
    options.slp_vectorization = True
    options.loop_unrolling = True
    pass_builder = llvm.create_pass_builder(machine, options)
    pass_builder.getModulePassManager().run(module, pass_builder)


@functools.cache
def jit_machine(cpu: str, features: str, triple: str) -> llvm.TargetMachine:
    """A target machine that emits code as a JIT engine would (its code model): the object loads into one. Kept
    for the process's later kernels."""
    return llvm.Target.from_triple(triple).create_target_machine(cpu=cpu, features=features, opt=3,
                                                                 codemodel="jitdefault", jit=True)


@functools.cache
def initialize() -> None:
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()


def compile_object(ll_unopt: str, cpu: str, features: str, triple: str) -> tuple[str, bytes]:
    """Parse, verify and optimize ``ll_unopt``; return the optimized IR text and its object file."""
    initialize()
    machine = jit_machine(cpu, features, triple)
    module = llvm.parse_assembly(ll_unopt)
    module.triple = triple
    module.data_layout = str(machine.target_data)
    module.verify()
    optimize_module(module, machine)
    return str(module), bytes(machine.emit_object(module))


def llvm_version() -> str:
    """This process's llvmlite and LLVM versions: compile processes must have the compiler's."""
    return f"llvmlite {llvmlite.__version__}, LLVM {'.'.join(map(str, llvm.llvm_version_info))}"


def write_frame(stream: BinaryIO, header: dict[str, Any], parts: tuple[bytes, ...] = ()) -> None:
    data = json.dumps({**header, "parts": len(parts)}).encode()
    stream.write(LENGTH.pack(len(data)) + data)
    for part in parts:
        stream.write(LENGTH.pack(len(part)))
        stream.write(part)
    stream.flush()


def _read_exactly(stream: BinaryIO, size: int) -> bytes | None:
    chunks = []
    while size:
        chunk = stream.read(size)
        if not chunk:
            return None
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _read_part(stream: BinaryIO) -> bytes | None:
    head = _read_exactly(stream, LENGTH.size)
    if head is None:
        return None
    (size,) = LENGTH.unpack(head)
    if size > MAX_FRAME:
        raise ValueError(f"a frame of {size} bytes: the stream is broken")
    return _read_exactly(stream, size)


def read_frame(stream: BinaryIO) -> tuple[dict[str, Any], list[bytes]] | None:
    """The next frame's header and parts, or None at the end of the stream."""
    data = _read_part(stream)
    if data is None:
        return None
    header = json.loads(data)
    if not isinstance(header, dict) or not isinstance(header.get("parts"), int):
        raise ValueError("a frame without a header object")
    parts = []
    for _ in range(header["parts"]):
        part = _read_part(stream)
        if part is None:
            raise ValueError("the stream ended inside a frame")
        parts.append(part)
    return header, parts


def serve(requests: BinaryIO, answers: BinaryIO) -> None:
    write_frame(answers, {"version": llvm_version()})
    while (frame := read_frame(requests)) is not None:
        header, parts = frame
        try:
            ll, obj = compile_object(parts[0].decode(), header["cpu"], header["features"], header["triple"])
        except Exception as exc:  # LLVM's parse and verify errors go back to the compiler
            write_frame(answers, {"error": f"{type(exc).__name__}: {exc}"})
        else:
            write_frame(answers, {}, (ll.encode(), obj))


if __name__ == "__main__":
    serve(sys.stdin.buffer, sys.stdout.buffer)
