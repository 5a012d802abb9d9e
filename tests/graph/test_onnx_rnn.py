"""RNN, GRU and LSTM (``frontend/onnx_rnn.py``), unrolled, against onnxruntime on random inputs of odd sizes: every
direction, batch-first layout, initial states, biases, clipping, other activations, GRU's linear_before_reset and
LSTM's peepholes."""

from __future__ import annotations

import numpy as np
import pytest

import tcomp.graph as tg
from tests.graph.ort_reference import check_node, single_node_model

RNG = np.random.default_rng(41)
GATES = {"RNN": 1, "GRU": 3, "LSTM": 4}


def _inputs(kind: str, seq: int, batch: int, size: int, hidden: int, directions: int, layout: int = 0,
            extras: bool = True, peepholes: bool = False) -> dict[str, np.ndarray]:
    """The operands in the operator's order (``""``: sequence_lens, omitted); ``extras``: biases, initial states."""
    gates = GATES[kind]

    def rand(*shape: int) -> np.ndarray:
        return RNG.uniform(-0.6, 0.6, shape).astype(np.float32)

    x = rand(batch, seq, size) if layout else rand(seq, batch, size)
    inputs = {"X": x, "W": rand(directions, gates * hidden, size), "R": rand(directions, gates * hidden, hidden)}
    if not extras:
        return inputs
    inputs["B"] = rand(directions, 2 * gates * hidden)
    inputs[""] = np.zeros(0, np.float32)
    state = (batch, directions, hidden) if layout else (directions, batch, hidden)
    inputs["initial_h"] = rand(*state)
    if kind == "LSTM":
        inputs["initial_c"] = rand(*state)
    if peepholes:
        inputs["P"] = rand(directions, 3 * hidden)
    return inputs


def _check(kind: str, inputs: dict[str, np.ndarray], attrs: dict[str, object], opset: int = 14) -> None:
    outputs = 3 if kind == "LSTM" else 2
    check_node(kind, inputs, attrs, opset=opset, outputs=outputs, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kind", ["RNN", "GRU", "LSTM"])
@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
def test_directions_with_biases_and_initial_states(kind: str, direction: str) -> None:
    directions = 2 if direction == "bidirectional" else 1
    inputs = _inputs(kind, seq=5, batch=3, size=7, hidden=6, directions=directions)
    _check(kind, inputs, {"hidden_size": 6, "direction": direction})


@pytest.mark.parametrize("kind", ["RNN", "GRU", "LSTM"])
def test_batch_first_layout(kind: str) -> None:
    """layout 1 (onnxruntime has none): equal to layout 0 on the transposed operands."""
    inputs = _inputs(kind, seq=4, batch=2, size=5, hidden=3, directions=2, layout=1)
    attrs = {"hidden_size": 3, "direction": "bidirectional"}
    outputs = 3 if kind == "LSTM" else 2
    batch_first = tg.compile(single_node_model(kind, inputs, outputs, {**attrs, "layout": 1}, 14))
    got = batch_first.run({k: v for k, v in inputs.items() if k})
    seq_first = {k: (v.transpose(1, 0, 2) if k in ("X", "initial_h", "initial_c") else v) for k, v in inputs.items()}
    want = check_node(kind, seq_first, attrs, opset=14, outputs=outputs, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(got[0], want[0].transpose(2, 0, 1, 3), rtol=1e-5, atol=1e-6)
    for g, w in zip(got[1:], want[1:]):
        np.testing.assert_allclose(g, w.transpose(1, 0, 2), rtol=1e-5, atol=1e-6)


def test_defaults_without_bias_or_state() -> None:
    for kind in ("RNN", "GRU", "LSTM"):
        _check(kind, _inputs(kind, seq=3, batch=1, size=2, hidden=5, directions=1, extras=False), {"hidden_size": 5})


def test_gru_linear_before_reset_and_clip() -> None:
    inputs = _inputs("GRU", seq=6, batch=3, size=4, hidden=5, directions=1)
    _check("GRU", inputs, {"hidden_size": 5, "linear_before_reset": 1})
    _check("GRU", {**inputs, "X": inputs["X"] * 8}, {"hidden_size": 5, "clip": 0.7})


def test_lstm_peepholes_and_input_forget() -> None:
    inputs = _inputs("LSTM", seq=4, batch=3, size=5, hidden=4, directions=2, peepholes=True)
    _check("LSTM", inputs, {"hidden_size": 4, "direction": "bidirectional"})
    _check("LSTM", inputs, {"hidden_size": 4, "direction": "bidirectional", "input_forget": 1})


def test_other_activations_with_alphas() -> None:
    inputs = _inputs("RNN", seq=3, batch=2, size=3, hidden=4, directions=2)
    _check("RNN", inputs, {"hidden_size": 4, "direction": "bidirectional", "activations": ["LeakyRelu", "HardSigmoid"],
                           "activation_alpha": [0.3, 0.4], "activation_beta": [0.6]})
    lstm = _inputs("LSTM", seq=3, batch=2, size=3, hidden=4, directions=1)
    _check("LSTM", lstm, {"hidden_size": 4, "activations": ["HardSigmoid", "Relu", "Softsign"],
                          "activation_alpha": [0.25], "activation_beta": [0.45]})


@pytest.mark.parametrize("kind", ["RNN", "GRU", "LSTM"])
@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
def test_shorter_sequence_lengths(kind: str, direction: str) -> None:
    """Entries shorter than the sequence keep their state past their end and give zeros there."""
    directions = 2 if direction == "bidirectional" else 1
    inputs = _inputs(kind, seq=5, batch=3, size=4, hidden=3, directions=directions)
    inputs = {**{k: v for k, v in inputs.items() if k != ""}, "sequence_lens": np.array([5, 2, 3], np.int32)}
    order = ["X", "W", "R", "B", "sequence_lens", "initial_h", "initial_c"]
    inputs = {k: inputs[k] for k in order if k in inputs}
    check_node(kind, inputs, {"hidden_size": 3, "direction": direction}, opset=14,
               outputs=3 if kind == "LSTM" else 2, constants=["sequence_lens"], rtol=1e-4, atol=1e-5)


def test_sequence_lengths_from_a_graph_input_specialize() -> None:
    from tests.graph.ort_reference import run_both

    inputs = _inputs("GRU", seq=4, batch=2, size=3, hidden=2, directions=1)
    inputs = {"X": inputs["X"], "W": inputs["W"], "R": inputs["R"], "B": inputs["B"],
              "sequence_lens": np.array([4, 2], np.int32)}
    model = single_node_model("GRU", inputs, 2, {"hidden_size": 2}, 14)
    executor = tg.compile(model)
    for lengths in ([4, 2], [1, 3]):
        feeds = {**inputs, "sequence_lens": np.array(lengths, np.int32)}
        got = executor.run(feeds)
        _, want = run_both(model, feeds)
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)
    assert executor.compilations == 2
    with pytest.raises(tg.GraphError, match="length from 1 to 4"):
        executor.run({**inputs, "sequence_lens": np.array([0, 5], np.int32)})
