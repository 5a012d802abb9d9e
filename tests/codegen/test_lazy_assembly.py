"""The assembly of a build is emitted on request only (most builds never print it)."""

import tcomp
from tcomp import te


def test_assembly_emitted_on_request() -> None:
    A = te.placeholder((16,), name="A")
    B = te.compute((16,), lambda i: A[i] * 3.0 + 1.0, name="B")
    mod = tcomp.build(tcomp.create_schedule(B), [A, B])
    assert mod.artifact.asm == ""
    text = mod.get_source("asm")
    assert text.strip() and mod.artifact.asm == text
    assert mod.artifact.assembly() is mod.artifact.asm
