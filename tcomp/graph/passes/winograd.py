"""``winograd``: 3x3 stride-1 convolutions in the blocked layout computed by Winograd's F(4x4, 3x3).

Rewrite: ``conv2d_nchwc(x, layout_transform(w, OIHW -> OIHW{ic}i{oc}o))`` with a constant 3x3 kernel ``w``, one
group, stride 1, no dilation, at least ``MIN_CHANNELS`` input and output channels and an output plane of at least
four 4x4 tiles, half used, becomes ``conv2d_winograd_nchwc(x, winograd_kernel(w))`` (``tcomp.ops.winograd``): the
kernel transform is a constant that the next ``fold_constants`` computes once, and the convolution does a quarter
of the direct convolution's multiply-adds. Smaller planes stay direct (``worth_tiling``: fewer than 4 tiles, or tiles
less than half used): F(2x2, 3x3) on 3x3 planes ran 0.91-1.03x the direct convolution's time (64 and 256
channels), and each Winograd kernel takes about a second to compile.

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
from tcomp.graph.ir import Graph, Node, TensorType, make_node
from tcomp.ops.nchwc import Layout

# fewer input or output channels than this stay direct (measured: 8 -> 8 channels at 56x56 still ran 1.2x faster)
MIN_CHANNELS = 8
# output tiles of 4x4 pixels
TILE = 4
# fewer output tiles than this stay direct (see ``worth_tiling``)
MIN_TILES = 4


def worth_tiling(height: int, width: int) -> bool:
    """Whether an output plane of ``height x width`` has enough 4x4 tiles, and fills them enough, for Winograd to
    pay: its transformed kernel is 4x the direct one's bytes (6x6 per 3x3), read once per convolution, and tiles
    past the plane's edge compute nothing useful. On the AVX-512 znver4 machine, 2 threads, 256 -> 256 channels
    against the direct convolution: a 4x4 plane (one tile) ran 1.45x slower with the kernel coming from memory (a
    model whose weights outgrow the cache) and about as fast from cache (512 channels 1.6x, same); 5x5 (4 tiles,
    39% used) 1.2x slower from memory, as fast from cache; 6x6 (4 tiles, 56% used) 1.1x and 1.7x faster; 7x7
    1.35-1.4x faster."""
    tiles = -(-height // TILE) * -(-width // TILE)
    return min(height, width) >= TILE and tiles >= MIN_TILES and 2 * height * width >= tiles * TILE * TILE


def takes(node: Node, kernel: TensorType, plane: tuple[int, ...]) -> bool:
    """Whether this pass computes the convolution ``node`` (``conv2d`` or ``conv2d_nchwc``) of a constant
    ``kernel`` (``[O, I, KH, KW]``) with an output plane ``plane`` (height, width) by Winograd's F(4x4, 3x3)."""
    if int(node.attr("groups", 1)) != 1 or kernel.dtype != "float32" or kernel.shape[2:] != (3, 3):
        return False
    if tuple(node.attr("strides")) != (1, 1) or tuple(node.attr("dilations")) != (1, 1):
        return False
    return min(kernel.shape[:2]) >= MIN_CHANNELS and worth_tiling(*plane)


def _qualifies(graph: Graph, node: Node, producers: dict[str, Node]) -> Node | None:
    """The kernel's packing node when ``node`` is a convolution this pass rewrites, else ``None``."""
    if node.op != "conv2d_nchwc":
        return None
    packing = producers.get(node.inputs[1])
    if packing is None or packing.op != "layout_transform" or packing.attr("src") != "OIHW" \
            or packing.inputs[0] not in graph.params:
        return None
    plane = graph.type_of(node.outputs[0]).shape[2:4]
    return packing if takes(node, graph.type_of(packing.inputs[0]), plane) else None


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
