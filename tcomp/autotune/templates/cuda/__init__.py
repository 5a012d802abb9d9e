"""CUDA templates, one module per operator: ``matmul_cuda`` (``matmul.py``), ``conv2d_nchw_cuda`` (``conv2d.py``),
``reduce_cuda`` (``reduce.py``), ``softmax_cuda`` (``softmax.py``), ``elemwise_cuda`` (``elemwise.py``); the knobs
they share are in ``knobs.py``. Each tunes a default CUDA schedule of ``tcomp.ops.cuda`` and falls back to it; they
build CUDA C and are measured on a GPU or, without one, in CPU emulation."""

from tcomp.autotune.templates.cuda import conv2d, elemwise, matmul, reduce, softmax

__all__ = ["conv2d", "elemwise", "matmul", "reduce", "softmax"]
