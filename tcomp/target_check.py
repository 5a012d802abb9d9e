"""CPU names and features checked against LLVM's own lists before LLVM sees them.

LLVM only warns about a CPU or feature name it does not know ("'foo' is not a recognized processor for this
target (ignoring processor)") and then builds for a generic subtarget, on which x86-64 code generation aborts the
whole process (``LLVM ERROR: 64-bit code requested on a subtarget that doesn't support it!``). A 32-bit CPU such
as ``i386``, or a feature set without SSE2, aborts the same way. So a target that is not simply this machine's CPU
is checked in a child process, where an abort cannot hurt: the child prints LLVM's list of CPUs and features for
the process triple, then compiles a small probe function for the requested CPU and features (whose assembly also
tells which vector features LLVM uses for that CPU: ``implied_features``). Names not in the lists
are refused with the closest matches; a CPU that cannot generate code for the triple is refused with LLVM's message.
Results are cached for the life of the process (one child per distinct CPU and feature set).
"""

from __future__ import annotations

import difflib
import subprocess
import sys
import threading
from dataclasses import dataclass

# Run in a child: print LLVM's CPU and feature lists (LLVM prints them for the CPU name "help"), then build a probe
# with float, double, integer and vector arithmetic for the CPU and features given as arguments, and name the
# vector features its code uses (PROBED_FEATURES: a 256-bit float add in ymm registers is AVX, and so on).
_PROBE = r'''
import sys
import llvmlite.binding as llvm

llvm.initialize_native_target()
llvm.initialize_native_asmprinter()
triple = llvm.get_process_triple()
target = llvm.Target.from_triple(triple)
sys.stderr.write("TRIPLE " + triple + "\n")
sys.stderr.flush()
target.create_target_machine(cpu="help")
sys.stderr.write("END OF LISTS\n")
sys.stderr.flush()
if len(sys.argv) > 1:
    probe = """
    define void @loop(ptr noalias %out, ptr noalias %a, i64 %n) {
    entry:
      br label %body
    body:
      %i = phi i64 [0, %entry], [%next, %body]
      %p = getelementptr <8 x float>, ptr %a, i64 %i
      %v = load <8 x float>, ptr %p
      %w = call <8 x float> @llvm.fma.v8f32(<8 x float> %v, <8 x float> %v, <8 x float> %v)
      %q = getelementptr <8 x float>, ptr %out, i64 %i
      store <8 x float> %w, ptr %q
      %next = add i64 %i, 1
      %done = icmp sge i64 %next, %n
      br i1 %done, label %exit, label %body
    exit:
      %d = sitofp i64 %n to double
      %e = fmul double %d, 2.5
      %f = fptrunc double %e to float
      store float %f, ptr %out
      ret void
    }
    define void @has_avx(ptr noalias %o, ptr noalias %a) {
      %v = load <8 x float>, ptr %a
      %w = fadd <8 x float> %v, %v
      store <8 x float> %w, ptr %o
      ret void
    }
    define void @has_avx2(ptr noalias %o, ptr noalias %a) {
      %v = load <8 x i32>, ptr %a
      %w = add <8 x i32> %v, %v
      store <8 x i32> %w, ptr %o
      ret void
    }
    define void @has_fma(ptr noalias %o, ptr noalias %a) {
      %v = load <4 x float>, ptr %a
      %w = call <4 x float> @llvm.fma.v4f32(<4 x float> %v, <4 x float> %v, <4 x float> %v)
      store <4 x float> %w, ptr %o
      ret void
    }
    define void @has_avx512f(ptr noalias %o, ptr noalias %a) {
      %v = load <16 x float>, ptr %a
      %w = fadd <16 x float> %v, %v
      store <16 x float> %w, ptr %o
      ret void
    }
    declare <8 x float> @llvm.fma.v8f32(<8 x float>, <8 x float>, <8 x float>)
    declare <4 x float> @llvm.fma.v4f32(<4 x float>, <4 x float>, <4 x float>)
    """
    import re
    module = llvm.parse_assembly(probe)
    module.triple = triple
    for reloc in ("default", "pic"):
        machine = target.create_target_machine(cpu=sys.argv[1], features=sys.argv[2], opt=3, reloc=reloc)
        builder = llvm.create_pass_builder(machine, llvm.create_pipeline_tuning_options(speed_level=3))
        builder.getModulePassManager().run(module, builder)
        machine.emit_object(module)
    bodies = {}
    current = None
    for line in machine.emit_assembly(module).splitlines():
        label = re.match(r"^has_(\w+):", line)
        if label:
            current = label.group(1)
            bodies[current] = ""
        elif current is not None:
            bodies[current] += line + "\n"
    signs = {"avx": r"%ymm", "avx2": r"vpaddd\s+%ymm", "fma": r"vfmadd\d{3}", "avx512f": r"%zmm"}
    used = [name for name, sign in signs.items() if re.search(sign, bodies.get(name, ""))]
    sys.stdout.write("FEATURES " + ",".join(used) + "\n")
    sys.stdout.write("PROBE OK\n")
'''


# The CPU features tcomp's schedules depend on, read off the probe's assembly for a CPU other than this machine's
PROBED_FEATURES = ("avx", "avx2", "fma", "avx512f")


class TargetCheckError(ValueError):
    """A CPU or feature that LLVM does not know, or cannot generate code for."""


