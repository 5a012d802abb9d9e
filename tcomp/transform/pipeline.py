"""The ordered pass list from a freshly lowered function to the input of code generation.

Each pass is a plain function ``PrimFunc -> PrimFunc``. The runner verifies the IR after each pass when
``Settings.verify_ir`` is on and prints it when ``Settings.dump_ir`` is on; passes do neither themselves.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tcomp import config
from tcomp.ir.stmt import PrimFunc
from tcomp.ir.verify import verify
from tcomp.transform.bounds_check import insert_bounds_checks
from tcomp.transform.check_division import check_division
from tcomp.transform.flatten import flatten_buffers
from tcomp.transform.index_checks import drop_index_checks, insert_index_checks
from tcomp.transform.partition_tails import partition_tails
from tcomp.transform.prefetch import inject_prefetch
from tcomp.transform.simplify import simplify_func
from tcomp.transform.storage_types import legalize_storage_types
from tcomp.transform.unroll import unroll_explicit
from tcomp.transform.vectorize import vectorize_loops


@dataclass(frozen=True)
class Pass:
    name: str
    run: Callable[[PrimFunc], PrimFunc]
    flat_after: bool = False  # every access has one index after this pass


def default_pipeline(check_bounds: bool = False) -> list[Pass]:
    passes = [Pass("legalize_storage_types", legalize_storage_types),
              Pass("insert_index_checks", insert_index_checks), Pass("check_division", check_division)]
    if check_bounds:
        passes.append(Pass("insert_bounds_checks", insert_bounds_checks))
    passes += [
        Pass("partition_tails", partition_tails),
        Pass("simplify", simplify_func),
        Pass("check_division_after_simplify", check_division),
        Pass("flatten_buffers", flatten_buffers, flat_after=True),
        Pass("simplify_flat", simplify_func, flat_after=True),
        Pass("vectorize_loops", vectorize_loops, flat_after=True),
        Pass("inject_prefetch", inject_prefetch, flat_after=True),
        Pass("unroll_explicit", unroll_explicit, flat_after=True),
        Pass("simplify_vector", simplify_func, flat_after=True),
    ]
    return passes


def cuda_pipeline() -> list[Pass]:
    """Passes before a GPU function is split into kernels (the kernel passes are ``KERNEL_PASSES`` of
    ``codegen/cuda/codegen.py``).
    No vectorization or prefetching: threads take the place of SIMD lanes, and loops marked vectorized print as
    unrolled loops."""
    return [
        Pass("legalize_storage_types", legalize_storage_types),
        Pass("drop_index_checks", drop_index_checks),
        Pass("check_division", check_division),
        Pass("simplify", simplify_func),
        Pass("check_division_after_simplify", check_division),
        Pass("flatten_buffers", flatten_buffers, flat_after=True),
        Pass("simplify_flat", simplify_func, flat_after=True),
        Pass("unroll_explicit", unroll_explicit, flat_after=True),
        Pass("simplify_unrolled", simplify_func, flat_after=True),
    ]


def run_pipeline(
    func: PrimFunc,
    passes: Sequence[Pass],
    dump: Callable[[str, PrimFunc], None] | None = None,
    flat: bool = False,
) -> PrimFunc:
    """Run ``passes`` in order; verify (``flat``: the input is already flattened) and dump between them as the
    settings ask. The one pass runner: every pass list of every target runs through it."""
    settings = config.current()
    if settings.verify_ir:
        verify(func, flat=flat)
    for p in passes:
        func = p.run(func)
        if settings.verify_ir:
            verify(func, flat=flat or p.flat_after)
        if dump is not None:
            dump(p.name, func)
        elif settings.dump_ir:
            print(f"# after {p.name}\n{func}\n")
    return func
