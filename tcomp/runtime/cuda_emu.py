"""CUDA emulation on the CPU: the generated CUDA C, compiled by the host C++ compiler with OpenMP, run on numpy arrays.

The header (``cuda_emu_header.py``) maps CUDA's vocabulary to C++. A generated launcher runs the grid with its
blocks spread over the CPU threads (an OpenMP loop). A kernel without barriers or warp shuffles runs the threads of
a block as the iterations of a loop; one that synchronizes its threads runs them as fibers on the block's CPU thread,
each to its next barrier in turn, so a barrier costs a switch of registers, not a wake-up of an OS thread.

Compiled libraries are cached on disk by the hash of their source and flags (in ``$TMPDIR/tcomp-cuda-emu-<uid>``),
beside the header precompiled once (``precompiled_header``), which each library includes instead of parsing it.
Calls are serialized per library (a launch's grid and block dimensions are globals of the library).
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import functools
import hashlib
import os
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Any

from tcomp.runtime.args import data_pointer
from tcomp.runtime.cuda_artifact import CudaArtifact, KernelInfo, c_type, storage_type
from tcomp.runtime.cuda_emu_header import emulation_header, fiber_stack_bytes
from tcomp.runtime.cuda_module import CudaModule
from tcomp.runtime.errors import KernelError
from tcomp.runtime.thread_pool import openmp_available
from tcomp.target import host_num_cores

COMPILE_FLAGS = ("-std=c++17", "-O2", "-fopenmp", "-shared", "-fPIC", "-Wno-unknown-pragmas", "-x", "c++")


class EmulationError(RuntimeError):
    """The emulated kernels could not be compiled or launched."""


def _launcher(kernel: KernelInfo) -> str:
    """C++ that runs ``kernel``'s grid, its blocks spread over the CPU threads; returns 0, 2 when a fiber outgrew
    its stack, 3 when the fibers' stacks could not be mapped."""
    params = [f"{storage_type(b.dtype)}* p{i}" for i, b in enumerate(kernel.params)]
    params += [f"{c_type(v.dtype)} s{i}" for i, v in enumerate(kernel.size_vars)]
    names = [f"p{i}" for i in range(len(kernel.params))] + [f"s{i}" for i in range(len(kernel.size_vars))]
    args = ", ".join(names)
    bx, by, bz = kernel.launch.block
    head = [
        f'extern "C" int tc_launch_{kernel.name}(long long gx, long long gy, long long gz'
        + "".join(", " + p for p in params) + ") {",
        f"  const int bx = {bx}, by = {by}, bz = {bz}, threads = bx * by * bz;",
        "  blockDim = tc_dim3{(unsigned)bx, (unsigned)by, (unsigned)bz};",
        "  gridDim = tc_dim3{(unsigned)gx, (unsigned)gy, (unsigned)gz};",
        "  const long long blocks = gx * gy * gz;",
        "  int status = 0;",
    ]
    block_index = "tc_dim3{(unsigned)(b % gx), (unsigned)(b / gx % gy), (unsigned)(b / (gx * gy))}"
    if not kernel.synchronizes:
        thread_index = "tc_dim3{(unsigned)(t % bx), (unsigned)(t / bx % by), (unsigned)(t / (bx * by))}"
        lines = head + [
            "#pragma omp parallel for schedule(static)",
            "  for (long long b = 0; b < blocks; ++b) {",
            f"    blockIdx = {block_index};",
            "    for (int t = 0; t < threads; ++t) {",
            f"      threadIdx = {thread_index};",
            f"      {kernel.name}({args});",
            "    }",
            "  }",
            "  return status;",
            "}",
        ]
        return "\n".join(lines)
    fields = "".join(f" {p};" for p in params)
    unpack = ", ".join(f"x->{n}" for n in names)
    lines = [
        f"struct tc_args_{kernel.name} {{{fields} }};",
        f"static void tc_thunk_{kernel.name}(const void* a) {{",
        f"  const tc_args_{kernel.name}* x = (const tc_args_{kernel.name}*)a;",
        f"  {kernel.name}({unpack});",
        "}",
        *head,
        f"  const tc_args_{kernel.name} args = {{{args}}};",
        "#pragma omp parallel",
        "  {",
        f"    const bool ready = tc_fibers_reserve(threads, {fiber_stack_bytes(kernel.local_bytes)});",
        "#pragma omp for schedule(static)",
        "    for (long long b = 0; b < blocks; ++b) {",
        f"      blockIdx = {block_index};",
        f"      const int result = ready ? tc_run_block(tc_thunk_{kernel.name}, &args, bx, by, bz) : 3;",
        "      if (result) {",
        "#pragma omp atomic write",
        "        status = result;",
        "      }",
        "    }",
        "    tc_fibers_release();",
        "  }",
        "  return status;",
        "}",
    ]
    return "\n".join(lines)


