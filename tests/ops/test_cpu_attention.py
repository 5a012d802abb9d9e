"""Fused attention on the CPU (``tcomp.ops.cpu.attention``) against numpy: query and key counts no tile divides
(padded query rows, ``-inf`` key columns), value widths no vector divides (packed V), broadcast batches and biases,
the result transposed, 1 to 3 cores; every access checked against its buffer's bounds. And the errors of bad
arguments."""

from __future__ import annotations

import numpy as np
import pytest

import tcomp
from tcomp import Target, te
from tcomp.ops.cpu import schedule_cpu
from tcomp.ops.cpu.attention import AttentionTiles, attention, choose_tiles
from tcomp.ops.testing import random_data
from tcomp.ops.utils import OpError

RNG = np.random.default_rng(1207)


def reference(q: np.ndarray, k_t: np.ndarray, v: np.ndarray, biases: list[np.ndarray], scale: float,
              perm: tuple[int, ...] | None) -> np.ndarray:
    logits = (q.astype(np.float64) @ k_t) * scale
    for bias in biases:
        logits = logits + bias
    logits = logits - logits.max(axis=-1, keepdims=True)
    weights = np.exp(logits)
    out = (weights / weights.sum(axis=-1, keepdims=True)) @ v
    return (out if perm is None else out.transpose(perm)).astype(np.float32)


def run(q_shape: tuple[int, ...], k_shape: tuple[int, ...], v_shape: tuple[int, ...],
        bias_shapes: list[tuple[int, ...]] = [], scale: float = 0.125, perm: tuple[int, ...] | None = None,  # noqa: B006
        cores: int = 2, tiles: AttentionTiles | None = None) -> str:
    target = Target(f"llvm -num-cores={cores}")
    sq, skv = q_shape[-2], k_shape[-1]
    if tiles is None:
        tiles = choose_tiles(sq, skv, target.vector_bits // 32, target.vector_registers)
    q_t, k_t, v_t = (te.placeholder(shape, name=name) for shape, name in
                     ((q_shape, "q"), (k_shape, "k_t"), (v_shape, "v")))
    bias_t = [te.placeholder(shape, name=f"bias{i}") for i, shape in enumerate(bias_shapes)]
    out_t = attention(q_t, k_t, v_t, tiles, bias_t, scale, perm)
    arrays = [random_data(RNG, shape) for shape in (q_shape, k_shape, v_shape, *bias_shapes)]
    expected = reference(arrays[0], arrays[1], arrays[2], arrays[3:], scale, perm)
    args = [q_t, k_t, v_t, *bias_t, out_t]
    s = schedule_cpu([out_t], target)
    source = str(tcomp.lower(s, args, simple_mode=True))
    module = tcomp.build(s, args, target=target, check_bounds=True)
    out = np.full(expected.shape, np.nan, dtype=np.float32)
    module(*arrays, out)
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-5)
    return source


@pytest.mark.parametrize(("sq", "skv", "d", "dv", "cores"), [
    (1, 1, 1, 1, 3),
    (7, 5, 3, 9, 1),
    (7, 5, 3, 9, 3),
    (16, 32, 16, 16, 2),  # whole tiles: Q and V read in place
    (50, 33, 17, 20, 1),
    (50, 33, 17, 20, 2),
    (50, 33, 17, 20, 3),
    (197, 197, 64, 64, 2),  # ViT-B/16's 197 tokens
    (1, 129, 64, 64, 2),  # a decoding step: one query row against 129 cached keys
    (3, 40, 16, 8, 2),
])
def test_attention_matches_numpy(sq: int, skv: int, d: int, dv: int, cores: int) -> None:
    run((2, sq, d), (2, d, skv), (2, skv, dv), cores=cores)


def test_broadcast_batch_biases_and_a_transposed_result() -> None:
    # BERT's shape: [batch, heads, S, D] with a padding mask [batch, 1, 1, S] and a position bias per head
    run((2, 3, 13, 8), (2, 3, 8, 13), (2, 3, 13, 8), [(2, 1, 1, 13), (3, 13, 13)], scale=8 ** -0.5,
        perm=(0, 2, 1, 3))


