"""``winograd``: 3x3 stride-1 convolutions in the blocked layout computed by Winograd's F(4x4, 3x3).

Rewrite: ``conv2d_nchwc(x, layout_transform(w, OIHW -> OIHW{ic}i{oc}o))`` with a constant 3x3 kernel ``w``, one
group, stride 1, no dilation, at least ``MIN_CHANNELS`` input and output channels and an output plane of at least
one 4x4 tile becomes ``conv2d_winograd_nchwc(x, winograd_kernel(w))`` (``tcomp.ops.winograd``): the kernel
transform is a constant that the next ``fold_constants`` computes once, and the convolution does a quarter of the
direct convolution's multiply-adds. Smaller planes stay direct: F(2x2, 3x3) on 3x3 planes ran 0.91-1.03x the
direct convolution's time (64 and 256 channels), and each Winograd kernel takes about a second to compile.

Measured on znver1, 2 threads, against the direct ``conv2d_nchwc`` (default schedules): 2.8x faster for 64
channels at 56x56, 2.7-2.9x for 128 at 28x28, 2.2x for 256 at 14x14, 1.7x for 512 at 7x7, 2.3x for 32 at 56x56,
1.2x for 8 at 56x56.

Results differ from a direct convolution by rounding, about ``1e-5`` of the output's magnitude per layer
(``tcomp.ops.winograd``); ``PassOptions(winograd=False)`` (``--disable-pass winograd``) keeps the direct
convolutions. Assumes a typed graph after ``alter_layout`` and before ``fold_constants``; returns the same graph
when no convolution qualifies.
"""

from __future__ import annotations

from tcomp.graph.edit import Rewrite
from tcomp.graph.ir import Graph, Node, make_node
from tcomp.ops.nchwc import Layout

# fewer input or output channels than this stay direct (measured: 8 -> 8 channels at 56x56 still ran 1.2x faster)
MIN_CHANNELS = 8
# output tiles of 4x4 pixels
TILE = 4


def _qualifies(graph: Graph, node: Node, producers: dict[str, Node]) -> Node | None:
    """The kernel's packing node when ``node`` is a convolution this pass rewrites, else ``None``."""
    if node.op != "conv2d_nchwc" or int(node.attr("groups", 1)) != 1:
        return None
    if tuple(node.attr("strides")) != (1, 1) or tuple(node.attr("dilations")) != (1, 1):
        return None
    packing = producers.get(node.inputs[1])
    if packing is None or packing.op != "layout_transform" or packing.attr("src") != "OIHW" \
            or packing.inputs[0] not in graph.params:
        return None
    kernel = graph.type_of(packing.inputs[0])
    if kernel.dtype != "float32" or kernel.shape[2:] != (3, 3) or min(kernel.shape[:2]) < MIN_CHANNELS:
        return None
    if min(graph.type_of(node.outputs[0]).shape[2:4]) < TILE:
        return None
    return packing


def winograd(graph: Graph) -> Graph:
    """See the module docstring."""
    rewrite = Rewrite(graph)
    for node in graph.nodes:
        packing = _qualifies(graph, node, rewrite.producers)
        if packing is None:
            continue
        layout = Layout.parse(packing.attr("dst"))
        kernel = rewrite.names.fresh(f"{packing.inputs[0]}/winograd{TILE}")
        rewrite.replacements[node.name] = [
            make_node("winograd_kernel", rewrite.names.fresh(f"{node.name}/kernel_transform"), [packing.inputs[0]],
                      [kernel], tile=TILE, ic_block=layout.block("I"), oc_block=layout.block("O")),
            make_node("conv2d_winograd_nchwc", node.name, [node.inputs[0], kernel], node.outputs,
                      pads=tuple(node.attr("pads")), tile=TILE),
        ]
    return rewrite.result()
