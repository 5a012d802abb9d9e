"""An ONNX integer Div by zero is a clean error, as in onnxruntime: a ``KernelError`` naming the node when it runs,
a ``GraphError`` naming the node when constant folding meets it at compile time. Both killed the interpreter with
SIGFPE (folding: from 2,000 elements up, where the generated kernel computes the values), so each runs in a child
process."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

_CHILD = textwrap.dedent("""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper
    import tcomp.graph as tg
    from tcomp.runtime import KernelError

    n, fold = {n}, {fold}
    x = helper.make_tensor_value_info("x", TensorProto.INT32, [n])
    y = helper.make_tensor_value_info("y", TensorProto.INT32, [n])
    if fold:  # Div of two constants, folded at compile time
        constants = [numpy_helper.from_array(np.arange(n, dtype=np.int32), "a"),
                     numpy_helper.from_array(np.zeros(n, dtype=np.int32), "b")]
        nodes = [helper.make_node("Div", ["a", "b"], ["q"], name="divide"), helper.make_node("Add", ["q", "x"], ["y"])]
        graph = helper.make_graph(nodes, "g", [x], [y], initializer=constants)
        feeds = [np.ones(n, np.int32)]
    else:
        z = helper.make_tensor_value_info("z", TensorProto.INT32, [n])
        graph = helper.make_graph([helper.make_node("Div", ["x", "z"], ["y"], name="divide")], "g", [x, z], [y])
        divisor = np.ones(n, np.int32)
        divisor[n // 2] = 0
        feeds = [np.arange(n, dtype=np.int32), divisor]
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    try:
        tg.compile(model).run(feeds)
        print("no error")
    except (tg.GraphError, KernelError) as exc:
        print(type(exc).__name__ + ":", exc)
""")


@pytest.mark.parametrize(("n", "fold", "error"), [
    (8, True, "GraphError"),
    (2000, True, "GraphError"),
    (1000, False, "KernelError"),
])
def test_integer_div_by_zero(n: int, fold: bool, error: str) -> None:
    child = subprocess.run([sys.executable, "-c", _CHILD.format(n=n, fold=fold)], capture_output=True, text=True,
                           timeout=600)
    assert child.returncode == 0, f"the child died (status {child.returncode}): {child.stderr[-2000:]}"
    out = child.stdout.strip()
    assert out.startswith(f"{error}:"), out
    assert "divide" in out and "division by zero" in out, out
