"""Built-in tunable templates. Importing this package registers them.

- CPUs (llvm): ``matmul``, ``dense``, ``batch_matmul`` (``gemm.py``), ``conv2d_nchw``, ``depthwise_conv2d_nchw``,
  ``conv2d_nchwc`` (``conv2d.py``).
- CUDA: ``matmul_cuda`` and the thread-binding knob helpers (``cuda.py``); ``conv2d_nchw_cuda``, ``reduce_cuda``,
  ``softmax_cuda``, ``elemwise_cuda`` (``cuda_ops.py``). They build CUDA C and are measured on a GPU or, without
  one, in CPU emulation.
"""

from tcomp.autotune.templates import conv2d, cuda, cuda_ops, gemm

__all__ = ["conv2d", "cuda", "cuda_ops", "gemm"]
