"""A long-lived process stays bounded: the build cache and the graph compiler's kernel cache are LRUs of
``Settings.build_cache_size`` entries, and a dropped module or executor frees its kernels.

Before: the build cache kept about 0.9 MiB per distinct kernel (200 kernels: +177 MiB) and every compiled-then-
dropped model about 2.9 MiB, for the life of the process. RSS is measured in a child process. What remains is
llvmlite's own: each O3 pass pipeline it builds leaks about 70 KiB (its pass instrumentation is never freed), so
the bounds below allow a small growth per distinct kernel, an order of magnitude under what the caches kept.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tcomp import config
from tcomp.lru import LRUCache

ROOT = Path(__file__).resolve().parents[2]

_GROWTH = r"""
import gc, json
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
import tcomp
import tcomp.graph as tg
from tcomp import config, te
from tcomp.backend import build_cache
from tcomp.graph import kernels

config.set_settings(build_cache_size=8)

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20

def kernel(n):
    A = te.placeholder((n,), name="A")
    B = te.compute((n,), lambda i: A[i] * 2.0 + 1.0, name="B")
    return tcomp.build(tcomp.create_schedule(B), [A, B])

def model(n):
    w = np.full((n, 8), 0.5, np.float32)
    nodes = [helper.make_node("MatMul", ["x", "w"], ["m"]), helper.make_node("Relu", ["m"], ["y"])]
    graph = helper.make_graph(nodes, "m", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, n])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 8])],
                              [numpy_helper.from_array(w, "w")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])

def models(first, count):
    for n in range(first, first + count):
        executor = tg.compile(model(n))
        executor.run([np.ones((2, n), np.float32)])
        del executor

for n in range(1, 21):
    kernel(n)
models(1, 10)
gc.collect()
start = rss()
for n in range(100, 180):
    kernel(n)
gc.collect()
after_kernels = rss()
models(100, 25)
gc.collect()
print(json.dumps({"kernels": after_kernels - start, "models": rss() - after_kernels,
                  "build_cache": len(build_cache.entries), "kernel_cache": len(kernels._KERNEL_CACHE)}))
"""


def test_memory_stays_bounded_over_many_kernels_and_dropped_models() -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    child = subprocess.run([sys.executable, "-c", _GROWTH], env=env, capture_output=True, text=True, timeout=600)
    assert child.returncode == 0, child.stderr[-3000:]
    growth = json.loads(child.stdout.splitlines()[-1])
    assert growth["build_cache"] <= 8 and growth["kernel_cache"] <= 8
    assert growth["kernels"] < 25.0, growth  # 80 distinct kernels: +70 MiB when the cache kept them all
    assert growth["models"] < 15.0, growth  # 25 dropped models: +40 MiB before


def test_lru_drops_the_least_recently_used() -> None:
    cache: LRUCache[str, int] = LRUCache(lambda: 2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # "b" is now the least recently used
    cache.put("c", 3)
    assert cache.get("b") is None and cache.get("a") == 1 and cache.get("c") == 3
    assert cache.evictions == 1 and len(cache) == 2
    cache.remove_if(lambda key: key == "a")
    assert cache.get("a") is None and len(cache) == 1


def _increment(n: int) -> tuple[object, list[object]]:
    import tcomp
    from tcomp import te

    a = te.placeholder((n,), name="A")
    b = te.compute((n,), lambda i: a[i] + 1.0, name="B")
    return tcomp.create_schedule(b), [a, b]


def test_the_build_cache_follows_its_size_setting() -> None:
    import tcomp
    from tcomp.backend import build_cache

    build_cache.clear()
    with config.override(build_cache_size=3):
        for n in range(5, 10):
            tcomp.build(*_increment(n))
        assert len(build_cache.entries) == 3
