"""CPU (llvm) templates: ``matmul``, ``dense``, ``batch_matmul`` (``gemm.py``); ``panel_matmul`` (``panels.py``);
``conv2d_nchw``, ``depthwise_conv2d_nchw``, ``conv2d_nchwc``, ``conv2d_nchwc_blocked`` (``conv2d.py``)."""

from tcomp.autotune.templates.cpu import conv2d, gemm, panels

__all__ = ["conv2d", "gemm", "panels"]