def test_one_matrix_of_keys_for_every_query_batch() -> None:
    run((4, 10, 6), (1, 6, 11), (11, 5), [(10, 1)], scale=1.0, cores=3)


def test_masked_logits_weigh_nothing() -> None:
    run((1, 9, 4), (1, 4, 9), (1, 9, 4), [(1, 9, 9)], scale=1.0)  # random biases in [-1, 1)
    mask = np.triu(np.full((9, 9), -1e9, dtype=np.float32), 1)
    target = Target("llvm -num-cores=2")
    q_t, k_t, v_t = te.placeholder((9, 4), name="q"), te.placeholder((4, 9), name="k_t"), te.placeholder((9, 4),
                                                                                                        name="v")
    m_t = te.placeholder((9, 9), name="mask")
    out_t = attention(q_t, k_t, v_t, choose_tiles(9, 9, 8, 16), [m_t])
    module = tcomp.build(schedule_cpu([out_t], target), [q_t, k_t, v_t, m_t, out_t], target=target)
    q, k, v = (random_data(RNG, shape) for shape in ((9, 4), (4, 9), (9, 4)))
    out = np.empty((9, 4), dtype=np.float32)
    module(q, k, v, mask, out)
    np.testing.assert_allclose(out[0], v[0], rtol=1e-5)  # the first query sees the first key only
    np.testing.assert_allclose(out, reference(q, k, v, [mask], 1.0, None), rtol=1e-4, atol=1e-5)


def test_padding_keys_keep_the_softmax_rows_in_vectors() -> None:
    """21 keys padded to 32 columns: their -inf is added by a blend of constants, so the row maximum and the
    exponentials run on whole vectors (a select around the loads of the scores would keep those loops scalar)."""
    target = Target("llvm -mcpu=haswell -num-cores=2")
    q_t, k_t, v_t = te.placeholder((2, 20, 8), name="q"), te.placeholder((2, 8, 21), name="k_t"), \
        te.placeholder((2, 21, 8), name="v")
    out_t = attention(q_t, k_t, v_t, choose_tiles(20, 21, 8, 16))
    module = tcomp.build(schedule_cpu([out_t], target), [q_t, k_t, v_t, out_t], target=target)
    tir = module.get_source("tir")
    exp_stores = [line for line in tir.splitlines() if "attention.exp[" in line and "= exp(" in line]
    assert exp_stores and all("attention.exp[ramp(" in line for line in exp_stores)
    assert not [line for line in tir.splitlines() if "attention.max.rf[" in line and "select(" in line
                and "ramp(" not in line]
    q, k, v = (random_data(RNG, shape) for shape in ((2, 20, 8), (2, 8, 21), (2, 21, 8)))
    out = np.full((2, 20, 8), np.nan, dtype=np.float32)
    module(q, k, v, out)
    np.testing.assert_allclose(out, reference(q, k, v, [], 1.0, None), rtol=1e-4, atol=1e-5)


def test_blocks_of_rows_bound_the_scores_in_memory() -> None:
    source = run((1, 40, 8), (1, 8, 24), (1, 24, 8), tiles=AttentionTiles(mr=4, nr=8, rows=8, lanes=4))
    # the scores of one block of 8 rows (24 keys wide), never all 40 rows
    assert "allocate attention.scores: float32[1, 8, 24]" in source
    assert "tcomp_sgemm_f32" in source


def test_choose_tiles() -> None:
    tiles = choose_tiles(197, 197, 16, 32)
    assert (tiles.mr, tiles.nr, tiles.lanes) == (8, 32, 16)
    assert tiles.rows % tiles.mr == 0 and tiles.rows * 224 * 4 <= 32 << 10
    assert choose_tiles(1, 1, 8, 16).rows == choose_tiles(1, 1, 8, 16).mr
    # a decoding step (one query row, a long cache) and a short query keep their rows unpadded
    assert (choose_tiles(1, 129, 16, 32).mr, choose_tiles(1, 129, 16, 32).rows) == (1, 1)
    assert (choose_tiles(3, 40, 8, 16).mr, choose_tiles(3, 40, 8, 16).rows) == (3, 3)
    for sq in (1, 7, 128, 197, 1000):
        tiles = choose_tiles(sq, 300, 8, 16)
        assert tiles.nr % tiles.lanes == 0 and tiles.rows % tiles.mr == 0


