"""Tutorial 4: tune a matmul instead of writing its schedule, then compile with the best config found.

1. A *template* is a compute plus a schedule whose choices are knobs (``cfg.define_split`` ...). tcomp ships one
   for matmul (``tcomp/autotune/templates/cpu/gemm.py``); we look at its config space.
2. A *task* is the template with arguments for a target. A tuner proposes configs, worker processes build and time
   them (checking every result against numpy), and each measurement is appended to a records file.
3. ``apply_history_best(records)`` makes the template pick the best logged config when we instantiate it; tasks
   with no record fall back to the template's default config (its default schedule).

Measurement runs in worker processes started with ``spawn``, which re-imports this script: the work therefore sits
under ``if __name__ == "__main__":``.
"""

import tempfile
from pathlib import Path

import numpy as np

import tcomp
from tcomp import autotune


def gflops(module, M, N, K):
    a = np.random.rand(M, K).astype("float32")
    b = np.random.rand(K, N).astype("float32")
    c = np.zeros((M, N), dtype="float32")
    module(a, b, c)
    np.testing.assert_allclose(c, a @ b, rtol=1e-4)
    timing = module.time_evaluator(number=5, repeat=3)(a, b, c)
    return 2 * M * N * K / timing.min / 1e9


def main():
    M = N = K = 256
    task = autotune.create_task("matmul", (M, N, K), target="llvm")
    print(task)
    print(task.config_space)  # knobs: tile sizes of i/j/k, loop order, unrolling

    records = Path(tempfile.mkdtemp()) / "matmul.jsonl"
    tuner = autotune.XGBTuner(task, seed=0, plan_size=8)
    result = tuner.tune(
        n_trial=24,
        measure_option=autotune.MeasureOptions(number=5, repeat=3, build_timeout=10, run_timeout=10),
        callbacks=[autotune.log_to_file(records)],
    )
    print(f"{result.trials} trials, {result.errors} failed; default config {result.default_gflops:.1f} GFLOP/s, "
          f"best {result.best_gflops:.1f} GFLOP/s: {result.best_config}")

    # Compile with the best record, and with the default config and the naive loop nest for comparison.
    with autotune.apply_history_best(records):
        tuned = autotune.instantiate("matmul", M, N, K, target="llvm")
    assert tuned.tuned
    default = autotune.instantiate("matmul", M, N, K, target="llvm")  # no context: the default config
    assert not default.tuned
    s_naive = tcomp.create_schedule(default.tensors[-1])
    for label, schedule, tensors in [("naive loop nest", s_naive, default.tensors),
                                     ("template, default config", default.schedule, default.tensors),
                                     ("template, tuned config", tuned.schedule, tuned.tensors)]:
        module = tcomp.build(schedule, tensors, target="llvm")
        print(f"{label:<26} {gflops(module, M, N, K):8.1f} GFLOP/s")


if __name__ == "__main__":
    main()