def emulation_source(artifact: CudaArtifact) -> str:
    """The C++ translation unit the emulator compiles: header, the CUDA C as generated, launchers."""
    launchers = "\n\n".join(_launcher(k) for k in artifact.kernels)
    return f"{emulation_header()}\n{artifact.source}\n// launchers\n{launchers}\n"


def host_compiler() -> str:
    for name in ("g++", "c++", "clang++"):
        path = shutil.which(name)
        if path:
            return path
    raise EmulationError("the CUDA emulation needs a C++ compiler with OpenMP (g++ or clang++) on the PATH")


def cache_dir() -> Path:
    uid = os.getuid() if hasattr(os, "getuid") else 0
    path = Path(tempfile.gettempdir()) / f"tcomp-cuda-emu-{uid}"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _key(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:32]


_HEADER_LOCK = threading.Lock()


def precompiled_header(compiler: str) -> Path | None:
    """The emulation header as a file whose precompiled form (``<file>.gch``, built once per compiler, flags and
    text, in the cache) the compiler reads instead of parsing the header for every library: about half of a
    kernel's compile time. None where the compiler cannot precompile it (each library then holds the header)."""
    header = emulation_header()
    path = cache_dir() / f"tc_emu_{_key(compiler, *COMPILE_FLAGS, header)}.h"
    compiled = Path(f"{path}.gch")
    with _HEADER_LOCK:
        if compiled.exists():
            return path
        tag = f"{os.getpid()}.{threading.get_ident()}"
        text, partial = Path(f"{path}.{tag}.tmp"), Path(f"{compiled}.{tag}.tmp")
        flags = [f for f in COMPILE_FLAGS if f not in ("-shared", "-x", "c++")]
        try:
            text.write_text(header)
            os.replace(text, path)
            result = subprocess.run([compiler, *flags, "-x", "c++-header", str(path), "-o", str(partial)],
                                    capture_output=True, text=True, timeout=300)
            if result.returncode != 0:
                return None
            os.replace(partial, compiled)
        except OSError:
            return None
        finally:
            text.unlink(missing_ok=True)
            partial.unlink(missing_ok=True)
    return path


def compile_library(source: str) -> Path:
    """The shared library built from ``source`` (from the cache when it was built before). A source that starts
    with the emulation header includes it precompiled (``precompiled_header``); should that fail, it compiles as it
    is."""
    compiler = host_compiler()
    key = _key(compiler, *COMPILE_FLAGS, source)
    target = cache_dir() / f"{key}.so"
    if target.exists():
        return target
    header = emulation_header()
    included = precompiled_header(compiler) if source.startswith(header) else None
    texts = [f'#include "{included}"\n{source[len(header):]}'] if included is not None else []
    src = cache_dir() / f"{key}.{os.getpid()}.{threading.get_ident()}.cpp"
    tmp = cache_dir() / f"{key}.{os.getpid()}.{threading.get_ident()}.tmp.so"
    try:
        for text in [*texts, source]:
            src.write_text(text)
            result = subprocess.run([compiler, *COMPILE_FLAGS, str(src), "-o", str(tmp)],
                                    capture_output=True, text=True, timeout=300)
            if result.returncode == 0:
                os.replace(tmp, target)
                return target
        raise EmulationError(f"compiling the emulated kernels failed:\n{result.stderr[-4000:]}")
    finally:
        src.unlink(missing_ok=True)
        tmp.unlink(missing_ok=True)