def test_bad_arguments() -> None:
    tiles = AttentionTiles(4, 8, 8, 4)
    q, k_t, v = te.placeholder((4, 8), name="q"), te.placeholder((8, 6), name="k_t"), te.placeholder((6, 3), name="v")
    with pytest.raises(OpError, match="float32 only"):
        attention(te.placeholder((4, 8), name="q", dtype="float64"), k_t, v, tiles)
    with pytest.raises(OpError, match="do not chain"):
        attention(q, te.placeholder((7, 6), name="k_t"), v, tiles)
    with pytest.raises(OpError, match="do not broadcast"):
        attention(q, k_t, v, tiles, [te.placeholder((3, 6), name="mask")])
    with pytest.raises(OpError, match="do not broadcast"):
        attention(te.placeholder((2, 4, 8), name="q"), te.placeholder((3, 8, 6), name="k_t"), v, tiles)
    with pytest.raises(OpError, match="multiple of the lanes"):
        attention(q, k_t, v, AttentionTiles(4, 6, 8, 4))
    with pytest.raises(OpError, match="perm"):
        attention(q, k_t, v, tiles, perm=(1, 0))
    with pytest.raises(OpError, match="static shape"):  # a symbolic head size (batch, queries, keys may be)
        attention(te.placeholder((4, te.var("n")), name="q"), te.placeholder((te.var("n"), 6), name="k_t"), v, tiles)


def test_soft_capped_attention_matches_numpy() -> None:
    q_t, k_t, v_t = te.placeholder((3, 9, 16), name="q"), te.placeholder((3, 16, 11), name="k_t"), \
        te.placeholder((3, 11, 8), name="v")
    out_t = attention(q_t, k_t, v_t, choose_tiles(9, 11, 8, 16), [], 0.25, softcap=2.0)
    s = schedule_cpu([out_t], Target("llvm -num-cores=2"))
    module = tcomp.build(s, [q_t, k_t, v_t, out_t], target=Target("llvm -num-cores=2"))
    q, k, v = (random_data(RNG, shape) * 3 for shape in ((3, 9, 16), (3, 16, 11), (3, 11, 8)))
    logits = 2.0 * np.tanh((q.astype(np.float64) @ k) * 0.25 / 2.0)
    weights = np.exp(logits - logits.max(axis=-1, keepdims=True))
    expected = (weights / weights.sum(axis=-1, keepdims=True)) @ v
    out = np.empty((3, 9, 8), np.float32)
    module(q, k, v, out)
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-5)
    with pytest.raises(OpError, match="softcap must be a finite number"):
        attention(q_t, k_t, v_t, choose_tiles(9, 11, 8, 16), softcap=-1.0)


