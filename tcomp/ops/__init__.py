"""The operator library (TOPI's role): compute definitions of common tensor operators.

Each function builds ``te.compute`` stages only; how they run is left to a schedule. Shapes and attributes are
checked when the operator is built: a bad one raises ``OpError`` (a ``ValueError``) naming the operator and the
argument. Submodules: ``elemwise`` (broadcast arithmetic, unary math, casts), ``reduce`` (sum/prod/max/min/mean),
``nn`` (matmul, dense, batch_matmul, conv2d, pooling, softmax, normalization), ``nchwc`` (blocked layouts,
``layout_transform``, ``conv2d_nchwc``), ``transform`` (transpose, reshape, concatenate, slicing), ``testing`` (numpy
references for tests). Default CPU schedules, chosen by shape: ``tcomp.ops.cpu`` (``schedule_cpu(outs)``).
Computes record which operator they are in ``op.attrs`` (``OpKind``) for the schedules to find them.
"""

from tcomp.ops import elemwise, nn, reduce, transform
from tcomp.ops.conv import conv2d_nchw, conv2d_output_size, depthwise_conv2d_nchw, pad
from tcomp.ops.elemwise import (
    abs,
    add,
    broadcast_shape,
    broadcast_to,
    cast,
    ceil,
    clip,
    cos,
    divide,
    equal,
    erf,
    exp,
    floor,
    floor_divide,
    floor_mod,
    greater,
    greater_equal,
    leaky_relu,
    less,
    less_equal,
    log,
    maximum,
    minimum,
    multiply,
    negative,
    not_equal,
    power,
    relu,
    round,
    rsqrt,
    sigmoid,
    sin,
    sqrt,
    square,
    subtract,
    tanh,
    where,
)
from tcomp.ops.nchwc import conv2d_nchwc, layout_transform, pack_kernel
from tcomp.ops.nn import (
    batch_matmul,
    batch_norm,
    bias_add,
    dense,
    gelu,
    layer_norm,
    log_softmax,
    matmul,
    rms_norm,
    softmax,
)
from tcomp.ops.pool import PoolType, global_pool, pool2d
from tcomp.ops.reduce import max, mean, min, prod, sum
from tcomp.ops.transform import (
    concatenate,
    expand_dims,
    flatten,
    reshape,
    split,
    squeeze,
    strided_slice,
    transpose,
)
from tcomp.ops.utils import OpError, OpKind, Tag, op_kind

__all__ = [
    "OpError", "OpKind", "PoolType", "Tag", "abs", "add", "batch_matmul", "batch_norm", "bias_add", "broadcast_shape",
    "broadcast_to", "cast", "ceil", "clip", "concatenate", "conv2d_nchw", "conv2d_nchwc", "conv2d_output_size", "cos",
    "dense", "depthwise_conv2d_nchw", "divide", "elemwise", "equal", "erf", "exp", "expand_dims", "flatten", "floor",
    "floor_divide", "floor_mod", "gelu", "global_pool", "greater", "greater_equal", "layer_norm", "layout_transform",
    "leaky_relu", "less", "less_equal", "log", "log_softmax", "matmul", "max", "maximum", "mean", "min", "minimum",
    "multiply", "negative", "nn", "not_equal", "op_kind", "pack_kernel", "pad", "pool2d", "power", "prod", "reduce",
    "relu", "reshape", "rms_norm", "round", "rsqrt", "sigmoid", "sin", "softmax", "split", "sqrt", "square", "squeeze",
    "strided_slice", "subtract", "sum", "tanh", "transform", "transpose", "where"
]
