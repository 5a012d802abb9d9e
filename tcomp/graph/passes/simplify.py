"""``simplify``: remove operators that compute nothing at inference and fold batch norm into convolutions.

Rewrites:

- ``identity``, ``dropout`` (inference), ``reshape`` to the same shape, ``transpose`` by the identity
  permutation and ``cast`` to the same dtype: readers use the input instead (a graph output keeps its name:
  ``forward_values``);
- ``batch_norm(conv2d(x, W) [+ b], scale, B, mean, var)``, where the weights and batch-norm statistics are
  parameters and the convolution (and bias add) feed nothing else, becomes ``conv2d(x, W * s) + (b - mean) * s + B``
  with ``s = scale / sqrt(var + epsilon)`` per output channel. The new weights and bias are graph nodes over the
  parameters; the next ``fold_constants`` computes them;
- ``tanh(z) + 1`` (a one-element parameter equal to 1, either operand; the ``tanh`` read by that ``add`` alone)
  becomes ``sigmoid(2 z) * 2``, the same function: the tanh form of GELU that GPT-2-class models export,
  ``0.5 x (1 + tanh(...))``, then takes one exponential and one division per element where ``tanh`` takes both
  branches of its range split (1.7x faster on a 2-core AVX2 machine), and rounds no better than the
  sigmoid, which has no cancellation where ``tanh(z)`` is close to -1;
- a ``conv2d`` whose first or last kernel rows or columns read only padding for every output position (a 3x3
  convolution over a 1x1 input reads its centre tap alone; a stride-2 one over 2x2, its last two rows and columns)
  becomes the convolution of the taps that read data: a ``strided_slice`` of the weights (computed by the next
  ``fold_constants`` when they are parameters) with the padding moved to match, the same output. The last stages
  of networks run on small inputs (a ResNet's at 32x32 or 64x64, a detector's extra layers) otherwise multiply
  zeros by up to 9x the weights they need: 3x3 512 -> 512 at 1x1 read 9.4 MB of weights for 1 MB of use;
- a ``conv2d`` whose taps read padding for part of its outputs (an atrous convolution whose rate is a large part
  of the plane: DeepLabV3's rates 12, 24 and 36) becomes one convolution per band of output rows x band of output
  columns that read data through the same taps (``tap_bands``), each over the input slice it reads, unpadded, with
  its taps, concatenated into the output: when the bands do at most ``BAND_WORK`` of the multiply-adds, the plane
  has ``MIN_BANDED_OUTPUTS`` positions or more and the bands are at most ``MAX_BANDS`` (each reads its taps'
  weights again). DeepLabV3-MobileNetV3's rate-12 3x3 960 -> 256 at 14x14 computes 18% of its products so.

Assumes a typed graph before fusion. Returns the same graph when nothing applies.
"""

from __future__ import annotations

from dataclasses import replace
from typing import NamedTuple

import numpy as np

from tcomp.graph.edit import Rewrite, forward_values
from tcomp.graph.ir import FreshNames, Graph, Node, make_node
from tcomp.ir import dtype as dt
from tcomp.ops.conv import conv_output_size


def _is_noop(graph: Graph, node: Node) -> bool:
    if node.op in ("identity", "dropout"):
        return True
    if node.op == "reshape":
        return graph.type_of(node.inputs[0]).shape == graph.type_of(node.outputs[0]).shape
    if node.op == "transpose":
        return tuple(node.attr("perm")) == tuple(range(len(node.attr("perm"))))
    if node.op == "cast":
        return graph.type_of(node.inputs[0]).dtype == graph.type_of(node.outputs[0]).dtype
    return False


def remove_noops(graph: Graph) -> Graph:
    forward: dict[str, str] = {}
    kept: list[Node] = []
    for node in graph.nodes:
        if _is_noop(graph, node):
            forward[node.outputs[0]] = node.inputs[0]
        else:
            kept.append(node)
    return forward_values(graph, kept, forward) if forward else graph