@pytest.mark.parametrize(("sq", "d", "dv", "mask_rows"), [(1, 64, 64, 1), (3, 16, 20, 3), (1, 5, 9, 1)])
def test_a_symbolic_number_of_keys(sq: int, d: int, dv: int, mask_rows: int) -> None:
    """One kernel for every cache length (``past + 1`` keys): K (here contiguous along the keys) packed with zeros
    up to whole tiles; V too for several query rows, the product with it in micro-kernel steps of ``nr`` keys (one
    row sums V's rows in place); each length against numpy, every access bounds-checked."""
    target = Target("llvm -num-cores=2")
    past = te.var("past", "int32", max_value=1 << 20)
    keys = past + 1
    tiles = choose_tiles(sq, 1024, target.vector_bits // 32, target.vector_registers)
    q_t, k_t = te.placeholder((3, sq, d), name="q"), te.placeholder((3, d, keys), name="k_t")
    v_t, mask_t = te.placeholder((3, keys, dv), name="v"), te.placeholder((1, mask_rows, keys), name="mask")
    out_t = attention(q_t, k_t, v_t, tiles, [mask_t], 0.25)
    module = tcomp.build(schedule_cpu([out_t], target), [q_t, k_t, v_t, mask_t, out_t], target=target,
                         check_bounds=True)
    for count in (1, 2, tiles.nr - 1, tiles.nr, tiles.nr + 1, 3 * tiles.nr + 5):
        arrays = [random_data(RNG, shape) for shape in ((3, sq, d), (3, d, count), (3, count, dv),
                                                         (1, mask_rows, count))]
        out = np.full((3, sq, dv), np.nan, dtype=np.float32)
        module(*arrays, out)
        np.testing.assert_allclose(out, reference(*arrays[:3], arrays[3:], 0.25, None), rtol=1e-4, atol=1e-5)


def test_a_symbolic_bias_must_match_the_keys() -> None:
    past = te.var("past", "int32")
    q_t, k_t = te.placeholder((1, 4, 8), name="q"), te.placeholder((1, 8, past + 1), name="k_t")
    v_t, bias_t = te.placeholder((1, past + 1, 8), name="v"), te.placeholder((1, 4, past), name="bias")
    with pytest.raises(OpError, match="a bias of past columns"):
        attention(q_t, k_t, v_t, AttentionTiles(4, 32, 4, 16), [bias_t])


@pytest.mark.parametrize(("d", "dv", "symbolic"), [(64, 64, False), (64, 64, True), (5, 9, False), (5, 9, True),
                                                   (24, 40, True)])
def test_a_decoding_step_reads_the_cache_in_place(d: int, dv: int, symbolic: bool) -> None:
    """One query row against a key/value cache laid out ``[heads, keys, d]`` (K transposed by a view): the scores
    are dot products with K's rows and the result sums V's rows, both read in place (no packed copy); against
    numpy for key counts no tile divides, every access bounds-checked."""
    target = Target("llvm -num-cores=2")
    lanes = target.vector_bits // 32
    counts = (1, 2, 2 * lanes - 1, 2 * lanes + 1, 3 * 2 * lanes + 5)
    past = te.var("past", "int32", max_value=1 << 20)

    def build(keys):  # type: ignore[no-untyped-def]
        tiles = choose_tiles(1, keys if isinstance(keys, int) else 1024, lanes, target.vector_registers)
        q_t, k_t = te.placeholder((3, 1, d), name="q"), te.placeholder((3, keys, d), name="k")
        v_t, mask_t = te.placeholder((3, keys, dv), name="v"), te.placeholder((1, 1, keys), name="mask")
        view = te.compute((3, d, keys), lambda h, i, j: k_t[h, j, i], name="k_t")
        out_t = attention(q_t, view, v_t, tiles, [mask_t], 0.25)
        s = schedule_cpu([out_t], target)
        args = [q_t, k_t, v_t, mask_t, out_t]
        source = str(tcomp.lower(s, args, simple_mode=True))
        if not isinstance(keys, int) or keys > 1:  # one key: its row index is a constant, not a row stride
            assert "packedK" not in source and "packedV" not in source
        return tcomp.build(s, args, target=target, check_bounds=True)

    shared = build(past + 1) if symbolic else None
    for count in counts:
        module = shared or build(count)
        q, k, v, mask = (random_data(RNG, shape) for shape in ((3, 1, d), (3, count, d), (3, count, dv),
                                                               (1, 1, count)))
        out = np.full((3, 1, dv), np.nan, dtype=np.float32)
        module(q, k, v, mask, out)
        expected = reference(q, k.transpose(0, 2, 1), v, [mask], 0.25, None)
        np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(("d", "dv", "heads"), [(64, 64, 3), (5, 9, 2)])
def test_a_symbolic_number_of_queries(d: int, dv: int, heads: int) -> None:
    """Self-attention over a prompt of symbolic length ``n`` (as many queries as keys, a causal mask of
    ``[n, n]``): one kernel for every length, the query rows padded to whole blocks; against numpy for lengths no
    tile divides, every access bounds-checked."""
    target = Target("llvm -num-cores=2")
    n = te.var("n", "int32", max_value=1 << 20)
    tiles = choose_tiles(37, 37, target.vector_bits // 32, target.vector_registers)
    q_t, k_t = te.placeholder((heads, n, d), name="q"), te.placeholder((heads, n, d), name="k")
    v_t, mask_t = te.placeholder((heads, n, dv), name="v"), te.placeholder((1, n, n), name="mask")
    view = te.compute((heads, d, n), lambda h, i, j: k_t[h, j, i], name="k_t")
    out_t = attention(q_t, view, v_t, tiles, [mask_t], 0.25)
    module = tcomp.build(schedule_cpu([out_t], target), [q_t, k_t, v_t, mask_t, out_t], target=target,
                         check_bounds=True)
    for length in (2, 3, tiles.mr + 1, 2 * tiles.nr + 3, 100):
        q, k, v = (random_data(RNG, (heads, length, width)) for width in (d, d, dv))
        mask = np.triu(np.full((length, length), -1e9, np.float32), 1)[None]
        out = np.full((heads, length, dv), np.nan, dtype=np.float32)
        module(q, k, v, mask, out)
        expected = reference(q, k.transpose(0, 2, 1), v, [mask], 0.25, None)
        np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("queries", ["symbolic", 1, 7])
def test_a_symbolic_batch(queries: object) -> None:
    """A batch of prompts of symbolic size ``b`` and length ``n`` as a transformer's projections give them: Q, K
    and V read through views of one ``[b*n, 3*heads*d]`` matrix (rows of the product of the dimensions), each prompt
    its own mask ``[b, 1, n, n]``, the result written ``[b, n, heads, d]``; one kernel for every size and length
    (or every batch size, for a fixed number of queries and keys), against numpy, every access bounds-checked."""
    target = Target("llvm -num-cores=2")
    heads, d = 3, 16
    b = te.var("b", "int32", max_value=1 << 10, min_value=2)
    n = te.var("n", "int32", max_value=1 << 10, min_value=2) if queries == "symbolic" else queries
    tiles = choose_tiles(37 if queries == "symbolic" else queries, 37 if queries == "symbolic" else queries,
                         target.vector_bits // 32, target.vector_registers)
    qkv = te.placeholder((b * n, 3 * heads * d), name="qkv")
    mask_t = te.placeholder((b, 1, n, n), name="mask")

    def part(offset: int, transposed: bool = False) -> te.Tensor:
        if transposed:
            return te.compute((b, heads, d, n), lambda t, h, e, j: qkv[t * n + j, offset + h * d + e], name="k_t")
        return te.compute((b, heads, n, d), lambda t, h, i, e: qkv[t * n + i, offset + h * d + e], name="part")

    out_t = attention(part(0), part(heads * d, True), part(2 * heads * d), tiles, [mask_t], 0.25, perm=(0, 2, 1, 3))
    module = tcomp.build(schedule_cpu([out_t], target), [qkv, mask_t, out_t], target=target, check_bounds=True)
    for batch, length in ((2, 2), (3, 9), (5, 40)):
        length = length if queries == "symbolic" else queries
        x = random_data(RNG, (batch * length, 3 * heads * d))
        kept = RNG.integers(1, length + 1, batch)
        mask = np.where(np.arange(length)[None, None, None, :] < kept[:, None, None, None], 0.0, -1e9)
        mask = np.ascontiguousarray(np.broadcast_to(mask, (batch, 1, length, length)), dtype=np.float32)
        out = np.full((batch, length, heads, d), np.nan, dtype=np.float32)
        sizes = {"b": batch, "n": length} if queries == "symbolic" else {"b": batch}
        module(x, mask, out, sizes=sizes)
        q, k, v = (x.reshape(batch, length, 3, heads, d)[:, :, i].transpose(0, 2, 1, 3) for i in range(3))
        expected = reference(q, k.transpose(0, 1, 3, 2), v, [mask], 0.25, None).transpose(0, 2, 1, 3)
        np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-5)
