"""Model importers: ONNX (``from_onnx``)."""

from tcomp.graph.frontend.onnx import from_onnx, load_model

__all__ = ["from_onnx", "load_model"]
