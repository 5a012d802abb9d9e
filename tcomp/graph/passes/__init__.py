"""Graph passes, one per module; each is a function ``Graph -> Graph`` (see ``tcomp.graph.pipeline``)."""

from tcomp.graph.passes.alter_layout import alter_layout
from tcomp.graph.passes.fold_constants import fold_constants
from tcomp.graph.passes.fuse_ops import fuse_ops
from tcomp.graph.passes.matvec_weights import matvec_weights
from tcomp.graph.passes.plan_memory import MemoryPlan, plan_memory
from tcomp.graph.passes.remove_empty import remove_empty
from tcomp.graph.passes.simplify import simplify

__all__ = ["MemoryPlan", "alter_layout", "fold_constants", "fuse_ops", "matvec_weights", "plan_memory", "remove_empty",
           "simplify"]
