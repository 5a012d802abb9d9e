"""CUDA emulation on the CPU: the generated CUDA C, compiled by the host C++ compiler with OpenMP, run on numpy arrays.

The header below maps CUDA's vocabulary to C++: ``__global__`` and ``__device__`` vanish, ``__shared__`` becomes
``static`` (one copy for the block), ``threadIdx`` and ``blockIdx`` are thread-local, ``__syncthreads()`` is an OpenMP
barrier. A generated launcher runs the grid. A kernel that uses shared memory or barriers runs its blocks one after
the other, each block as one OpenMP team with one thread per CUDA thread (so barriers and shared arrays behave as on
a GPU); any other kernel runs its blocks in parallel and the threads of a block in a loop. Blocks of 1024 threads
mean 1024 OS threads per team: the emulator checks semantics, not speed.

Compiled libraries are cached on disk by the hash of their source and flags (in ``$TMPDIR/tcomp-cuda-emu-<uid>``).
Calls are serialized per library (the ``static`` shared arrays are shared by all calls of modules built from one
source).
"""

from __future__ import annotations

import ctypes
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
from tcomp.runtime.cuda_module import CudaModule
from tcomp.runtime.errors import KernelError

EMULATION_HEADER = """\
// tcomp CUDA emulation: CUDA C on the CPU, one OpenMP thread per CUDA thread of a block
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <omp.h>
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static
#define __syncthreads() _Pragma("omp barrier")
#define __align__(n) __attribute__((aligned(n)))
struct tc_dim3 { unsigned int x, y, z; };
struct float2 { float x, y; };  // no alignment asked: host arrays may start anywhere
struct float4 { float x, y, z, w; };
struct int2 { int x, y; };
struct int4 { int x, y, z, w; };
static thread_local tc_dim3 threadIdx;
static thread_local tc_dim3 blockIdx;
static tc_dim3 blockDim;
static tc_dim3 gridDim;
template <typename T> static inline T min(T a, T b) { return a < b ? a : b; }
template <typename T> static inline T max(T a, T b) { return a < b ? b : a; }
static inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
static inline double rsqrt(double x) { return 1.0 / sqrt(x); }
static inline float __int_as_float(int bits) { float f; memcpy(&f, &bits, 4); return f; }
static inline double __longlong_as_double(long long bits) { double d; memcpy(&d, &bits, 8); return d; }
"""

COMPILE_FLAGS = ("-std=c++17", "-O2", "-fopenmp", "-shared", "-fPIC", "-Wno-unknown-pragmas", "-x", "c++")


class EmulationError(RuntimeError):
    """The emulated kernels could not be compiled or launched."""


def _launcher(kernel: KernelInfo) -> str:
    """C++ that runs ``kernel``'s grid; returns 0, or 1 when OpenMP gave a block fewer threads than it needs."""
    params = [f"{storage_type(b.dtype)}* p{i}" for i, b in enumerate(kernel.params)]
    params += [f"{c_type(v.dtype)} s{i}" for i, v in enumerate(kernel.size_vars)]
    args = ", ".join([f"p{i}" for i in range(len(kernel.params))] + [f"s{i}" for i in range(len(kernel.size_vars))])
    bx, by, bz = kernel.launch.block
    lines = [
        f'extern "C" int tc_launch_{kernel.name}(long long gx, long long gy, long long gz'
        + "".join(", " + p for p in params) + ") {",
        f"  const int bx = {bx}, by = {by}, bz = {bz}, threads = bx * by * bz;",
        "  blockDim = tc_dim3{(unsigned)bx, (unsigned)by, (unsigned)bz};",
        "  gridDim = tc_dim3{(unsigned)gx, (unsigned)gy, (unsigned)gz};",
        "  int status = 0;",
    ]
    thread_index = "tc_dim3{(unsigned)(t % bx), (unsigned)(t / bx % by), (unsigned)(t / (bx * by))}"
    if kernel.uses_barrier or kernel.shared_bytes:
        lines += [
            "  omp_set_dynamic(0);",
            "  for (long long z = 0; z < gz; ++z)",
            "    for (long long y = 0; y < gy; ++y)",
            "      for (long long x = 0; x < gx; ++x) {",
            "#pragma omp parallel num_threads(threads)",
            "        {",
            "          const int t = omp_get_thread_num();",
            "          if (omp_get_num_threads() != threads) {",
            "#pragma omp atomic write",
            "            status = 1;",
            "          } else {",
            f"            threadIdx = {thread_index};",
            "            blockIdx = tc_dim3{(unsigned)x, (unsigned)y, (unsigned)z};",
            f"            {kernel.name}({args});",
            "          }",
            "        }",
            "        if (status) return status;",
            "      }",
        ]
    else:
        lines += [
            "  const long long blocks = gx * gy * gz;",
            "#pragma omp parallel for schedule(static)",
            "  for (long long b = 0; b < blocks; ++b) {",
            "    blockIdx = tc_dim3{(unsigned)(b % gx), (unsigned)(b / gx % gy), (unsigned)(b / (gx * gy))};",
            "    for (int t = 0; t < threads; ++t) {",
            f"      threadIdx = {thread_index};",
            f"      {kernel.name}({args});",
            "    }",
            "  }",
        ]
    lines += ["  return status;", "}"]
    return "\n".join(lines)