@dataclass(frozen=True)
class LLVMCatalog:
    """What LLVM offers for the process triple: CPU names and feature names (without ``+``/``-``)."""

    triple: str
    cpus: frozenset[str]
    features: frozenset[str]


def _run_probe(cpu: str | None, features: str) -> subprocess.CompletedProcess[str]:
    args = [sys.executable, "-c", _PROBE] + ([cpu, features] if cpu is not None else [])
    try:
        return subprocess.run(args, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise TargetCheckError(f"could not ask LLVM about the target in a child process: {exc}") from None


def _parse_lists(text: str) -> LLVMCatalog:
    triple = ""
    cpus: set[str] = set()
    features: set[str] = set()
    section: set[str] | None = None
    for line in text.splitlines():
        if line.startswith("TRIPLE "):
            triple = line.split(" ", 1)[1].strip()
        elif line.startswith("Available CPUs"):
            section = cpus
        elif line.startswith("Available features"):
            section = features
        elif line.startswith("END OF LISTS") or line.startswith("Use +feature"):
            section = None
        elif section is not None and line.startswith("  ") and " - " in line:
            section.add(line.split()[0])
    return LLVMCatalog(triple, frozenset(cpus), frozenset(features))


_RESULTS: dict[tuple[str | None, str], subprocess.CompletedProcess[str]] = {}
_RESULTS_LOCK = threading.Lock()


def _probe(cpu: str | None, features: str) -> subprocess.CompletedProcess[str]:
    """The child's answer for ``cpu`` and ``features`` (LLVM's lists, and the probe when ``cpu`` is given), once."""
    with _RESULTS_LOCK:
        cached = _RESULTS.get((cpu, features))
    if cached is None:
        cached = _run_probe(cpu, features)
        with _RESULTS_LOCK:
            _RESULTS[(cpu, features)] = cached
    return cached


_CATALOG: list[LLVMCatalog] = []


def llvm_catalog() -> LLVMCatalog:
    """LLVM's CPU and feature names for this process's triple (read from the first child's answer)."""
    if _CATALOG:
        return _CATALOG[0]
    with _RESULTS_LOCK:
        answers = list(_RESULTS.values())
    for result in answers:
        catalog = _parse_lists(result.stderr)
        if catalog.cpus and catalog.features:
            _CATALOG.append(catalog)
            return catalog
    result = _probe(None, "")
    catalog = _parse_lists(result.stderr)
    if result.returncode != 0 or not catalog.cpus or not catalog.features:
        raise TargetCheckError(f"could not read LLVM's list of CPUs (exit status {result.returncode}): "
                               f"{result.stderr.strip()[-500:]}")
    _CATALOG.append(catalog)
    return catalog


def _unknown(kind: str, option: str, name: str, known: frozenset[str], triple: str) -> TargetCheckError:
    close = difflib.get_close_matches(name, sorted(known), n=5, cutoff=0.6)
    hint = f"; closest: {', '.join(close)}" if close else ""
    return TargetCheckError(f"target option {option}: LLVM knows no {kind} {name!r} for {triple}{hint} "
                            f"(`tcomp target --list` prints them all)")


def check_names(cpu: str, features: tuple[str, ...]) -> None:
    """Refuse a CPU or feature name that is not in LLVM's lists (features given as ``+name`` or ``-name``)."""
    catalog = llvm_catalog()
    if cpu not in catalog.cpus:
        raise _unknown("CPU", "-mcpu", cpu, catalog.cpus, catalog.triple)
    for feature in features:
        if feature[1:] not in catalog.features:
            raise _unknown("feature", "-mattr", feature[1:], catalog.features, catalog.triple)


def check_codegen(cpu: str, features: str) -> None:
    """Refuse a CPU and feature string for which LLVM cannot compile a probe function (it would abort the
    process); the probe runs in a child process."""
    result = _probe(cpu, features)
    if result.returncode == 0 and "PROBE OK" in result.stdout:
        return
    messages = [line for line in result.stderr.splitlines() if "LLVM ERROR" in line or "error" in line.lower()]
    reason = messages[-1].strip().removeprefix("LLVM ERROR:").strip() if messages else \
        f"the compiler stopped (exit status {result.returncode})"
    shown = f"-mcpu={cpu}" + (f" -mattr={features}" if features else "")
    raise TargetCheckError(f"LLVM cannot generate code for {shown} on {llvm_catalog().triple}: {reason}")


def implied_features(cpu: str, features: str) -> frozenset[str]:
    """Which of ``PROBED_FEATURES`` LLVM's code for ``cpu`` with ``features`` uses (from the child's probe)."""
    for line in _probe(cpu, features).stdout.splitlines():
        if line.startswith("FEATURES "):
            return frozenset(f for f in line.split(" ", 1)[1].strip().split(",") if f)
    return frozenset()


def check_llvm_target(cpu: str, mattr: tuple[str, ...], features: str) -> None:
    """Check a CPU name and its extra features ``mattr`` (``("+avx2", "-avx512f")``) by name, then that LLVM can
    generate code for the CPU with the full feature string ``features``. Raises ``TargetCheckError`` naming the
    option and the closest names. The first check of a process asks one child for both the lists and the probe."""
    if not _CATALOG:
        _probe(cpu, features)
    check_names(cpu, mattr)
    check_codegen(cpu, features)
