"""``alter_layout``: convolutions in the blocked layout NCHW[x]c (int8 ones, and bfloat16 products, in channels-last
rows), with layout transforms only where needed.

Rewrite:

1. Each ``conv2d`` (4-D) becomes ``conv2d_nchwc`` on data in ``NCHW{ic}c`` and a kernel packed to
   ``OIHW{ic}i{oc}o`` (a grouped one keeps its ``groups``: its blocks divide each group's channels). It stays in
   NCHW when its output block would be under half the vector lanes (channel counts such as 58 and 116, of
   ShuffleNetV2, have no larger divisor): measured on ShuffleNet's grouped layers, blocks of 2 and 4 of 16 lanes
   ran 2-6x slower than the direct NCHW kernel, blocks of 8 to 16 2-20x faster; on ShuffleNetV2's ungrouped
   ones, 1x1 convolutions with blocks of 2 and 4 ran 3-4x slower, 3x3 ones 1.0-1.6x, and a block of 8 ran 1.8x
   faster than NCHW (a 7x7 plane does not fill NCHW's vectors); each
   depthwise ``conv2d`` becomes ``depthwise_conv2d_nchwc`` on ``NCHW{b}c``, unless its data is in NCHW and its
   result goes (through channel-by-channel operators and channel shuffles) only to convolutions that stay in NCHW
   (``read_in_nchw``: then it stays in NCHW too and no layout transform runs around it). Blocks are chosen per
   operator: the divisor of its (per-group) channel counts up to the target's vector lanes whose vectors do the
   most multiply-adds per cycle (``choose_channel_block``: the largest, except on CPUs whose half-width vectors
   run at the full rate, where 8 of 16 lanes beat 10 or 12).
2. Layouts propagate: elementwise operators, broadcast operators whose other operands are scalars, per-channel
   constants (re-laid-out once, as constants) or per-channel values of each image (``[N, C, 1, 1]``: the scales
   of squeeze-and-excitation blocks, laid out alike), max pooling (``max_pool2d_nchwc``), reductions over the spatial
   axes, concatenations (of whole channel blocks, or along another axis) and slices along the batch or plane axes
   keep their input's blocked layout.
   Every other operator reads its inputs in their original layout.
3. A ``layout_transform`` is inserted only where a producer's layout differs from what a consumer reads, once per
   (value, layout) and shared by every consumer; graph outputs are returned in their original layout (with their
   original names).
4. Quantized convolutions (``quantized_conv2d``, CPU) run on ``ROWS``: channels last, the pixels the rows of a
   matrix ``[N * H * W, C]``, a 1x1 convolution the product of those rows (``quantized_matmul``), a larger window
   the product of its windows (``im2col``, of the rows viewed as ``[N, H, W, C]`` or of NCHW data directly). Rows
   propagate as blocked layouts do (elementwise operators, per-channel constants reshaped to ``[C]``, max pooling
   as ``max_pool2d_nchwc`` of the rows viewed as ``[N, 1, H, W, C]``, reductions over the plane, concatenations of
   channels); rows are the bytes of ``NCHW{C}c`` (one block of all channels), so a depthwise convolution reading
   them takes that block and the two are views of each other (a reshape); to and from NCHW a 1x1 ``im2col`` and a
   reshape with a ``layout_transform`` from ``NCHW{C}c``; to and from another block a reshape and a
   ``layout_transform`` between ``NCHW{C}c`` and it.
   A reduction over every axis reads any layout as it is held (a quantized activation's range).
   Under bfloat16 products (``Precision.BF16``) float32 convolutions of one group and a constant weight run on rows
   too (``bf16_conv``): the product of their windows and the weight in bfloat16 panels (``panel_matmul``,
   ``gemm_panels.pack_bf16_panels``), twice float32's multiply-adds per instruction. Three kinds stay blocked in
   float32: the 3x3 ones ``winograd`` computes (a quarter of the multiply-adds: ResNet-50 with its 3x3 layers on
   rows too ran 1.04x slower, GoogLeNet 1.6x), products of at most ``MATVEC_ROWS`` pixels, and narrow products
   (``MIN_BF16_WIDTH``) of data not held as rows.
5. ``cancel_layout_transforms`` (``layout_cleanup.py``): a transform of a transform becomes one transform from the
   first source (none when the layouts meet again), so inverse pairs cancel.
6. ``shuffle_after_unblocking`` (``layout_cleanup.py``): a transform back to NCHW of a channel shuffle (read by
   nothing else) runs first, the shuffle after it, so an NCHW convolution reading through the shuffle reads rows of
   NCHW data.

Assumes a typed graph before fusion; the kernel transforms of constant weights are left to ``fold_constants``. A
no-op when the operator library has no blocked layouts or the graph has no convolution. Convolutions with a tuning
record (``keep``) stay in NCHW: their tuned templates compute NCHW.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from tcomp.graph.edit import with_nodes
from tcomp.graph.ir import FreshNames, Graph, Node, make_node
from tcomp.graph.op import OpPattern, get_op
from tcomp.graph.passes.gemm_panels import pack_bf16_panels
from tcomp.graph.passes.layout_cleanup import NCHW, cancel_layout_transforms, shuffle_after_unblocking
from tcomp.graph.passes.matvec_weights import MATVEC_ROWS
from tcomp.graph.passes.winograd import takes as winograd_takes
from tcomp.graph.shared_constants import SharedConstants, derive
from tcomp.ops.cpu.common import CpuTarget
from tcomp.ops.nchwc import Layout, choose_channel_block
from tcomp.ops.quantized import Window, conv_weight_matrix
from tcomp.target import Precision, Target, as_target

ROWS = "NHWC rows"  # channels last, the pixels as the rows of a matrix: [N * H * W, C]
_POINTWISE = {"kernel": (1, 1), "strides": (1, 1), "pads": (0, 0, 0, 0), "dilations": (1, 1)}
_BROADCAST_OPS = frozenset({"add", "subtract", "multiply", "divide", "maximum", "minimum", "power"})
_REDUCE_OPS = frozenset({"sum", "mean", "max", "min"})
# under bfloat16 products, a convolution whose product has fewer steps (input channels x window) or columns (output
# channels) stays blocked in float32 unless its input is held as rows already: MobileNetV3-small, whose 16 -> 72 and
# 72 -> 24 channel 1x1 layers wrap depthwise ones, ran at 1.16x its float32 time (min, 2 Zen 4 cores) with a bound
# of 16, at 0.95x with this one; GoogLeNet's 16- to 48-channel layers on rows it holds anyway save it a transform
MIN_BF16_WIDTH = 64


def blocked(layout: str | None) -> bool:
    """Whether ``layout`` is another than NCHW (a blocked layout or ``ROWS``)."""
    return layout is not None and layout != NCHW


def channel_blocked(layout: str | None) -> bool:
    """Whether ``layout`` is a blocked ``NCHW{x}c``."""
    return blocked(layout) and layout != ROWS


class _Rewriter:
    def __init__(self, graph: Graph, target: Target, keep: Callable[[Node], bool] | None,
                 constants: SharedConstants | None) -> None:
        self.graph = graph
        self.constants = constants
        self.lanes = max(1, target.vector_bits // 32)
        self.full_rate_lanes = max(1, target.full_rate_vector_bits // 32)
        self.keep = keep
        self.target = target
        self.pad_zero: str | None = None  # an int32 zero: the pad value of float windows (``im2col``)
        self.nodes: list[Node] = []
        self.params = dict(graph.params)
        self.names = FreshNames.of(graph)
        self.versions: dict[str, dict[str | None, str]] = {}
        self.primary: dict[str, str | None] = {}
        self.bound: set[str] = set()  # names already holding some version of a value
        self.consumers = graph.consumers()
        for name in (*graph.inputs, *graph.params):
            self._define(name, self._default_layout(name), name)

    def block(self, channels: int) -> int:
        return choose_channel_block(channels, self.lanes, self.full_rate_lanes)

    def fresh(self, base: str) -> str:
        return self.names.fresh(base)

    def _default_layout(self, value: str) -> str | None:
        return NCHW if self.graph.type_of(value).ndim == 4 else None

    def _define(self, value: str, layout: str | None, name: str) -> None:
        self.versions[value] = {layout: name}
        self.primary[value] = layout
        self.bound.add(name)

    def get(self, value: str, layout: str | None) -> str:
        """The name holding ``value`` in ``layout``, inserting (once) a transform from its produced layout."""
        have = self.versions[value]
        if layout in have:
            return have[layout]
        source = self.primary[value]
        assert source is not None and layout is not None
        whole = f"NCHW{self.graph.type_of(value).shape[1]}c" if self.graph.type_of(value).ndim == 4 else None
        if {source, layout} == {ROWS, whole}:  # one block of all channels holds the rows' bytes: a view
            return self._view_rows(value, have[source], layout)
        if ROWS in (source, layout) and NCHW not in (source, layout):
            # between rows and blocks: through one block of all channels, the rows' bytes
            if source == ROWS:
                self.get(value, whole)
                source = whole
            else:
                return self._view_rows(value, self.get(value, whole), ROWS)
        original = layout == self._default_layout(value) and value not in self.bound
        out = value if original else self.fresh(f"{value}/{layout}")
        self.bound.add(out)
        if ROWS in (source, layout):
            self._rows_transform(value, have[source], out, to_rows=layout == ROWS)
        else:
            self.nodes.append(make_node("layout_transform", self.fresh(f"{value}/to_{layout}"), [have[source]], [out],
                                        src=source, dst=layout))
        have[layout] = out
        return out

    def _view_rows(self, value: str, source: str, layout: str) -> str:
        """``value`` held as rows (``[N * H * W, C]``) viewed in ``NCHW{C}c`` (``[N, 1, H, W, C]``), or back: a
        reshape of the same bytes."""
        n, c, h, w = self.graph.type_of(value).shape
        out = self.fresh(f"{value}/{layout}")
        self.bound.add(out)
        self.nodes.append(make_node("reshape", self.fresh(f"{value}/as_{layout}"), [source], [out],
                                    shape=(n * h * w, c) if layout == ROWS else (n, 1, h, w, c)))
        self.versions[value][layout] = out
        return out

    def _rows_transform(self, value: str, source: str, out: str, to_rows: bool) -> None:
        """``out``: ``value`` (held in ``source``) from NCHW to ``ROWS`` (``im2col`` with a 1x1 window) or back (a
        reshape to ``NCHW{C}c``, ``[N, 1, H, W, C]``, the rows' memory order, and a ``layout_transform``)."""
        n, c, h, w = self.graph.type_of(value).shape
        if to_rows:
            self.nodes.append(make_node("im2col", self.fresh(f"{value}/to_rows"), [source], [out], channels_last=False,
                                        **_POINTWISE))
            return
        image = self.fresh(f"{value}/NCHW{c}c")
        self.nodes.append(make_node("reshape", self.fresh(f"{value}/from_rows"), [source], [image],
                                    shape=(n, 1, h, w, c)))
        self.nodes.append(make_node("layout_transform", self.fresh(f"{value}/to_nchw"), [image], [out],
                                    src=f"NCHW{c}c", dst=NCHW))

    def emit(self, node: Node, inputs: list[str], layout: str | None, op: str | None = None,
             **attrs: object) -> None:
        outputs = []
        for value in node.outputs:
            name = value if not blocked(layout) else self.fresh(f"{value}/{layout}")
            outputs.append(name)
            self._define(value, layout if self.graph.type_of(value).ndim == 4 else None, name)
        merged = dict(node.attrs)
        merged.update(attrs)
        self.nodes.append(make_node(op or node.op, node.name, inputs, outputs, **merged))

    # -- operators ------------------------------------------------------------------------------------------------
    def blocks(self, node: Node) -> bool:
        """Whether ``conv`` turns convolution ``node`` blocked (else it stays in NCHW)."""
        if self.keep is not None and self.keep(node):
            return False
        x_type, w_type = self.graph.type_of(node.inputs[0]), self.graph.type_of(node.inputs[1])
        if x_type.ndim != 4 or x_type.dtype != "float32":
            return False
        groups = int(node.attr("groups", 1))
        channels, out_channels = x_type.shape[1], w_type.shape[0]
        if groups == channels == out_channels and w_type.shape[1] == 1:
            return True
        if channels % groups == 0 and out_channels % groups == 0 and w_type.shape[1] * groups == channels:
            # blocks within a group: ``oc`` divides the group's output channels
            oc = self.block(out_channels // groups)
            return oc >= max(1, self.lanes // 2)  # a narrow vector per output block: the NCHW kernel is faster
        return False

    def read_in_nchw(self, value: str) -> bool:
        """Whether every path from ``value`` through channel-by-channel operators (elementwise, per-channel
        broadcasts, channel shuffles) ends at a convolution that stays in NCHW: a depthwise convolution producing
        ``value`` from NCHW data is best left in NCHW too (ShuffleNet: grouped 1x1 -> shuffle -> depthwise ->
        grouped 1x1, no layout transform at all)."""
        readers = self.consumers.get(value, [])
        if not readers or value in self.graph.outputs:
            return False
        for reader in readers:
            if reader.op == "conv2d":
                if self.blocks(reader):
                    return False
            elif reader.op == "channel_shuffle" or get_op(reader.op).pattern <= OpPattern.BROADCAST:
                if len(reader.outputs) != 1 or not self.read_in_nchw(reader.outputs[0]):
                    return False
            else:
                return False
        return True

    # -- operators ------------------------------------------------------------------------------------------------
    def conv(self, node: Node) -> bool:
        if not self.blocks(node):
            return False
        x, w = node.inputs[0], node.inputs[1]
        x_type, w_type = self.graph.type_of(x), self.graph.type_of(w)
        groups = int(node.attr("groups", 1))
        channels, out_channels = x_type.shape[1], w_type.shape[0]
        attrs = {k: node.attr(k) for k in ("strides", "pads", "dilations")}
        if groups == 1:
            ic, oc = self.block(channels), self.block(out_channels)
            data = self.get(x, f"NCHW{ic}c")
            kernel = self._transform_param(w, "OIHW", f"OIHW{ic}i{oc}o")
            self.emit(node, [data, kernel], f"NCHW{oc}c", op="conv2d_nchwc", **attrs)
            return True
        if groups == channels == out_channels and w_type.shape[1] == 1:
            if not blocked(self.primary.get(x)) and self.read_in_nchw(node.outputs[0]):
                return False
            # rows: one block of all channels, the rows' own bytes (a depthwise layer between int8 ones)
            block = channels if self.primary.get(x) == ROWS else self.block(channels)
            data = self.get(x, f"NCHW{block}c")
            kernel = self._transform_param(w, "OIHW", f"OIHW1i{block}o")
            self.emit(node, [data, kernel], f"NCHW{block}c", op="depthwise_conv2d_nchwc", **attrs)
            return True
        # blocks within a group: ``ic`` divides the group's input channels, ``oc`` its output channels
        ic, oc = self.block(channels // groups), self.block(out_channels // groups)
        data = self.get(x, f"NCHW{ic}c")
        kernel = self._transform_param(w, "OIHW", f"OIHW{ic}i{oc}o")
        self.emit(node, [data, kernel], f"NCHW{oc}c", op="conv2d_nchwc", groups=groups, **attrs)
        return True

    def quantized_conv(self, node: Node) -> bool:
        """``quantized_conv2d`` on channels-last rows: the product of its windows (``im2col`` of the rows viewed as
        ``[N, H, W, C]``, none for a 1x1 convolution that reads every pixel) and the packed weight."""
        _, panels, sums, zero = node.inputs
        window = Window.of(node.op, **{key: node.attr(key) for key in ("kernel", "strides", "pads", "dilations")})
        rows = self._windows(node, window, zero)
        out = self.fresh(f"{node.outputs[0]}/{ROWS}")
        self._define(node.outputs[0], ROWS, out)
        self.nodes.append(make_node("quantized_matmul", node.name, [rows, panels, sums, zero], [out],
                                    columns=node.attr("columns")))
        return True

    def bf16_conv(self, node: Node) -> bool:
        """Under bfloat16 products, a float32 ``conv2d`` of one group and a constant weight on channels-last rows:
        the product of its windows and the weight in bfloat16 panels (``panel_matmul``), but for the 3x3 ones that
        ``winograd`` computes."""
        x, w = node.inputs[0], node.inputs[1]
        if self.target.precision is not Precision.BF16 or w not in self.params or int(node.attr("groups", 1)) != 1:
            return False
        x_type, w_type = self.graph.type_of(x), self.graph.type_of(w)
        if x_type.ndim != 4 or x_type.dtype != "float32" or w_type.dtype != "float32" or \
                (self.keep is not None and self.keep(node)):
            return False
        out_type = self.graph.type_of(node.outputs[0])
        if out_type.numel // out_type.shape[1] <= MATVEC_ROWS or winograd_takes(node, w_type, out_type.shape[2:4]):
            return False
        if min(w_type.shape[0], w_type.numel // w_type.shape[0]) < MIN_BF16_WIDTH and ROWS not in self.versions[x]:
            return False  # a narrow product pays for no transform of its input
        window = Window.of(node.op, w_type.shape[2:], *(node.attr(key) for key in ("strides", "pads", "dilations")))
        if self.pad_zero is None:
            self.pad_zero = self.fresh("conv_pad_value")
            self.params[self.pad_zero] = np.zeros((), np.int32)
            self._define(self.pad_zero, None, self.pad_zero)
        rows = self._windows(node, window, self.pad_zero)
        weight = self.params[w]
        panels = self.fresh(f"{w}/bf16_panels")
        self.params[panels] = derive(self.constants, ("bf16 convolution panels", self.target), (weight,),
                                     lambda: pack_bf16_panels(conv_weight_matrix(weight), CpuTarget.of(self.target)))
        self._define(panels, None, panels)
        out = self.fresh(f"{node.outputs[0]}/{ROWS}")
        self._define(node.outputs[0], ROWS, out)
        self.nodes.append(make_node("panel_matmul", node.name, [rows, panels], [out], columns=int(weight.shape[0])))
        return True

    def _windows(self, node: Node, window: Window, pad_value: str) -> str:
        """The rows that the product of convolution ``node`` reads: its input's rows where ``window`` reads each
        pixel alone, else the windows of its input (``im2col`` of the rows viewed as ``[N, H, W, C]``, or of NCHW
        data), ``pad_value`` (a scalar int32) where they pad."""
        x = node.inputs[0]
        if window.pointwise:
            return self.get(x, ROWS)
        n, c, h, w = self.graph.type_of(x).shape
        rows = self.fresh(f"{node.name}/windows")
        if self.primary[x] == ROWS:
            image = self.fresh(f"{x}/image")
            self.nodes.append(make_node("reshape", self.fresh(f"{x}/as_image"), [self.get(x, ROWS)], [image],
                                        shape=(n, h, w, c)))
            source, channels_last = image, True
        else:  # the windows of NCHW data, gathered from it directly
            source, channels_last = self.get(x, NCHW), False
        self.nodes.append(make_node("im2col", self.fresh(f"{node.name}_windows"), [source, pad_value], [rows],
                                    channels_last=channels_last, kernel=window.kernel, strides=window.strides,
                                    pads=window.pads, dilations=window.dilations))
        return rows

    def _transform_param(self, value: str, src: str, dst: str) -> str:
        out = self.fresh(f"{value}/{dst}")
        self.nodes.append(make_node("layout_transform", self.fresh(f"{value}/pack_{dst}"),
                                    [self.versions[value][self.primary[value]]], [out], src=src, dst=dst))
        return out

    def elementwise(self, node: Node) -> bool:
        x = node.inputs[0]
        layout = self.primary.get(x)
        if not blocked(layout) or len(node.outputs) != 1:
            return False
        self.emit(node, [self.versions[x][layout]], layout)
        return True

    def broadcast(self, node: Node) -> bool:
        out_shape = self.graph.type_of(node.outputs[0]).shape
        if len(out_shape) != 4:
            return False
        layout = next((self.primary[i] for i in node.inputs
                       if blocked(self.primary.get(i)) and self.graph.type_of(i).shape == out_shape), None)
        if layout is None:
            return False
        channels = out_shape[1]
        inputs = []
        for value in node.inputs:
            t = self.graph.type_of(value)
            constant = value in self.params
            if t.shape == out_shape:
                inputs.append(self.get(value, layout))
            elif layout == ROWS and constant and (t.numel == 1 or t.shape in ((1, channels, 1, 1), (channels, 1, 1))):
                inputs.append(self._row_param(value, () if t.numel == 1 else (channels,)))
            elif t.numel == 1 and (layout != ROWS or t.ndim <= 2):
                inputs.append(self.versions[value][self.primary[value]])
            elif constant and t.numel == channels and t.shape in ((1, channels, 1, 1), (channels, 1, 1)):
                base = value
                if t.shape != (1, channels, 1, 1):
                    base = self.fresh(f"{value}/nchw")
                    self.params[base] = self.params[value].reshape(1, channels, 1, 1)
                    self._define(base, NCHW, base)
                inputs.append(self._transform_param(base, NCHW, layout))
            elif channel_blocked(layout) and t.shape in ((1, channels, 1, 1), (out_shape[0], channels, 1, 1)):
                # a value per channel of each image (a squeeze-and-excitation scale): blocked alike, it broadcasts
                # over the plane as it does in NCHW
                inputs.append(self.get(value, layout))
            else:
                return False
        self.emit(node, inputs, layout)
        return True

    def _row_param(self, value: str, shape: tuple[int, ...]) -> str:
        """The constant ``value`` (one value, or one per channel) reshaped to ``shape`` to broadcast against rows."""
        if self.params[value].shape == shape:
            return value
        out = self.fresh(f"{value}/rows")
        self.params[out] = self.params[value].reshape(shape)
        self._define(out, None, out)
        return out

    def reduce(self, node: Node) -> bool:
        """A reduction over spatial axes keeps a blocked layout; over the whole plane, rows too (over the pixels of
        each image, viewed as ``[N, H * W, C]``: the result ``[N, C, 1, 1]`` is ``N`` rows)."""
        x = node.inputs[0]
        layout = self.primary.get(x)
        axes = {a % 4 for a in node.attr("axes", ())}
        if blocked(layout) and axes == {0, 1, 2, 3} and len(node.outputs) == 1:
            return self.whole_reduce(node, layout)
        if not blocked(layout) or not axes <= {2, 3} or not node.attr("keepdims", True):
            return False
        if layout != ROWS:
            self.emit(node, [self.versions[x][layout]], layout)
            return True
        if axes != {2, 3}:
            return False
        n, c, h, w = self.graph.type_of(x).shape
        self._on_rows(node, node.op, (n, h * w, c), {**dict(node.attrs), "axes": (1,)})
        return True

    def _on_rows(self, node: Node, op: str, view: tuple[int, ...], attrs: dict[str, object]) -> None:
        """``op`` (with ``attrs``) in place of ``node``, on its input's rows viewed as ``view``; its result rows
        again."""
        x, value = node.inputs[0], node.outputs[0]
        result = self.graph.type_of(value)
        channels = result.shape[1]
        viewed, computed, out = self.fresh(f"{x}/view"), self.fresh(f"{value}/view"), self.fresh(f"{value}/{ROWS}")
        self.nodes.append(make_node("reshape", self.fresh(f"{x}/as_view"), [self.versions[x][ROWS]], [viewed],
                                    shape=view))
        self.nodes.append(make_node(op, node.name, [viewed], [computed], **attrs))
        self.nodes.append(make_node("reshape", self.fresh(f"{node.name}/as_rows"), [computed], [out],
                                    shape=(result.numel // channels, channels)))
        self._define(value, ROWS, out)

    def whole_reduce(self, node: Node, layout: str) -> bool:
        """A reduction of the whole tensor reads it in any layout (blocks never pad channels): over every axis of
        the value as it is held, its one value reshaped to the original's ``[1, 1, 1, 1]`` where dimensions are
        kept."""
        source = self.versions[node.inputs[0]][layout]
        axes = tuple(range(2 if layout == ROWS else len(Layout.parse(layout).axes)))
        if not node.attr("keepdims", True):
            self.emit(node, [source], NCHW, axes=axes)
            return True
        reduced = self.fresh(f"{node.outputs[0]}/{layout}")
        self.nodes.append(make_node(node.op, node.name, [source], [reduced], **{**dict(node.attrs), "axes": axes}))
        self.nodes.append(make_node("reshape", self.fresh(f"{node.name}/as_nchw"), [reduced], list(node.outputs),
                                    shape=(1, 1, 1, 1)))
        self._define(node.outputs[0], NCHW, node.outputs[0])
        return True

    def max_pool(self, node: Node) -> bool:
        """Max pooling keeps a blocked layout, or rows (pooled as ``NCHW{C}c``: the rows viewed as
        ``[N, 1, H, W, C]``)."""
        x = node.inputs[0]
        layout = self.primary.get(x)
        if not blocked(layout) or node.attr("kind") != "max":
            return False
        attrs = {k: node.attr(k) for k in ("kernel", "strides", "pads", "ceil_mode")}
        if layout != ROWS:
            self.emit(node, [self.versions[x][layout]], layout, op="max_pool2d_nchwc", **attrs)
            return True
        n, c, h, w = self.graph.type_of(x).shape
        self._on_rows(node, "max_pool2d_nchwc", (n, 1, h, w, c), attrs)
        return True

    def concat(self, node: Node) -> bool:
        """A concatenation of 4-D values stays blocked when one input is: along the channels when every input's
        channel count is a multiple of the block (whole blocks concatenate), along any other axis always."""
        if len(node.outputs) != 1 or self.graph.type_of(node.outputs[0]).ndim != 4:
            return False
        layout = next((self.primary[i] for i in node.inputs if blocked(self.primary.get(i))), None)
        if layout is None:
            return False
        axis = int(node.attr("axis", 0)) % 4
        if layout == ROWS:  # channels are the rows' columns
            if axis != 1:
                return False
            self.emit(node, [self.get(i, layout) for i in node.inputs], layout, axis=1)
            return True
        block = Layout.parse(layout).block("C") or 1
        if axis == 1 and any(self.graph.type_of(i).shape[1] % block for i in node.inputs):
            return False
        self.emit(node, [self.get(i, layout) for i in node.inputs], layout, axis=axis)
        return True

    def spatial_slice(self, node: Node) -> bool:
        """A slice of a blocked 4-D value along its batch or plane axes stays blocked (they keep their positions in
        ``NCHW{c}c``); one along the channels reads NCHW."""
        x = node.inputs[0]
        layout = self.primary.get(x)
        if not channel_blocked(layout) or self.graph.type_of(x).ndim != 4 or len(node.outputs) != 1:
            return False
        axes = tuple(int(a) % 4 for a in node.attr("axes"))
        if 1 in axes:
            return False
        self.emit(node, [self.versions[x][layout]], layout, axes=axes)
        return True

    def default(self, node: Node) -> None:
        inputs = [self.get(i, self._default_layout(i)) if i else i for i in node.inputs]
        self.emit(node, inputs, NCHW)

    def run(self) -> Graph:
        for node in self.graph.nodes:
            pattern = get_op(node.op).pattern
            done = False
            if node.op == "conv2d":
                done = self.bf16_conv(node) or self.conv(node)
            elif node.op == "quantized_conv2d":
                done = self.quantized_conv(node)
            elif node.op in _BROADCAST_OPS:
                done = self.broadcast(node)
            elif pattern is OpPattern.ELEMWISE and len(node.inputs) == 1:
                done = self.elementwise(node)
            elif node.op in _REDUCE_OPS:
                done = self.reduce(node)
            elif node.op == "pool2d":
                done = self.max_pool(node)
            elif node.op == "concat":
                done = self.concat(node)
            elif node.op == "strided_slice":
                done = self.spatial_slice(node)
            elif node.op == "channel_shuffle" and channel_blocked(self.primary.get(node.inputs[0])):
                done = self.elementwise(node)
            if not done:
                self.default(node)
        for value in self.graph.outputs:
            self.get(value, self._default_layout(value))
        return with_nodes(self.graph, self.nodes, self.params)


def alter_layout(graph: Graph, target: Target | str | None = None, keep: Callable[[Node], bool] | None = None,
                 constants: SharedConstants | None = None) -> Graph:
    """See the module docstring; convolutions for which ``keep`` is true stay in NCHW (tuned ones); ``constants``:
    where the bfloat16 panels packed by earlier specializations are kept (``tcomp.graph.shared_constants``)."""
    if not any(n.op in ("conv2d", "quantized_conv2d") for n in graph.nodes):
        return graph
    rewriter = _Rewriter(graph, as_target(target), keep, constants)
    return shuffle_after_unblocking(cancel_layout_transforms(rewriter.run()))
