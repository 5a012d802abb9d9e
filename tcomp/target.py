"""Compilation targets: ``Target("llvm -mcpu=znver3 -num-cores=2")``, ``Target("cuda -arch=sm_80")``.

A target is a frozen value: its kind plus the options that change generated code. ``str(target)`` is a canonical
string that parses back to an equal target, so it can key caches and tuning records. Omitted options are resolved
when the target is made (the host CPU name, the core count), so two targets for the same machine compare equal.
A CPU other than this machine's, or extra features, are checked against LLVM's lists first (``target_check``).
"""

from __future__ import annotations

import enum
import functools
import os
from dataclasses import dataclass, field, replace

import llvmlite.binding as llvm

from tcomp.gpu_probe import gpu_limits
from tcomp.target_check import PROBED_FEATURES, TargetCheckError, check_llvm_target, implied_features


class TargetKind(enum.StrEnum):
    """The kinds of target, one backend each (``tcomp.backend``): CPUs through LLVM, NVIDIA GPUs through CUDA C."""

    LLVM = "llvm"
    CUDA = "cuda"


KINDS = tuple(kind.value for kind in TargetKind)

# option name -> the kinds that accept it
_OPTIONS: dict[str, tuple[TargetKind, ...]] = {
    "-mcpu": (TargetKind.LLVM,),
    "-mattr": (TargetKind.LLVM,),
    "-num-cores": (TargetKind.LLVM,),
    "-arch": (TargetKind.CUDA,),
    "-max-threads-per-block": (TargetKind.CUDA,),
    "-max-shared-memory-per-block": (TargetKind.CUDA,),
    "-precision": (TargetKind.LLVM, TargetKind.CUDA),
    "-max-registers-per-block": (TargetKind.CUDA,),
}

# the data cache line of the CPUs tcomp targets (x86-64 and AArch64 alike): prefetch distances, padded rows
CACHE_LINE_BYTES = 64
# CPUs that run 512-bit vector instructions on a 256-bit datapath: one 512-bit multiply-add per cycle against two
# 256-bit ones, the same multiply-adds per cycle at either width (AMD Zen 4; measured on it: a 1x1 convolution with
# 1000 output channels in blocks of 8 ran 1.3-1.5x as fast as in blocks of 10, which take 16-lane vectors)
_HALF_RATE_512 = frozenset({"znver4"})

# CPU features that choose a kernel (``byte_dots``, ``word_dots``, ``bf16_dots``) without a probe: for a CPU other
# than this machine's, only where ``-mattr`` names them; code using one that this machine lacks must not run here
# (``missing_here``)
CHOSEN_FEATURES = ("avx512vnni", "avxvnni", "avx512vl", "avx512bw", "avx512bf16")

# the feature each vector feature builds on (every other AVX-512 extension builds on AVX512F)
_BASE_FEATURES = {"avx512f": "avx2", "avxvnni": "avx2", "avx2": "avx", "fma": "avx"}

# CUDA defaults: compute capability 8.0 (or the GPU's own when there is one), the per-block thread and register
# limits of every GPU since compute capability 5.0, and the shared memory a kernel may declare statically; above it,
# a kernel takes dynamic shared memory and opts in to it, up to the architecture's maximum per block
CUDA_DEFAULT_ARCH = "sm_80"
CUDA_MAX_THREADS_PER_BLOCK = 1024
CUDA_MAX_REGISTERS_PER_BLOCK = 65536
CUDA_STATIC_SHARED_MEMORY = 48 * 1024
# the opt-in shared memory per block by compute capability (CUDA C++ Programming Guide, "Technical Specifications
# per Compute Capability"); an architecture not listed takes the closest one below it
_OPT_IN_SHARED_MEMORY = {
    50: 48 * 1024, 70: 96 * 1024, 75: 64 * 1024, 80: 163 * 1024, 86: 99 * 1024, 87: 163 * 1024, 89: 99 * 1024,
    90: 227 * 1024, 100: 227 * 1024, 120: 99 * 1024,
}


def shared_memory_opt_in(arch: str) -> int:
    """The most shared memory a block may use on ``arch`` (``sm_90``: 227 KB), dynamic shared memory included."""
    number = int(arch[3:])
    known = [cc for cc in _OPT_IN_SHARED_MEMORY if cc <= number]
    return _OPT_IN_SHARED_MEMORY[max(known)] if known else CUDA_STATIC_SHARED_MEMORY


class TargetError(ValueError):
    """A target string or field that cannot be understood."""


