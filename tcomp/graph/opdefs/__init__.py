"""Graph operator definitions; importing this package registers every operator (see ``tcomp.graph.op``)."""

from tcomp.graph.opdefs import (
    attention,
    einsum,
    elemwise,
    fused,
    grid_sample,
    indexing,
    layout,
    math,
    nn,
    quantized,
    random,
    resize,
    spatial,
    transform,
)

__all__ = ["attention", "einsum", "elemwise", "fused", "grid_sample", "indexing", "layout", "math", "nn", "quantized",
           "random", "resize", "spatial", "transform"]
