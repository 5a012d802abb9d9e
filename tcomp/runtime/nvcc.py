"""Verification with NVIDIA's compilers: CUDA C to PTX (``nvcc -ptx``), and each kernel's registers, spills and
shared memory (``ptxas -v``). Results are cached on disk by the hash of the source, architecture and tool versions,
so a test run compiles each distinct source once. ``nvcc_available()`` tells whether the tools are on the PATH.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path


class NvccError(RuntimeError):
    """nvcc or ptxas rejected the source; the message holds their diagnostics."""


@dataclass(frozen=True)
class KernelResources:
    """What ptxas reports for one kernel: registers per thread, static shared memory, spill stores and loads."""

    name: str
    registers: int
    shared_bytes: int
    spill_stores: int
    spill_loads: int


def nvcc_available() -> bool:
    return shutil.which("nvcc") is not None and shutil.which("ptxas") is not None


@functools.cache
def _tool_version(tool: str) -> str:
    result = subprocess.run([tool, "--version"], capture_output=True, text=True, timeout=60)
    return result.stdout.strip().splitlines()[-1] if result.stdout else ""


def _cache_dir() -> Path:
    uid = os.getuid() if hasattr(os, "getuid") else 0
    path = Path(tempfile.gettempdir()) / f"tcomp-nvcc-{uid}"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _run(args: list[str], what: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        raise NvccError(f"{what} failed:\n{(result.stderr or result.stdout)[-6000:]}")
    return result


def _key(source: str, arch: str, tool: str) -> str:
    return hashlib.sha256("\0".join([source, arch, _tool_version(tool)]).encode()).hexdigest()[:32]


def compile_ptx(source: str, arch: str = "sm_80") -> str:
    """The PTX of ``source`` for ``arch`` (``nvcc -ptx -arch=<arch>``)."""
    if not nvcc_available():
        raise NvccError("nvcc and ptxas are not on the PATH")
    cached = _cache_dir() / f"{_key(source, arch, 'nvcc')}.ptx"
    if cached.exists():
        return cached.read_text()
    with tempfile.TemporaryDirectory(prefix="tcomp-nvcc-") as work:
        cu = Path(work) / "kernels.cu"
        ptx = Path(work) / "kernels.ptx"
        cu.write_text(source)
        _run(["nvcc", "-ptx", f"-arch={arch}", str(cu), "-o", str(ptx)], f"nvcc -ptx -arch={arch}")
        text = ptx.read_text()
    tmp = cached.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, cached)
    return text


_FUNCTION = re.compile(r"Compiling entry function '(\w+)'")
_REGISTERS = re.compile(r"Used (\d+) registers")
_SHARED = re.compile(r"(\d+) bytes smem")
_SPILLS = re.compile(r"(\d+) bytes spill stores, (\d+) bytes spill loads")


def parse_ptxas_output(text: str) -> dict[str, KernelResources]:
    """Per-kernel resources from the output of ``ptxas -v``."""
    result: dict[str, KernelResources] = {}
    name: str | None = None
    spills = (0, 0)
    for line in text.splitlines():
        match = _FUNCTION.search(line)
        if match:
            name, spills = match.group(1), (0, 0)
            continue
        match = _SPILLS.search(line)
        if match and name is not None:
            spills = (int(match.group(1)), int(match.group(2)))
        match = _REGISTERS.search(line)
        if match and name is not None:
            shared = _SHARED.search(line)
            result[name] = KernelResources(name, int(match.group(1)), int(shared.group(1)) if shared else 0, *spills)
    return result


def kernel_resources(source: str, arch: str = "sm_80") -> dict[str, KernelResources]:
    """Registers, shared memory and spills of every kernel in ``source`` (``ptxas -v`` on its PTX)."""
    ptx = compile_ptx(source, arch)
    cached = _cache_dir() / f"{_key(ptx, arch, 'ptxas')}.json"
    if cached.exists():
        return {k: KernelResources(**v) for k, v in json.loads(cached.read_text()).items()}
    with tempfile.TemporaryDirectory(prefix="tcomp-ptxas-") as work:
        path = Path(work) / "kernels.ptx"
        path.write_text(ptx)
        result = _run(["ptxas", "-v", f"-arch={arch}", str(path), "-o", str(Path(work) / "k.cubin")], "ptxas -v")
    resources = parse_ptxas_output(result.stdout + result.stderr)
    tmp = cached.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps({k: asdict(v) for k, v in resources.items()}))
    os.replace(tmp, cached)
    return resources


def resource_report(resources: dict[str, KernelResources]) -> str:
    """One line per kernel: registers, shared memory, spills."""
    lines = []
    for item in resources.values():
        spill = f", spills {item.spill_stores}/{item.spill_loads} B" if item.spill_stores or item.spill_loads else ""
        lines.append(f"{item.name}: {item.registers} registers, {item.shared_bytes} B shared{spill}")
    return "\n".join(lines)