class Precision(enum.StrEnum):
    """The arithmetic a target may use for float32 matrix products.

    ``FP32``: plain float32 multiply-adds (the default). On a cuda target, ``TF32``, ``FP16``, ``BF16``: tensor cores
    (``mma.sync``, compute capability 8.0 or later) for matmul, batched matmul and convolution, on operands rounded
    to TF32 (10-bit mantissa), float16 or bfloat16, products accumulated in float32. On an llvm target, ``BF16``
    only (``CPU_PRECISIONS``): products of rows with a constant weight (``tcomp.ops.panels``) on operands rounded to
    bfloat16, products accumulated in float32 (AVX512-BF16's ``vdpbf16ps``: twice the multiply-adds of float32 per
    instruction, and half the bytes of weight). Results differ from float32 by about the rounding of the operands:
    a relative error of about ``2**-11`` per product for TF32 and float16, ``2**-8`` for bfloat16 (``tolerance``
    gives a bound for sums of ``k`` products).
    """

    FP32 = "fp32"
    TF32 = "tf32"
    FP16 = "fp16"
    BF16 = "bf16"

    @staticmethod
    def parse(value: Precision | str | None) -> Precision:
        """``None`` is ``FP32``; strings are the values (``"fp16"``) or their dtype names (``"float16"``)."""
        if value is None:
            return Precision.FP32
        if isinstance(value, Precision):
            return value
        text = str(value).strip().lower()
        text = {"float32": "fp32", "tensorfloat32": "tf32", "float16": "fp16", "half": "fp16",
                "bfloat16": "bf16"}.get(text, text)
        try:
            return Precision(text)
        except ValueError:
            choices = ", ".join(p.value for p in Precision)
            raise TargetError(f"unknown precision {value!r}; expected one of {choices}") from None

    @property
    def uses_tensor_cores(self) -> bool:
        return self is not Precision.FP32

    @property
    def mantissa_bits(self) -> int:
        """Explicit mantissa bits of an operand after rounding."""
        return {Precision.FP32: 23, Precision.TF32: 10, Precision.FP16: 10, Precision.BF16: 7}[self]

    @property
    def relative_tolerance(self) -> float:
        """The error, relative to the largest result, that checks of whole products allow (0 for fp32, whose
        checks keep their own): about 8 times what rounding operands of random data gives."""
        return {Precision.FP32: 0.0, Precision.TF32: 4e-3, Precision.FP16: 4e-3, Precision.BF16: 3e-2}[self]

    def tolerance(self, k: int) -> float:
        """A bound on ``|got - want| / (sum_k |a| |b|)`` for a dot product of ``k`` terms: each operand rounded
        (half an ulp at this precision, twice) plus float32 accumulation over ``k`` terms."""
        operand = 2.0 ** -self.mantissa_bits  # two roundings of half an ulp each
        return operand + k * 2.0 ** -23


# the precisions an llvm target's matrix products may use: bfloat16 operands where the CPU has AVX512-BF16's
# ``vdpbf16ps`` (``Target.bf16_dots``), emulated with float32 multiply-adds elsewhere
CPU_PRECISIONS = (Precision.FP32, Precision.BF16)


def host_cpu_name() -> str:
    """The LLVM name of the CPU this process runs on (``znver3``, ``skylake-avx512`` ...)."""
    return str(llvm.get_host_cpu_name())


@functools.cache
def host_cpu_features() -> str:
    """The host CPU's feature string as LLVM spells it (``+avx2,+fma,-avx512f,...``), read once per process."""
    return str(llvm.get_host_cpu_features().flatten())


