"""Model importers: ONNX (``from_onnx``). Importing the package registers every ONNX converter."""

from tcomp.graph.frontend import (  # noqa: F401  (each registers its converters with onnx_common)
    onnx_attention,
    onnx_control,
    onnx_detection,
    onnx_index,
    onnx_linalg,
    onnx_math,
    onnx_nn,
    onnx_ops,
    onnx_quant,
    onnx_random,
    onnx_reduce,
    onnx_rnn,
    onnx_select,
    onnx_sequence,
    onnx_signal,
    onnx_spatial,
)
from tcomp.graph.frontend.onnx import from_onnx, load_model

__all__ = ["from_onnx", "load_model"]
