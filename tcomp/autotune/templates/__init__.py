"""Built-in tunable templates, one package per target kind and one module per operator. Importing this package
registers them.

- CPUs (llvm, ``cpu/``): ``matmul``, ``dense``, ``batch_matmul`` (``gemm.py``), ``panel_matmul`` (``panels.py``),
  ``conv2d_nchw``, ``depthwise_conv2d_nchw``, ``conv2d_nchwc``, ``conv2d_nchwc_blocked`` (``conv2d.py``).
- CUDA (``cuda/``): ``matmul_cuda``, ``conv2d_nchw_cuda``, ``reduce_cuda``, ``softmax_cuda``, ``elemwise_cuda``.
"""

from tcomp.autotune.templates import cpu, cuda

__all__ = ["cpu", "cuda"]