def fold_batch_norm(graph: Graph) -> Graph:
    edit = Rewrite(graph)
    producers, params, only_reader = edit.producers, edit.params, edit.read_only_by
    for node in graph.nodes:
        if node.op != "batch_norm" or any(p not in params for p in node.inputs[1:5]):
            continue
        source = producers.get(node.inputs[0])
        bias_node = None
        bias_value = ""
        if source is not None and source.op == "add" and only_reader(source.outputs[0], node):
            bias_node, source = source, None
            for position in (0, 1):
                candidate = producers.get(bias_node.inputs[position])
                other = bias_node.inputs[1 - position]
                if (candidate is not None and candidate.op == "conv2d" and other in params
                        and params[other].size == graph.type_of(candidate.outputs[0]).shape[1]):
                    source, bias_value = candidate, other
            if source is None or not only_reader(source.outputs[0], bias_node):
                continue
        if source is None or source.op != "conv2d" or source.inputs[1] not in params:
            continue
        if bias_node is None and not only_reader(source.outputs[0], node):
            continue
        edit.replacements[node.name] = _folded_nodes(graph, node, source, bias_value if bias_node is not None
                                                     else None, params, edit.names)
        edit.removed.add(source.name)
        if bias_node is not None:
            edit.removed.add(bias_node.name)
    return edit.result()


class _Emitter:
    def __init__(self, names: FreshNames, prefix: str) -> None:
        self.names = names
        self.prefix = prefix
        self.nodes: list[Node] = []

    def __call__(self, op: str, inputs: list[str], base: str, **attrs: object) -> str:
        out = self.names.fresh(f"{self.prefix}/{base}")
        self.nodes.append(make_node(op, self.names.fresh(f"{self.prefix}/{base}"), inputs, [out], **attrs))
        return out


def _folded_nodes(graph: Graph, node: Node, conv: Node, conv_bias: str | None, params: dict[str, np.ndarray],
                  names: FreshNames) -> list[Node]:
    """``conv2d(x, W * s) + (b - mean) * s + B`` replacing ``batch_norm(conv2d(x, W) [+ b])``."""
    channels = graph.type_of(conv.outputs[0]).shape[1]
    scale, shift, mean, var = node.inputs[1:5]
    dtype = graph.type_of(node.outputs[0]).dtype
    eps = names.fresh(f"{node.name}/eps")
    params[eps] = np.array(float(node.attr("epsilon", 1e-5)), dtype=dt.to_numpy(dtype))
    emit = _Emitter(names, node.name)
    std = emit("sqrt", [emit("add", [var, eps], "var_eps")], "std")
    factor = emit("divide", [scale, std], "factor")
    weight = emit("multiply", [conv.inputs[1], emit("reshape", [factor], "factor4", shape=(channels, 1, 1, 1))],
                  "weight")
    if conv_bias is not None:
        centered = emit("subtract", [emit("reshape", [conv_bias], "bias1", shape=(channels,)), mean], "centered")
    else:
        centered = emit("negative", [mean], "centered")
    bias = emit("add", [emit("multiply", [centered, factor], "scaled"), shift], "bias")
    bias4 = emit("reshape", [bias], "bias4", shape=(1, channels, 1, 1))
    conv_out = names.fresh(f"{conv.outputs[0]}/folded")
    emit.nodes.append(replace(conv, inputs=(conv.inputs[0], weight), outputs=(conv_out,)))
    emit.nodes.append(make_node("add", names.fresh(f"{node.name}/add"), [conv_out, bias4], [node.outputs[0]]))
    return emit.nodes


def tanh_plus_one(graph: Graph) -> Graph:
    """``tanh(z) + 1`` as ``sigmoid(2 z) * 2`` (see the module docstring)."""
    edit = Rewrite(graph)
    names, params = edit.names, edit.params
    for node in graph.nodes:
        if node.op != "add" or len(node.inputs) != 2:
            continue
        for position in (0, 1):
            tanh, one = edit.producers.get(node.inputs[position]), params.get(node.inputs[1 - position])
            if tanh is None or tanh.op != "tanh" or one is None or one.size != 1 or float(one.reshape(-1)[0]) != 1.0:
                continue
            if not edit.read_only_by(tanh.outputs[0], node):
                continue
            out_type = graph.type_of(node.outputs[0])
            if out_type.shape != graph.type_of(tanh.outputs[0]).shape or not dt.is_float(out_type.dtype):
                continue
            two = names.fresh(f"{node.name}/two")
            params[two] = np.array(2.0, dtype=dt.to_numpy(out_type.dtype))
            emit = _Emitter(names, node.name)
            gate = emit("sigmoid", [emit("multiply", [tanh.inputs[0], two], "twice")], "sigmoid")
            emit.nodes.append(make_node("multiply", names.fresh(f"{node.name}/double"), [gate, two], [node.outputs[0]]))
            edit.replacements[node.name] = emit.nodes
            edit.removed.add(tanh.name)
            break
    return edit.result()


