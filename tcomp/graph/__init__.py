"""tcomp.graph: the graph compiler (Relay / graph executor role).

    import tcomp.graph
    ex = tcomp.graph.compile("model.onnx", target="llvm", input_shapes={"x": [1, 3, 224, 224]})
    [y] = ex.run([x])
    ex.export("out/");  ex2 = tcomp.graph.load_executor("out/")

Modules: ``ir`` (graph IR, printer, verifier), ``infer`` (types), ``op`` + ``opdefs`` (operator registry:
patterns, inference, lowering), ``frontend`` (ONNX), ``passes`` (fold_constants, simplify, gemm_panels, alter_layout,
fuse_ops, plan_memory), ``pipeline``, ``kernels`` (one compiled kernel per node, through the target's backend),
``executor``, ``export`` and ``load`` (a compiled model's folder), ``tuning`` (records at compile time), ``tasks``
(the tuning tasks of a model), ``specialize`` (shapes decided at run time), ``testing`` (model builders). The
``onnx`` package is needed only to import ONNX models.
"""

from typing import Any

from tcomp.graph import opdefs  # noqa: F401  (importing it registers every operator with op.py)
from tcomp.graph.compiler import EmulationWarning, build_executor, compile, compile_graph
from tcomp.graph.executor import GraphExecutor
from tcomp.graph.infer import infer_types
from tcomp.graph.ir import (
    Graph,
    GraphError,
    Node,
    TensorType,
    UnsupportedOperatorError,
    ValueNeededError,
    make_node,
)
from tcomp.graph.load import load_executor
from tcomp.graph.pipeline import PassOptions, run_pipeline
from tcomp.graph.specialize import SpecializingExecutor


def from_onnx(model: Any, input_shapes: Any = None, name: str | None = None, input_values: Any = None) -> Graph:
    """Import an ONNX model (see ``tcomp.graph.frontend.onnx.from_onnx``); needs the ``onnx`` package."""
    from tcomp.graph.frontend.onnx import from_onnx as import_onnx

    return import_onnx(model, input_shapes, name, input_values)

__all__ = [
    "EmulationWarning", "Graph", "GraphError", "GraphExecutor", "Node", "PassOptions", "SpecializingExecutor",
    "TensorType", "UnsupportedOperatorError", "ValueNeededError",
    "build_executor", "compile", "compile_graph", "from_onnx", "infer_types", "load_executor", "make_node",
    "run_pipeline",
]