def host_num_cores() -> int:
    """Cores this process may run on (its CPU affinity where the OS tells it, else ``os.cpu_count()``)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class Target:
    """What to generate code for.

    ``Target("llvm")`` or ``Target("llvm -mcpu=native -num-cores=2")`` parse a target string; fields may also be
    given by keyword (``Target(kind="llvm", mcpu="znver3")``). For ``llvm``: ``mcpu`` is the CPU name (the host CPU
    when omitted or ``native``), ``mattr`` the extra CPU features (``("+avx2", "-avx512f")``; empty means the
    features implied by ``mcpu``, or the host's own features when ``mcpu`` is the host CPU), ``num_cores`` the
    threads parallel loops use (default: the cores this process may run on). For ``cuda``: ``arch`` is the GPU
    architecture (default: the GPU's own when one is present, else ``sm_80``); ``max_threads_per_block``,
    ``max_shared_memory_per_block`` (bytes, dynamic shared memory with the opt-in included: read from the GPU when
    ``arch`` is its own, else the architecture's maximum) and ``max_registers_per_block`` are the limits default
    schedules fit and every kernel is checked against when it is built; ``precision`` the arithmetic matrix
    products may use (``-precision=fp16``: tensor cores, see ``Precision``).
    """

    kind: TargetKind
    mcpu: str = ""
    mattr: tuple[str, ...] = ()
    num_cores: int = 0
    arch: str = ""
    max_threads_per_block: int = 0
    max_shared_memory_per_block: int = 0
    max_registers_per_block: int = 0
    precision: Precision = Precision.FP32
    host: bool = field(default=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        text = self.kind.strip()
        if " " in text or text.startswith("-"):
            if self.mcpu or self.mattr or self.num_cores or self.arch:
                raise TargetError(f"target {text!r}: give options either in the string or as fields, not both")
            parsed = _parse(text)
            for name in ("kind", "mcpu", "mattr", "num_cores", *_CUDA_FIELDS):
                object.__setattr__(self, name, getattr(parsed, name))
            object.__setattr__(self, "host", parsed.host)
            return
        if text not in KINDS:
            raise TargetError(f"unknown target kind {text!r}; expected one of {', '.join(KINDS)}")
        object.__setattr__(self, "kind", TargetKind(text))
        object.__setattr__(self, "mattr", tuple(self.mattr))
        object.__setattr__(self, "precision", Precision.parse(self.precision))
        if self.kind is TargetKind.CUDA:
            self._resolve_cuda()
            return
        if any(getattr(self, name) for name in ("arch", *_CUDA_LIMITS)):
            raise TargetError(f"target options {', '.join(('arch', *_CUDA_LIMITS))} are for cuda")
        if self.precision not in CPU_PRECISIONS:
            raise TargetError(f"precision {self.precision} applies to cuda targets; an llvm target takes "
                              f"{' or '.join(CPU_PRECISIONS)}")
        if self.mcpu in ("", "native"):
            object.__setattr__(self, "mcpu", host_cpu_name())
            object.__setattr__(self, "host", True)
        else:
            object.__setattr__(self, "host", self.mcpu == host_cpu_name())
        for feature in self.mattr:
            if not feature or feature[0] not in "+-":
                raise TargetError(f"target option -mattr: feature {feature!r} must start with '+' or '-'")
        if self.num_cores == 0:
            object.__setattr__(self, "num_cores", host_num_cores())
        elif self.num_cores < 0:
            raise TargetError(f"target option -num-cores: expected a positive integer, got {self.num_cores}")
        if not self.host or self.mattr:  # anything but this very CPU: LLVM could abort the process on it
            try:
                check_llvm_target(self.mcpu, self.mattr, self.features)
            except TargetCheckError as exc:
                raise TargetError(str(exc)) from None

    def _resolve_cuda(self) -> None:
        if self.mcpu or self.mattr or self.num_cores:
            raise TargetError("target kind 'cuda' takes no CPU options (mcpu, mattr, num_cores)")
        device = gpu_limits()
        if not self.arch:
            object.__setattr__(self, "arch", device.arch if device is not None else CUDA_DEFAULT_ARCH)
        elif not self.arch.startswith("sm_") or not self.arch[3:].isdigit():
            raise TargetError(f"target option -arch: expected sm_<number> (sm_80), got {self.arch!r}")
        defaults = _cuda_defaults(self.arch)
        for name, default in zip(_CUDA_LIMITS, defaults):
            value = getattr(self, name)
            if value == 0:
                object.__setattr__(self, name, default)
            elif value < 0:
                raise TargetError(f"target option {name}: expected a positive integer, got {value}")
        if self.precision.uses_tensor_cores and self.compute_capability < 80:
            raise TargetError(f"target option -precision={self.precision}: tensor cores with {self.precision} need "
                              f"compute capability 8.0 or later (-arch=sm_80), got -arch={self.arch}")

    @property
    def processor(self) -> str:
        """What the code is made for: the CPU name of an LLVM target (``znver3``), the architecture of a CUDA one
        (``sm_90``)."""
        return self.arch if self.kind is TargetKind.CUDA else self.mcpu

    @property
    def compute_capability(self) -> int:
        """``80`` for ``-arch=sm_80`` (cuda targets only)."""
        if self.kind is not TargetKind.CUDA:
            raise TargetError(f"target {self}: compute capability is for cuda targets")
        return int(self.arch[3:])

    def with_precision(self, precision: Precision | str | None) -> Target:
        """This target with ``precision`` (see ``Precision``: any on cuda, ``CPU_PRECISIONS`` on llvm); ``None``
        leaves it unchanged."""
        if precision is None:
            return self
        return replace(self, precision=Precision.parse(precision))  # checked as the target is made

    @staticmethod
    def parse(text: str) -> Target:
        """Parse a target string such as ``"llvm -mcpu=znver3 -num-cores=2"``."""
        return Target(text)

    from_str = parse

    @staticmethod
    def current_host() -> Target:
        """The LLVM target for the CPU this process runs on."""
        return Target("llvm")

    @property
    def features(self) -> str:
        """The feature string for LLVM's target machine: ``mattr`` joined, with the host's own features first
        when ``mcpu`` is the host CPU."""
        parts: list[str] = []
        if self.kind is TargetKind.LLVM and self.host:
            parts.append(host_cpu_features())
        parts.extend(self.mattr)
        return ",".join(p for p in parts if p)

    def has_feature(self, name: str) -> bool:
        """Whether the CPU feature ``name`` (``"avx512f"``, ``"fma"`` ...) is enabled; the last mention wins, and a
        feature counts only with the one it builds on (``_BASE_FEATURES``: LLVM turns it off with that one, so
        ``-mattr=-avx512f`` leaves no AVX512-VNNI or AVX512-BF16 instruction). For a CPU other than this machine's,
        the vector features (``PROBED_FEATURES``) are those LLVM's code for it uses."""
        if self.kind is TargetKind.LLVM and not self.host and name in PROBED_FEATURES:
            return name in implied_features(self.mcpu, self.features)
        base = "avx512f" if name.startswith("avx512") and name != "avx512f" else _BASE_FEATURES.get(name)
        if base is not None and not self.has_feature(base):
            return False
        enabled = False
        for item in self.features.split(","):
            if item[1:] == name:
                enabled = item.startswith("+")
        return enabled

    def missing_here(self) -> tuple[str, ...]:
        """The vector features this target's code uses that this machine's CPU lacks: code built for it would stop
        the process with an illegal instruction here. Empty for this machine's CPU with its own features and for CUDA;
        ``-mattr=+avx512f`` on this machine's CPU name counts when the CPU lacks it."""
        if self.kind is not TargetKind.LLVM or (self.host and not self.mattr):
            return ()
        host = Target("llvm")
        used = (*PROBED_FEATURES, *CHOSEN_FEATURES)
        return tuple(f for f in used if self.has_feature(f) and not host.has_feature(f))

    def check_runs_here(self) -> None:
        """Raise ``TargetError`` when code built for this target cannot run on this machine (``missing_here``)."""
        missing = self.missing_here()
        if missing:
            raise TargetError(f"code built for {self} uses {', '.join(missing)}, which this machine's CPU "
                              f"({host_cpu_name()}) lacks: it can be exported or printed here, not run")

    @property
    def vector_bits(self) -> int:
        """The widest SIMD register in bits: 512 with AVX-512, 256 with AVX, else 128."""
        if self.has_feature("avx512f"):
            return 512
        if self.has_feature("avx"):
            return 256
        return 128

    @property
    def byte_dots(self) -> bool:
        """Whether the CPU has VNNI's 4-byte dot product (``vpdpbusd``) at ``vector_bits``: AVX512-VNNI for 512-bit
        registers, AVX-VNNI (or AVX512-VNNI with AVX512VL) for 256."""
        bits = self.vector_bits
        if bits == 512:
            return self.has_feature("avx512vnni")
        if bits == 256:
            return self.has_feature("avxvnni") or (self.has_feature("avx512vnni") and self.has_feature("avx512vl"))
        return False

    @property
    def word_dots(self) -> bool:
        """Whether the CPU has ``pmaddwd`` (two int16 products added per int32 lane) at ``vector_bits``: AVX512BW
        for 512-bit registers, AVX2 for 256, SSE2 for 128."""
        return self.has_feature({512: "avx512bw", 256: "avx2", 128: "sse2"}[self.vector_bits])

    @property
    def bf16_dots(self) -> bool:
        """Whether the CPU has AVX512-BF16's ``vdpbf16ps`` (two bfloat16 products added per float32 lane) at
        ``vector_bits`` (512: AVX512-BF16 needs AVX512F)."""
        return self.has_feature("avx512bf16")

    @property
    def full_rate_vector_bits(self) -> int:
        """The narrowest vector that does as many multiply-adds per cycle as the widest: 256 on CPUs that run
        512-bit instructions at half the rate (``_HALF_RATE_512``), else ``vector_bits``."""
        bits = self.vector_bits
        return 256 if bits == 512 and self.mcpu in _HALF_RATE_512 else bits

    @property
    def thread_blocks(self) -> bool:
        """Whether kernels for this target run as blocks of threads, each block held to the target's limits
        (``max_threads_per_block`` and the others): true for GPUs, false for CPUs."""
        return self.max_threads_per_block > 0

    @property
    def vector_registers(self) -> int:
        return 32 if self.has_feature("avx512f") else 16

    def __str__(self) -> str:
        words = [self.kind.value]
        if self.kind is TargetKind.LLVM:
            words.append(f"-mcpu={self.mcpu}")
            if self.mattr:
                words.append("-mattr=" + ",".join(self.mattr))
            words.append(f"-num-cores={self.num_cores}")
            if self.precision is not Precision.FP32:
                words.append(f"-precision={self.precision}")
        if self.kind is TargetKind.CUDA:
            defaults = _cuda_defaults(self.arch)
            if self.arch != _default_arch():
                words.append(f"-arch={self.arch}")
            for name, default in zip(_CUDA_LIMITS, defaults):
                if getattr(self, name) != default:
                    words.append(f"-{name.replace('_', '-')}={getattr(self, name)}")
            if self.precision is not Precision.FP32:
                words.append(f"-precision={self.precision}")
        return " ".join(words)


_CUDA_LIMITS = ("max_threads_per_block", "max_shared_memory_per_block", "max_registers_per_block")
_CUDA_FIELDS = ("arch", *_CUDA_LIMITS, "precision")


def _default_arch() -> str:
    device = gpu_limits()
    return device.arch if device is not None else CUDA_DEFAULT_ARCH


def _cuda_defaults(arch: str) -> tuple[int, int, int]:
    """Threads, shared memory and registers per block: the GPU's when ``arch`` is its own, else ``arch``'s."""
    device = gpu_limits()
    if device is not None and device.arch == arch:
        return device.max_threads_per_block, device.max_shared_memory_per_block, device.max_registers_per_block
    return CUDA_MAX_THREADS_PER_BLOCK, shared_memory_opt_in(arch), CUDA_MAX_REGISTERS_PER_BLOCK


def _parse(text: str) -> Target:
    words = text.split()
    kind = words[0]
    if kind not in KINDS:
        raise TargetError(f"unknown target kind {kind!r} in {text!r}; expected one of {', '.join(KINDS)}")
    mcpu = ""
    mattr: tuple[str, ...] = ()
    num_cores = 0
    cuda: dict[str, object] = {}
    for word in words[1:]:
        name, eq, value = word.partition("=")
        if name not in _OPTIONS:
            raise TargetError(f"unknown target option {name!r} in {text!r}; known: {', '.join(_OPTIONS)}")
        if TargetKind(kind) not in _OPTIONS[name]:
            raise TargetError(f"target option {name!r} does not apply to kind {kind!r} (in {text!r})")
        if not eq or not value:
            raise TargetError(f"target option {name!r} needs a value: {name}=VALUE (in {text!r})")
        if name == "-mcpu":
            mcpu = value
        elif name == "-mattr":
            mattr = tuple(f for f in value.split(",") if f)
        elif name == "-num-cores":
            try:
                num_cores = int(value)
            except ValueError:
                raise TargetError(f"target option -num-cores: expected a positive integer, got {value!r}") from None
            if num_cores <= 0:
                raise TargetError(f"target option -num-cores: expected a positive integer, got {value!r}")
        elif name == "-arch":
            cuda["arch"] = value
        elif name == "-precision":
            cuda["precision"] = Precision.parse(value)
        else:
            field_name = name[1:].replace("-", "_")
            if not value.isdigit() or int(value) <= 0:
                raise TargetError(f"target option {name}: expected a positive integer, got {value!r}")
            cuda[field_name] = int(value)
    return Target(kind=kind, mcpu=mcpu, mattr=mattr, num_cores=num_cores, **cuda)  # type: ignore[arg-type]


def as_target(target: Target | str | None) -> Target:
    """Accept a ``Target``, a target string, or ``None`` (the host) and return a ``Target``."""
    if target is None:
        return Target.current_host()
    if isinstance(target, Target):
        return target
    if isinstance(target, str):
        return Target(target)
    raise TargetError(f"expected a Target or a target string, got {type(target).__name__}")
