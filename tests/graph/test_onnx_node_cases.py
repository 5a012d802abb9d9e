"""Every supported ONNX operator against onnx's backend node test cases (the outputs of onnx's reference).

Cases are compiled with the full pipeline and run by the executor, exactly as the cases give them: inputs that
decide shapes (Reshape's shape, Slice's starts, Pad's pads ...) stay graph inputs, and the executor specializes on
their values. Results must match within rtol 1e-3 / atol 1e-4 (bfloat16 within two units in the last place, exactly
for integer and bool results).
``SKIPPED`` lists, by case-name fragment, the cases that use something tcomp does not support, with the reason;
each of them is checked to fail with a tcomp ``GraphError`` (a clear message), never with another exception.
"""

from __future__ import annotations

import pytest

import tcomp.graph as tg
from tests.graph.onnx_cases import (
    as_array,
    check_random,
    compare,
    element_types_supported,
    node_cases,
    random_case,
    sample_cases,
)

SKIPPED: dict[str, str] = {
    "string": "string tensors are not supported",
    "identity_sequence": "sequence types are not supported",
    "identity_opt": "optional types are not supported",
    "E8M0": "float8_e8m0 is not supported",
    "e8m0": "float8_e8m0 is not supported",
    "FLOAT4": "float4 is not supported",
}


def _matches(fragment: str, name: str) -> bool:
    """A whole case name (``test_...``) matches that case alone; any other fragment every name containing it."""
    return name == fragment if fragment.startswith("test_") else fragment in name


def _skip_reason(name: str) -> str | None:
    for fragment, reason in SKIPPED.items():
        if _matches(fragment, name):
            return reason
    if not element_types_supported(node_cases()[name]):
        return "an element type tcomp does not support (float8_e8m0, float4, string ...)"
    return None


# Compiling takes about 0.2 s per kernel, so each operator is tested on its first cases by name (more for the
# operators with many modes); skipped cases cost nothing and are all kept.
PER_OP = 4
LIMITS = {"Resize": 14, "Cast": 8, "AveragePool": 6, "MaxPool": 6, "ConvTranspose": 6, "Gemm": 6, "Split": 5,
          "Pad": 6, "LayerNormalization": 5, "Slice": 6, "Pow": 5, "Clip": 5}
# cases of modes the first cases by name miss (3-D, indices, Lp pooling, filtered resizing, zero-size tensors,
# batch normalization in training mode, random draws, bfloat16, 8-bit floats, 4- and 2-bit integers)
ALSO = ("pool_3d_default", "convtranspose_3d", "with_argmax", "lppool_3d", "cubic_antialias", "linear_antialias",
        "empty_set", "zero_size", "allowzero", "start_out_of_bounds", "training_mode", "training_dropout", "bernoulli",
        "bf16", "bfloat16", "BFLOAT16", "int4", "INT4", "int2", "INT2", "FLOAT8", "e4m3", "e5m2")
_ALL = sorted(node_cases())
CASES = sorted({n for n in _ALL if _skip_reason(n) is not None or any(f in n for f in ALSO)}
               | set(sample_cases([n for n in _ALL if _skip_reason(n) is None], PER_OP, LIMITS)))


@pytest.mark.parametrize("name", CASES)
def test_node_case(name: str) -> None:
    case = node_cases()[name]
    reason = _skip_reason(name)
    if reason is not None:
        with pytest.raises(tg.GraphError):
            tg.compile(case.model).run([as_array(v) for v in case.data_sets[0][0]])
        pytest.skip(reason)
    executor = tg.compile(case.model)
    for inputs, expected in case.data_sets:
        outputs = executor.run([as_array(v) for v in inputs])
        assert outputs is not None and len(outputs) == len(expected)
        if random_case(name):  # drawn by another generator: the values must be ones the draw allows
            assert check_random(name, [as_array(v) for v in inputs], outputs, [as_array(w) for w in expected]) == ""
            continue
        for got, want in zip(outputs, expected):
            assert compare(got, as_array(want)) == ""
