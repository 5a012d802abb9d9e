"""Built-in tunable templates for CPUs (llvm): matrix products and 2-D convolutions.

Importing this package registers them: ``matmul``, ``dense``, ``batch_matmul`` (``gemm.py``), ``conv2d_nchw``,
``depthwise_conv2d_nchw``, ``conv2d_nchwc`` (``conv2d.py``). ``cuda.py`` shows the thread-binding knobs a CUDA
template defines (the space and lowering work today; building waits for the CUDA backend).
"""

from tcomp.autotune.templates import conv2d, cuda, gemm

__all__ = ["conv2d", "cuda", "gemm"]
