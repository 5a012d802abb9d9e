"""``tcomp.ops.cpu.views``: following a read through reshapes and transposes to the placeholder underneath, the
step in memory along an axis, and whether a block of an operand's rows can be read in place."""

from __future__ import annotations

from tcomp import ops, te
from tcomp.ops.cpu.views import placeholder_reads, rows_in_place, unit_step


def heads(seq: int = 10, heads_: int = 3, dim: int = 4):
    """``x[S, H*D]`` as ``[H, S, D]`` (a query's heads) and as ``[H, D, S]`` (a key's, transposed)."""
    x = te.placeholder((seq, heads_ * dim), name="x")
    split = ops.reshape(x, (seq, heads_, dim))
    return x, ops.transpose(split, (1, 0, 2)), ops.transpose(split, (1, 2, 0))


def test_reads_follow_views_to_the_placeholder() -> None:
    x, q, _ = heads()
    t, i, d = te.var("t"), te.var("i"), te.var("d")
    reads = placeholder_reads(q, (t, i, d))
    assert reads is not None and len(reads) == 1 and reads[0][0] is x
    bounds = {t: (0, 2), i: (0, 9), d: (0, 3)}
    assert unit_step(q, (t, i, d), d, bounds) == 1
    assert unit_step(q, (t, i, d), i, bounds) == 12  # one row of x
    assert unit_step(q, (t, i, d), t, bounds) == 4  # one head
    assert rows_in_place(q, (t, i, d), i, d, bounds)


def test_a_transposed_view_is_not_read_in_place_by_rows() -> None:
    _, _, k = heads()
    t, d, j = te.var("t"), te.var("d"), te.var("j")
    bounds = {t: (0, 2), d: (0, 3), j: (0, 9)}
    assert unit_step(k, (t, d, j), d, bounds) == 1  # the contiguous axis is the key's D, not its columns
    assert unit_step(k, (t, d, j), j, bounds) == 12
    assert not rows_in_place(k, (t, d, j), d, j, bounds)


def test_reads_through_a_reduction_or_a_gather_are_not_followed() -> None:
    x = te.placeholder((6, 5), name="x")
    total = ops.sum(x, axis=1)
    index = te.placeholder((6,), name="index", dtype="int32")
    gathered = te.compute((6, 5), lambda i, j: x[index[i], j], name="gathered")
    i, j = te.var("i"), te.var("j")
    assert placeholder_reads(total, (i,)) is None
    assert placeholder_reads(gathered, (i, j)) is None
    assert unit_step(gathered, (i, j), j, {i: (0, 5), j: (0, 4)}) is None
    assert not rows_in_place(gathered, (i, j), i, j, {i: (0, 5), j: (0, 4)})


def test_an_elementwise_sum_of_two_reads_is_not_one_run() -> None:
    x, y = te.placeholder((4, 8), name="x"), te.placeholder((4, 8), name="y")
    both = ops.add(x, y)
    i, j = te.var("i"), te.var("j")
    bounds = {i: (0, 3), j: (0, 7)}
    assert unit_step(both, (i, j), j, bounds) == 1  # both move by one element
    assert not rows_in_place(both, (i, j), i, j, bounds)  # but a kernel reads one buffer