# a convolution whose taps read padding for part of its outputs splits into bands when they do at most this share
# of its multiply-adds
BAND_WORK = 0.7
MAX_BANDS = 9  # band convolutions (each reads its taps' weights again)
MIN_BANDED_OUTPUTS = 64  # output positions: a smaller plane reads its weights more than it multiplies them


class Band(NamedTuple):
    """Consecutive output positions of one dimension (``count`` from ``first``) that read data through the same
    taps (``taps`` from ``tap``)."""

    first: int
    count: int
    tap: int
    taps: int


def _reads_data(y: int, tap: int, size: int, stride: int, dilation: int, before: int) -> bool:
    """Whether output position ``y`` reads an input element (not padding) through ``tap``."""
    return 0 <= y * stride + tap * dilation - before < size


def live_taps(size: int, out: int, kernel: int, stride: int, dilation: int, before: int) -> tuple[int, int] | None:
    """The first and last kernel taps (along one dimension) that read an input element for some output position,
    None when none does."""
    live = [tap for tap in range(kernel)
            if any(_reads_data(y, tap, size, stride, dilation, before) for y in range(out))]
    return (live[0], live[-1]) if live else None


def cropped_taps(size: int, out: int, kernel: int, stride: int, dilation: int, before: int,
                 after: int) -> tuple[int, int, int, int] | None:
    """``(first tap, taps, padding before, padding after)`` of the dimension without its dead edge taps, None when
    none is dead or the cropped convolution would not have the same output size."""
    taps = live_taps(size, out, kernel, stride, dilation, before)
    if taps is None or taps == (0, kernel - 1):
        return None
    first, count = taps[0], taps[1] - taps[0] + 1
    new_before = before - first * dilation
    new_after = max(0, (out - 1) * stride + (count - 1) * dilation + 1 - size - new_before)
    if new_before < 0 or conv_output_size(size, count, stride, new_before + new_after, dilation) != out:
        return None
    return first, count, new_before, new_after


def tap_bands(size: int, out: int, kernel: int, stride: int, dilation: int,
              before: int) -> list[Band] | None:
    """The output positions of one dimension in bands of consecutive positions that read data through the same
    taps (a position's live taps are consecutive). None where some position reads only padding."""
    bands: list[Band] = []
    for y in range(out):
        live = [tap for tap in range(kernel) if _reads_data(y, tap, size, stride, dilation, before)]
        if not live:
            return None
        if bands and (bands[-1].tap, bands[-1].taps) == (live[0], len(live)):
            bands[-1] = bands[-1]._replace(count=bands[-1].count + 1)
        else:
            bands.append(Band(y, 1, live[0], len(live)))
    return bands


def _band_work(bands: list[Band]) -> int:
    return sum(band.count * band.taps for band in bands)


def _band_span(band: Band, stride: int, dilation: int, before: int) -> tuple[int, int]:
    """The input elements a band reads: ``[start, end)`` (inside the input, by the band's definition)."""
    start = band.first * stride + band.tap * dilation - before
    return start, start + (band.count - 1) * stride + (band.taps - 1) * dilation + 1