@functools.cache
def _compiler_threads() -> concurrent.futures.ThreadPoolExecutor:
    """Threads that wait for the host compiler: a model's libraries compile while the next kernels are lowered."""
    return concurrent.futures.ThreadPoolExecutor(host_num_cores(), "tcomp-emulation-cc")


_LIBRARY_LOCKS: dict[Path, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


def _library_lock(path: Path) -> threading.Lock:
    with _LOCKS_GUARD:
        return _LIBRARY_LOCKS.setdefault(path, threading.Lock())


class EmulatedCudaModule(CudaModule):
    """A CUDA module run on the CPU (see the module docstring)."""

    runtime_name = "emulated on the CPU (no GPU)"

    def __init__(self, artifact: CudaArtifact) -> None:
        super().__init__(artifact)

        openmp_available()  # libgomp's wait policy is set before the library below loads it
        host_compiler()  # no compiler: an error now
        self.emulation_source = emulation_source(artifact)
        self._compiled = _compiler_threads().submit(compile_library, self.emulation_source)
        self._loaded: tuple[threading.Lock, list[Any]] | None = None
        self._load_lock = threading.Lock()

    @property
    def library_path(self) -> Path:
        """The compiled library; the host compiler builds it in the background from the module's creation, and the
        first call (or this) waits for it."""
        return self._compiled.result()

    def _launchers(self) -> tuple[threading.Lock, list[Any]]:
        with self._load_lock:
            if self._loaded is None:
                path = self.library_path
                library = ctypes.CDLL(str(path))
                launchers = []
                for kernel in self.artifact.kernels:
                    function = getattr(library, f"tc_launch_{kernel.name}")
                    function.restype = ctypes.c_int
                    function.argtypes = [ctypes.c_longlong] * 3 + [ctypes.c_void_p] * len(kernel.params) + [
                        _scalar_ctype(v.dtype) for v in kernel.size_vars
                    ]
                    launchers.append(function)
                self._loaded = (_library_lock(path), launchers)  # modules of one source share its shared arrays
            return self._loaded

    def get_source(self, fmt: str = "cuda") -> str:
        """Also ``emulation``: the C++ translation unit the emulator compiles."""
        if fmt == "emulation":
            return self.emulation_source
        return super().get_source(fmt)

    def __call__(self, *arrays: Any) -> None:
        pointers, sizes = self.bind_sizes(arrays)
        temporaries = self.temporaries(sizes)
        addresses = pointers + [data_pointer(t) for t in temporaries]
        buffers = dict(zip(self.buffer_ids(), addresses))
        lock, launchers = self._launchers()
        with lock:
            for kernel, launcher in zip(self.kernels, launchers):
                config = kernel.launch_config(sizes)
                if 0 in config.grid:
                    continue
                pointer_args, scalar_args = self.kernel_arguments(kernel, buffers, sizes)
                status = launcher(*config.grid, *pointer_args, *scalar_args)
                if status != 0:
                    raise KernelError(f"{kernel.name}: {_FAILURES.get(status, 'failed')} (emulation status {status})",
                                      status)
        del temporaries


_FAILURES = {
    2: "a CUDA thread outgrew the stack the emulation gives it",
    3: "the emulation could not map the stacks of a block's threads",
}


def _scalar_ctype(dtype: str) -> Any:
    return {"int32": ctypes.c_int32, "int64": ctypes.c_int64}.get(dtype, ctypes.c_int64)
