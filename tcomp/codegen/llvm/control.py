"""Control flow shared by the expression emitter and the vector math library."""

from __future__ import annotations

from collections.abc import Callable

import llvmlite.ir as ir


def if_else(builder: ir.IRBuilder, condition: ir.Value, then: Callable[[], ir.Value],
            otherwise: Callable[[], ir.Value], label: str) -> ir.Value:
    """The value of ``then()`` when the ``i1`` ``condition`` holds, else of ``otherwise()``: each is emitted in its
    own block, so only the one taken runs (a guarded load or division never executes on the other path), and a
    ``phi`` joins them in ``{label}.end``. Both must return values of one type."""
    function = builder.block.function
    then_block = function.append_basic_block(f"{label}.then")
    else_block = function.append_basic_block(f"{label}.else")
    merge = function.append_basic_block(f"{label}.end")
    builder.cbranch(condition, then_block, else_block)
    builder.position_at_end(then_block)
    true_value = then()
    then_end = builder.block
    builder.branch(merge)
    builder.position_at_end(else_block)
    false_value = otherwise()
    else_end = builder.block
    builder.branch(merge)
    builder.position_at_end(merge)
    phi = builder.phi(true_value.type)
    phi.add_incoming(true_value, then_end)
    phi.add_incoming(false_value, else_end)
    return phi
