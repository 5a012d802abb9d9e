"""Constants shared by the compilations of one model (``tcomp.graph.shared_constants``): a decoder exported with a
symbolic cache length (``tests/data/hf_models/export_decode.py``) compiled once per length (without
``symbolic_dimensions``); every length matches PyTorch, the weights are read and packed once for all of them, and
the constants of dropped specializations go."""

from __future__ import annotations

import numpy as np
import pytest

import tcomp.graph as tg
from tcomp.graph.shared_constants import SharedConstants, derive
from tests.graph.hf_data import DATA, assert_matches_pytorch, stored, stored_lengths

DYNAMIC = ["gpt2_decode_dynamic_tiny", "llama_decode_dynamic_tiny"]
LARGE = 4096  # bytes: the weights, not the small constants a specialization derives from its shapes


def _large_params(executor: tg.GraphExecutor) -> dict[str, np.ndarray]:
    return {name: value for name, value in executor.program.params.items() if value.nbytes >= LARGE}


def test_a_constant_is_derived_once_per_key_and_source() -> None:
    constants = SharedConstants()
    weight = np.arange(12.0).reshape(3, 4)
    calls: list[int] = []

    def transposed() -> np.ndarray:
        calls.append(1)
        return np.ascontiguousarray(weight.T)

    with constants.use("a"):
        first = derive(constants, ("transpose",), [weight], transposed)
    with constants.use("b"):
        again = derive(constants, ("transpose",), [weight], transposed)
        other = derive(constants, ("transpose",), [weight.copy()], transposed)  # another source array
    assert again is first and other is not first and len(calls) == 2
    np.testing.assert_array_equal(first, weight.T)
    with pytest.raises(ValueError, match="read-only"):
        first[0, 0] = 1.0  # shared: no compilation may change it for the others
    assert (constants.hits, constants.misses, len(constants)) == (1, 2, 2)


def test_small_sources_are_keyed_by_value() -> None:
    """A zero point or scalar is made anew by every import: equal small sources share what is derived from them,
    different ones do not."""
    constants = SharedConstants()
    first = derive(constants, ("negate",), [np.array(3, np.int32)], lambda: np.array(-3, np.int32))
    again = derive(constants, ("negate",), [np.array(3, np.int32)], lambda: np.array(-3, np.int32))
    other = derive(constants, ("negate",), [np.array(4, np.int32)], lambda: np.array(-4, np.int32))
    assert again is first and int(other) == -4


def test_released_constants_go_with_their_last_user() -> None:
    constants = SharedConstants()
    weight = np.ones(8)
    with constants.use("a"):
        derive(constants, ("double",), [weight], lambda: weight * 2)
        derive(constants, ("half",), [weight], lambda: weight / 2)
    with constants.use("b"):
        derive(constants, ("double",), [weight], lambda: weight * 2)
    constants.release("a")
    assert len(constants) == 1 and constants.nbytes == weight.nbytes  # "double" is still b's
    constants.release("b")
    assert len(constants) == 0


def test_without_constants_or_a_hashable_key_it_simply_computes() -> None:
    weight = np.ones(4)
    assert derive(None, ("double",), [weight], lambda: weight * 2).flags.writeable
    constants = SharedConstants()
    unhashable = ("value", [1, 2])
    assert derive(constants, unhashable, [weight], lambda: weight * 2).flags.writeable
    assert len(constants) == 0


@pytest.mark.parametrize("name", DYNAMIC)
def test_every_cache_length_matches_pytorch_with_the_weights_shared(name: str) -> None:
    """Three cache lengths, three compilations of one ``SpecializingExecutor``: each matches PyTorch, and every
    weight-sized parameter (read from the file, packed, merged or folded) is one array for all three."""
    lengths = stored_lengths(name)
    assert len(lengths) == 3 and None not in lengths
    executor = tg.compile(DATA / f"{name}.onnx", target="llvm -num-cores=2", symbolic_dimensions=False)
    assert isinstance(executor, tg.SpecializingExecutor)
    assert_matches_pytorch(name, executor)
    assert executor.compilations == 3
    first, *others = [_large_params(e) for e in executor.specializations.values()]
    assert sum(a.nbytes for a in first.values()) > 100_000  # the model's weights, in whatever form they run
    for params in others:
        assert sorted(params) == sorted(first)
        assert all(params[n] is first[n] for n in first), "a later specialization has a copy of a weight"
    assert all(not a.flags.writeable for a in first.values())


@pytest.mark.parametrize("name", DYNAMIC)
def test_a_dropped_specialization_leaves_no_constant_of_its_own(name: str) -> None:
    executor = tg.compile(DATA / f"{name}.onnx", target="llvm -num-cores=2", symbolic_dimensions=False)
    executor.max_specializations = 1
    held = []
    for length in stored_lengths(name):
        executor.run(stored(name, length)[0])
        held.append(executor.constants.nbytes)
    assert len(executor.specializations) == 1 and executor.compilations == 3
    assert max(held) - min(held) < LARGE  # the weights, and the shapes' small constants of the live one only
    assert executor.constants.hits > 0
    [live] = executor.specializations
    executor.constants.release(live)
    assert len(executor.constants) == 0  # no entry outlived the specializations that used it
