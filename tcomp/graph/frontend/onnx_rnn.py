"""ONNX recurrent layers, ``RNN``, ``GRU`` and ``LSTM``, unrolled over their (static) sequence length.

Each direction is composed from graph operators: the input projection of every step at once (one ``matmul`` of
the whole sequence by ``W``, plus ``W``'s bias), then per step the recurrent product ``H @ R^T`` (plus ``R``'s
bias), the gates split apart, their activations and the state update; the steps' hidden states are stacked into
``Y``. ``direction`` (forward, reverse, bidirectional), ``layout`` (batch first), ``clip`` (applied to the
activations' inputs), ``activations`` with their ``activation_alpha`` / ``activation_beta`` (consumed in order by the
functions that take them), GRU's ``linear_before_reset`` and LSTM's peepholes and ``input_forget`` are supported.
``sequence_lens`` must be known at compile time (graph inputs that give it are specialized on): an entry shorter than
the sequence keeps its state after its last step and gives zeros past it; in reverse it starts from its own last
step. Gate orders are ONNX's: RNN ``i``; GRU ``z r h``; LSTM ``i o f c``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx

from tcomp.graph.frontend.onnx_builder import Builder
from tcomp.graph.frontend.onnx_common import Attrs, converts, optional, reshape, scalar_param
from tcomp.ir import dtype as dt

# activation -> (graph operator, takes alpha, takes beta, default alpha, default beta)
_ACTIVATIONS: dict[str, tuple[str, bool, bool, float, float]] = {
    "Sigmoid": ("sigmoid", False, False, 0.0, 0.0),
    "Tanh": ("tanh", False, False, 0.0, 0.0),
    "Relu": ("relu", False, False, 0.0, 0.0),
    "Softsign": ("softsign", False, False, 0.0, 0.0),
    "Softplus": ("softplus", False, False, 0.0, 0.0),
    "HardSigmoid": ("hard_sigmoid", True, True, 0.2, 0.5),
    "LeakyRelu": ("leaky_relu", True, False, 0.01, 0.0),
    "ThresholdedRelu": ("thresholded_relu", True, False, 1.0, 0.0),
    "Elu": ("elu", True, False, 1.0, 0.0),
    "Affine": ("affine", True, True, 1.0, 0.0),
    "ScaledTanh": ("scaled_tanh", True, True, 1.0, 1.0),
}


@dataclass(frozen=True)
class Activation:
    name: str
    alpha: float
    beta: float

    def apply(self, b: Builder, x: str) -> str:
        op = _ACTIVATIONS[self.name][0]
        dtype = b.type(x).dtype
        if op == "affine":
            scaled = b.add1("multiply", [x, scalar_param(b, self.alpha, dtype, "alpha")])
            return b.add1("add", [scaled, scalar_param(b, self.beta, dtype, "beta")])
        if op == "scaled_tanh":
            inner = b.add1("tanh", [b.add1("multiply", [x, scalar_param(b, self.beta, dtype, "beta")])])
            return b.add1("multiply", [inner, scalar_param(b, self.alpha, dtype, "alpha")])
        attrs = {"alpha": self.alpha} if _ACTIVATIONS[self.name][1] else {}
        if _ACTIVATIONS[self.name][2]:
            attrs["beta"] = self.beta
        return b.add1(op, [x], **attrs)


def _activations(b: Builder, a: Attrs, defaults: list[str], directions: int) -> list[list[Activation]]:
    """The activation functions of each direction."""
    names = a.strings("activations") if a.has("activations") else defaults * directions
    if len(names) != len(defaults) * directions:
        raise b.error(f"activations {names} must name {len(defaults) * directions} functions "
                      f"({len(defaults)} per direction)")
    alphas = list(a.floats("activation_alpha", []) or [])
    betas = list(a.floats("activation_beta", []) or [])
    functions = []
    for name in names:
        if name not in _ACTIVATIONS:
            raise b.error(f"activation {name!r} is not supported (supported: {', '.join(_ACTIVATIONS)})")
        _, takes_alpha, takes_beta, alpha, beta = _ACTIVATIONS[name]
        if takes_alpha and alphas:
            alpha = alphas.pop(0)
        if takes_beta and betas:
            beta = betas.pop(0)
        functions.append(Activation(name, alpha, beta))
    return [functions[d * len(defaults):(d + 1) * len(defaults)] for d in range(directions)]


@dataclass
class Layer:
    """One recurrent node's operands, in ONNX's layout (sequence first), and its settings."""

    kind: str  # "RNN", "GRU" or "LSTM"
    x: str
    seq: int
    batch: int
    hidden: int
    gates: int
    directions: int
    clip: float | None
    lengths: np.ndarray | None  # each batch entry's sequence length (None: all of it)

    def direction_slice(self, b: Builder, name: str, d: int, shape: tuple[int, ...]) -> str:
        """Direction ``d`` of a ``[directions, ...]`` operand, reshaped to ``shape``."""
        one = b.add1("strided_slice", [name], begin=(d,), end=(d + 1,), strides=(1,), axes=(0,))
        return reshape(b, one, shape)


def _clip(b: Builder, layer: Layer, x: str) -> str:
    if layer.clip is None:
        return x
    return b.add1("clip", [x], min=-layer.clip, max=layer.clip)


def _row(b: Builder, name: str, t: int, rows: int) -> str:
    """Step ``t`` of a ``[seq, batch, width]`` tensor, as ``[batch, width]``."""
    shape = b.type(name).shape
    one = b.add1("strided_slice", [name], begin=(t,), end=(t + 1,), strides=(1,), axes=(0,))
    return reshape(b, one, (rows, shape[2]))


def _split(b: Builder, name: str, parts: int) -> list[str]:
    width = b.type(name).shape[1] // parts
    return b.add("split", [name], parts, axis=1, sizes=(width,) * parts)


def _rows(b: Builder, flat: str, rows: list[int]) -> str:
    """Rows ``rows`` of a 2-D tensor (a ``take`` by constant indices)."""
    return b.add1("take", [flat, b.param(np.array(rows, np.int64), f"{b.node_name}/rows")], axis=0)


def _masked(b: Builder, valid: np.ndarray, new: str, old: str) -> str:
    """``new`` for the batch entries ``valid`` marks, ``old`` for the others."""
    if valid.all():
        return new
    mask = b.param(valid.reshape(-1, 1), f"{b.node_name}/valid")
    return b.add1("where", [mask, new, old])


def _run_direction(b: Builder, layer: Layer, d: int, operands: dict[str, str], fns: list[Activation],
                   reverse: bool, linear_before_reset: bool, input_forget: bool) -> tuple[list[str], str, str]:
    """The hidden states of every step (in sequence order), the last hidden state and (LSTM) the last cell. With
    ``layer.lengths``, batch entry ``b`` runs its first ``lengths[b]`` steps (backwards from its own last step in
    reverse), keeps its state after them and gives zeros for the steps past its end."""
    hidden, gates, batch = layer.hidden, layer.gates, layer.batch
    dtype = b.type(layer.x).dtype
    w = layer.direction_slice(b, operands["W"], d, (gates * hidden, b.type(operands["W"]).shape[2]))
    r = layer.direction_slice(b, operands["R"], d, (gates * hidden, hidden))
    x_flat = reshape(b, layer.x, (layer.seq * batch, b.type(layer.x).shape[2]))
    projected = b.add1("matmul", [x_flat, b.add1("transpose", [w], perm=(1, 0))])
    r_t = b.add1("transpose", [r], perm=(1, 0))
    w_bias = r_bias = ""
    if operands.get("B"):
        bias = layer.direction_slice(b, operands["B"], d, (2, gates * hidden))
        w_bias = reshape(b, b.add1("strided_slice", [bias], begin=(0,), end=(1,), strides=(1,), axes=(0,)),
                         (gates * hidden,))
        r_bias = reshape(b, b.add1("strided_slice", [bias], begin=(1,), end=(2,), strides=(1,), axes=(0,)),
                         (gates * hidden,))
        if layer.kind != "GRU":  # both biases add to every gate's input; GRU's h gate keeps R's apart
            projected = b.add1("add", [projected, b.add1("add", [w_bias, r_bias])])
            r_bias = ""
        else:
            projected = b.add1("add", [projected, w_bias])
    projected = reshape(b, projected, (layer.seq, batch, gates * hidden))
    zeros = b.param(np.zeros((batch, hidden), dtype=dt.to_numpy(dtype)), f"{b.node_name}/zeros")
    h = layer.direction_slice(b, operands["initial_h"], d, (batch, hidden)) if operands.get("initial_h") else zeros
    c = layer.direction_slice(b, operands["initial_c"], d, (batch, hidden)) if operands.get("initial_c") else zeros
    peepholes = _split(b, reshape(b, layer.direction_slice(b, operands["P"], d, (3 * hidden,)), (1, 3 * hidden)), 3) \
        if operands.get("P") else []
    one = scalar_param(b, 1.0, dtype, "one")
    lengths = layer.lengths if layer.lengths is not None else np.full(batch, layer.seq)
    uniform = bool(np.all(lengths == layer.seq))
    flat = projected if uniform else reshape(b, projected, (layer.seq * batch, gates * hidden))
    states = []
    for k in range(layer.seq):
        if not reverse:
            x_part = _row(b, projected, k, batch)
        elif uniform:
            x_part = _row(b, projected, layer.seq - 1 - k, batch)
        else:  # each batch entry from its own last step backwards
            x_part = _rows(b, flat, [max(n - 1 - k, 0) * batch + e for e, n in enumerate(lengths)])
        if layer.kind == "GRU":
            h_new, c_new = _gru_step(b, layer, x_part, h, r_t, r_bias, fns, linear_before_reset, one), c
        else:
            total = b.add1("add", [x_part, b.add1("matmul", [h, r_t])])
            if layer.kind == "RNN":
                h_new, c_new = fns[0].apply(b, _clip(b, layer, total)), c
            else:
                h_new, c_new = _lstm_step(b, layer, total, c, peepholes, fns, input_forget, one)
        valid = k < lengths
        h, c = _masked(b, valid, h_new, h), _masked(b, valid, c_new, c)
        states.append(_masked(b, valid, h_new, zeros))
    if reverse and uniform:
        states.reverse()
    elif reverse:  # step k of entry e is its time lengths[e] - 1 - k
        stacked = reshape(b, b.add1("concat", [reshape(b, s, (1, batch, hidden)) for s in states], axis=0)
                          if layer.seq > 1 else states[0], (layer.seq * batch, hidden))
        states = [_masked(b, t < lengths, _rows(b, stacked, [max(n - 1 - t, 0) * batch + e
                                                                  for e, n in enumerate(lengths)]), zeros)
                  for t in range(layer.seq)]
    return states, h, c


def _gru_step(b: Builder, layer: Layer, x_part: str, h: str, r_t: str, r_bias: str, fns: list[Activation],
              linear_before_reset: bool, one: str) -> str:
    f, g = fns
    x_z, x_r, x_h = _split(b, x_part, 3)
    recurrent = b.add1("matmul", [h, r_t])
    if r_bias:
        recurrent = b.add1("add", [recurrent, r_bias])
    h_z, h_r, h_h = _split(b, recurrent, 3)
    z = f.apply(b, _clip(b, layer, b.add1("add", [x_z, h_z])))
    r = f.apply(b, _clip(b, layer, b.add1("add", [x_r, h_r])))
    if linear_before_reset:
        candidate_in = b.add1("add", [x_h, b.add1("multiply", [r, h_h])])
    else:  # (r * H) @ R_h^T + R_h's bias
        hidden = layer.hidden
        r_h_t = b.add1("strided_slice", [r_t], begin=(2 * hidden,), end=(3 * hidden,), strides=(1,), axes=(1,))
        reset = b.add1("matmul", [b.add1("multiply", [r, h]), r_h_t])
        if r_bias:
            bias_h = b.add1("strided_slice", [r_bias], begin=(2 * hidden,), end=(3 * hidden,), strides=(1,), axes=(0,))
            reset = b.add1("add", [reset, bias_h])
        candidate_in = b.add1("add", [x_h, reset])
    candidate = g.apply(b, _clip(b, layer, candidate_in))
    keep = b.add1("multiply", [z, h])
    return b.add1("add", [b.add1("multiply", [b.add1("subtract", [one, z]), candidate]), keep])


def _lstm_step(b: Builder, layer: Layer, total: str, c: str, peepholes: list[str], fns: list[Activation],
               input_forget: bool, one: str) -> tuple[str, str]:
    f, g, h_fn = fns
    x_i, x_o, x_f, x_c = _split(b, total, 4)
    if peepholes:
        p_i, p_o, p_f = peepholes
        x_i = b.add1("add", [x_i, b.add1("multiply", [p_i, c])])
        x_f = b.add1("add", [x_f, b.add1("multiply", [p_f, c])])
    i = f.apply(b, _clip(b, layer, x_i))
    forget = b.add1("subtract", [one, i]) if input_forget else f.apply(b, _clip(b, layer, x_f))
    cell = g.apply(b, _clip(b, layer, x_c))
    c = b.add1("add", [b.add1("multiply", [forget, c]), b.add1("multiply", [i, cell])])
    if peepholes:
        x_o = b.add1("add", [x_o, b.add1("multiply", [peepholes[1], c])])
    o = f.apply(b, _clip(b, layer, x_o))
    return b.add1("multiply", [o, h_fn.apply(b, c)]), c


def _recurrent(kind: str, gates: int, defaults: list[str]) -> object:
    def convert(b: Builder, node: onnx.NodeProto, ins: list[str], a: Attrs, v: int) -> list[str]:
        names = ["X", "W", "R", "B", "sequence_lens", "initial_h"] + (["initial_c", "P"] if kind == "LSTM" else [])
        operands = {name: optional(ins, i) for i, name in enumerate(names)}
        x = operands["X"]
        layout = a.int("layout", 0) if v >= 14 else 0
        if b.type(x).ndim != 3:
            raise b.error(f"X must be 3-D, got {b.type(x)}")
        if layout == 1:  # batch first: to sequence first, and back at the end
            x = b.add1("transpose", [x], perm=(1, 0, 2))
            for key in ("initial_h", "initial_c"):
                if operands.get(key):
                    operands[key] = b.add1("transpose", [operands[key]], perm=(1, 0, 2))
        seq, batch, _ = b.type(x).shape
        direction = a.string("direction", "forward")
        if direction not in ("forward", "reverse", "bidirectional"):
            raise b.error(f"direction {direction!r} is not forward, reverse or bidirectional")
        directions = 2 if direction == "bidirectional" else 1
        hidden = b.type(operands["R"]).shape[-1]
        if a.has("hidden_size") and a.int("hidden_size") != hidden:
            raise b.error(f"hidden_size {a.int('hidden_size')} differs from R's {hidden}")
        if b.type(operands["W"]).shape[:2] != (directions, gates * hidden):
            raise b.error(f"W {b.type(operands['W'])} must be [{directions}, {gates * hidden}, input_size]")
        lengths = None
        if operands["sequence_lens"]:
            lengths = b.require_const(operands["sequence_lens"], "sequence_lens (they decide which steps run)")
            if lengths.shape != (batch,) or not np.all((lengths >= 1) & (lengths <= seq)):
                raise b.error(f"sequence_lens {lengths.tolist()} must give each of the {batch} batch entries a "
                              f"length from 1 to {seq}")
        clip = a.float("clip", 0.0) if a.has("clip") else None
        layer = Layer(kind, x, seq, batch, hidden, gates, directions, clip, lengths)
        fns = _activations(b, a, defaults, directions)
        linear = bool(a.int("linear_before_reset", 0)) if kind == "GRU" else False
        forget = bool(a.int("input_forget", 0)) if kind == "LSTM" else False
        ys, hs, cs = [], [], []
        for d in range(directions):
            reverse = direction == "reverse" or d == 1
            states, h, c = _run_direction(b, layer, d, operands, fns[d], reverse, linear, forget)
            ys.append([reshape(b, s, (1, 1, batch, hidden)) for s in states])
            hs.append(reshape(b, h, (1, batch, hidden)))
            cs.append(reshape(b, c, (1, batch, hidden)))
        steps = [ys[0][t] if directions == 1 else b.add1("concat", [ys[0][t], ys[1][t]], axis=1)
                 for t in range(seq)]
        y = steps[0] if seq == 1 else b.add1("concat", steps, axis=0)
        y_h = hs[0] if directions == 1 else b.add1("concat", hs, axis=0)
        y_c = cs[0] if directions == 1 else b.add1("concat", cs, axis=0)
        if layout == 1:
            y = b.add1("transpose", [y], perm=(2, 0, 1, 3))
            y_h = b.add1("transpose", [y_h], perm=(1, 0, 2))
            y_c = b.add1("transpose", [y_c], perm=(1, 0, 2))
        results = [y, y_h, y_c] if kind == "LSTM" else [y, y_h]
        return [b.add1("identity", [r], output=name) if name else "" for r, name in zip(results, node.output)]

    return convert


converts("RNN", (7, 14, 22))(_recurrent("RNN", 1, ["Tanh"]))  # type: ignore[arg-type]
converts("GRU", (7, 14, 22))(_recurrent("GRU", 3, ["Sigmoid", "Tanh"]))  # type: ignore[arg-type]
converts("LSTM", (7, 14, 22))(_recurrent("LSTM", 4, ["Sigmoid", "Tanh", "Tanh"]))  # type: ignore[arg-type]
