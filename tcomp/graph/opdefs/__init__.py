"""Graph operator definitions; importing this package registers every operator (see ``tcomp.graph.op``)."""

from tcomp.graph.opdefs import elemwise, fused, indexing, layout, math, nn, resize, spatial, transform

__all__ = ["elemwise", "fused", "indexing", "layout", "math", "nn", "resize", "spatial", "transform"]