def emulation_source(artifact: CudaArtifact) -> str:
    """The C++ translation unit the emulator compiles: header, the CUDA C as generated, launchers."""
    launchers = "\n\n".join(_launcher(k) for k in artifact.kernels)
    return f"{EMULATION_HEADER}\n{artifact.source}\n// launchers\n{launchers}\n"


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


def compile_library(source: str) -> Path:
    """The shared library built from ``source`` (from the cache when it was built before)."""
    compiler = host_compiler()
    key = hashlib.sha256("\0".join([compiler, *COMPILE_FLAGS, source]).encode()).hexdigest()[:32]
    target = cache_dir() / f"{key}.so"
    if target.exists():
        return target
    src = cache_dir() / f"{key}.{os.getpid()}.cpp"
    tmp = cache_dir() / f"{key}.{os.getpid()}.tmp.so"
    src.write_text(source)
    try:
        result = subprocess.run([compiler, *COMPILE_FLAGS, str(src), "-o", str(tmp)],
                                capture_output=True, text=True, timeout=300)
        if result.returncode != 0:
            raise EmulationError(f"compiling the emulated kernels failed:\n{result.stderr[-4000:]}")
        os.replace(tmp, target)
    finally:
        src.unlink(missing_ok=True)
        tmp.unlink(missing_ok=True)
    return target


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
        from tcomp.runtime.thread_pool import openmp_available

        openmp_available()  # libgomp's wait policy is set before the library below loads it
        self.emulation_source = emulation_source(artifact)
        self.library_path = compile_library(self.emulation_source)
        self._library = ctypes.CDLL(str(self.library_path))
        self._lock = _library_lock(self.library_path)  # modules of one source share its static shared arrays
        self._launchers = []
        for kernel in artifact.kernels:
            function = getattr(self._library, f"tc_launch_{kernel.name}")
            function.restype = ctypes.c_int
            function.argtypes = [ctypes.c_longlong] * 3 + [ctypes.c_void_p] * len(kernel.params) + [
                _scalar_ctype(v.dtype) for v in kernel.size_vars
            ]
            self._launchers.append(function)

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
        with self._lock:
            for kernel, launcher in zip(self.kernels, self._launchers):
                config = kernel.launch_config(sizes)
                if 0 in config.grid:
                    continue
                pointer_args, scalar_args = self.kernel_arguments(kernel, buffers, sizes)
                status = launcher(*config.grid, *pointer_args, *scalar_args)
                if status != 0:
                    raise KernelError(
                        f"{kernel.name}: OpenMP gave a block fewer than the {kernel.launch.threads_per_block} "
                        "threads the emulation needs (check OMP_THREAD_LIMIT)", status)
        del temporaries


def _scalar_ctype(dtype: str) -> Any:
    return {"int32": ctypes.c_int32, "int64": ctypes.c_int64}.get(dtype, ctypes.c_int64)