def _split_into_bands(edit: Rewrite, node: Node, rows: list[Band],
                      columns: list[Band]) -> list[Node]:
    """``node`` as one convolution per band of rows x band of columns (several), each over the input it reads (no
    padding) with its taps, concatenated back into the output."""
    strides, dilations = node.attr("strides", (1, 1)), node.attr("dilations", (1, 1))
    pads = node.attr("pads", (0, 0, 0, 0))
    nodes: list[Node] = []

    def sliced(value: str, begin: tuple[int, int], end: tuple[int, int], what: str) -> str:
        out = edit.names.fresh(f"{value}/{what}")
        nodes.append(make_node("strided_slice", edit.names.fresh(f"{node.name}/{what}"), [value], [out],
                               begin=begin, end=end, strides=(1, 1), axes=(2, 3)))
        return out

    def concat(parts: list[str], axis: int, output: str | None) -> str:
        if len(parts) == 1 and output is None:
            return parts[0]
        out = output or edit.names.fresh(f"{node.outputs[0]}/rows")
        nodes.append(make_node("concat", edit.names.fresh(f"{node.name}/concat"), parts, [out], axis=axis))
        return out

    row_values = []
    for row in rows:
        r0, r1 = _band_span(row, strides[0], dilations[0], pads[0])
        parts = []
        for column in columns:
            c0, c1 = _band_span(column, strides[1], dilations[1], pads[1])
            data = sliced(node.inputs[0], (r0, c0), (r1, c1), "band")
            weight = sliced(node.inputs[1], (row.tap, column.tap), (row.tap + row.taps, column.tap + column.taps),
                            "taps")
            out = edit.names.fresh(f"{node.outputs[0]}/band")
            nodes.append(replace(node, name=edit.names.fresh(f"{node.name}/band"),
                                 inputs=(data, weight, *node.inputs[2:]), outputs=(out,)).with_attrs(pads=(0, 0, 0, 0)))
            parts.append(out)
        row_values.append(concat(parts, 3, node.outputs[0] if len(rows) == 1 else None))
    if len(rows) > 1:
        concat(row_values, 2, node.outputs[0])
    return nodes


def crop_padding_taps(graph: Graph) -> Graph:
    """``conv2d`` without the kernel taps that read only padding, or in bands of the taps that read data (see the
    module docstring)."""
    edit = Rewrite(graph)
    for node in graph.nodes:
        if node.op != "conv2d":
            continue
        _, _, h, w = graph.type_of(node.inputs[0]).shape
        _, _, kh, kw = graph.type_of(node.inputs[1]).shape
        _, _, oh, ow = graph.type_of(node.outputs[0]).shape
        strides, dilations = node.attr("strides", (1, 1)), node.attr("dilations", (1, 1))
        pads = node.attr("pads", (0, 0, 0, 0))
        if all(isinstance(v, int) for v in (h, w, kh, kw, oh, ow)):
            row_bands = tap_bands(h, oh, kh, strides[0], dilations[0], pads[0])
            column_bands = tap_bands(w, ow, kw, strides[1], dilations[1], pads[1])
            if row_bands is not None and column_bands is not None and oh * ow >= MIN_BANDED_OUTPUTS and \
                    1 < len(row_bands) * len(column_bands) <= MAX_BANDS and \
                    _band_work(row_bands) * _band_work(column_bands) <= BAND_WORK * oh * kh * ow * kw:
                edit.replacements[node.name] = _split_into_bands(edit, node, row_bands, column_bands)
                continue
        rows = cropped_taps(h, oh, kh, strides[0], dilations[0], pads[0], pads[2])
        columns = cropped_taps(w, ow, kw, strides[1], dilations[1], pads[1], pads[3])
        if rows is None and columns is None:
            continue
        rows = rows or (0, kh, pads[0], pads[2])
        columns = columns or (0, kw, pads[1], pads[3])
        weight = edit.names.fresh(f"{node.inputs[1]}/taps")
        crop = make_node("strided_slice", edit.names.fresh(f"{node.name}/taps"), [node.inputs[1]], [weight],
                         begin=(rows[0], columns[0]), end=(rows[0] + rows[1], columns[0] + columns[1]),
                         strides=(1, 1), axes=(2, 3))
        conv = replace(node, inputs=(node.inputs[0], weight, *node.inputs[2:]))
        conv = conv.with_attrs(pads=(rows[2], columns[2], rows[3], columns[3]))
        edit.replacements[node.name] = [crop, conv]
    return edit.result()


def simplify(graph: Graph) -> Graph:
    return crop_padding_taps(tanh_plus_one(fold_batch_norm(remove_noops(graph))))
