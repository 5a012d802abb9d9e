"""Tutorial 4: tune a matmul instead of writing its schedule, then compile with the best config found.

1. A *template* is a compute plus a schedule whose choices are knobs (``cfg.define_split`` ...). tcomp ships one
   for matmul (``tcomp/autotune/templates/cpu/gemm.py``); we look at its config space.
2. A *task* is the template with arguments for a target. A tuner proposes configs, worker processes build and time
   them (checking every result against numpy), and each measurement is appended to a records file.
3. ``apply_history_best(records)`` makes the template pick the best logged config when we instantiate it; tasks
   with no record fall back to the template's default config (its default schedule).
4. We time the naive loop nest, the default config and the tuned one the same way, and print the knobs the tuner
   changed: the default blocking comes from a formula over the vector registers, cache sizes and cores, the tuned
   one from measuring this machine. Where the formula already sits near the machine's peak, as it does for this
   product on recent CPUs, the tuner finds a few percent (the panel depth, the loop order); the confirmation at the
   end keeps the default where nothing measured beats it.

Measurement runs in worker processes started with ``spawn``, which re-imports this script: the work therefore sits
under ``if __name__ == "__main__":``.
"""

import tempfile
from pathlib import Path

import numpy as np

import tcomp
from tcomp import autotune
from tcomp.runtime.timer import wait_until_threads_idle

# What each knob of the matmul template decides (see tcomp/autotune/templates/cpu/gemm.py).
KNOBS = {
    "tile_i": "[blocks, mid, mr]: mr rows of C per register tile; mid * mr rows share one pass over a B panel",
    "tile_j": "[panels, nr]: nr columns per register tile, the width of each packed panel of B",
    "tile_k": "[blocks, kc]: the depth of one pass; an A block of mid*mr x kc and a B panel of kc x nr stay in cache",
    "order": "the nesting of the k-block, panel and row-block loops: which operand stays in cache longest",
    "unroll_mr": "whether the mr rows of the plain loops are unrolled",
    "unroll_k": "how far the plain loops' k loop is unrolled",
    "micro_kernel": "1: each tile is one call of tcomp's GEMM micro-kernel; 0: plain loops LLVM vectorizes",
}


def time_fairly(modules, a, b, rounds=5):
    """Seconds per call of each module: checked against numpy first, then timed in turn (round after round, best
    of all), after numpy's threads have gone idle. OpenBLAS keeps its threads spinning for a while after a call;
    timing our kernels then would share the cores with them and make them look many times slower."""
    expected = a @ b
    c = np.zeros_like(expected)
    for module in modules.values():
        c[:] = 0
        module(a, b, c)
        np.testing.assert_allclose(c, expected, rtol=1e-4)
    wait_until_threads_idle()
    best = {label: float("inf") for label in modules}
    for _ in range(rounds):
        for label, module in modules.items():
            best[label] = min(best[label], module.time_evaluator(number=3, repeat=1)(a, b, c).min)
    return best


def main():
    # Idle pool threads sleep at once, as in the tuner's measurement processes: on a machine busy with other work,
    # threads that spin while waiting take the cores the working ones need (tcomp.config, thread_spin_count).
    tcomp.config.set_settings(thread_spin_count=0)
    # A short, wide product: 64 rows (a transformer layer over 64 tokens) times a 1024 x 1024 weight.
    M, N, K = 64, 1024, 1024
    task = autotune.create_task("matmul", (M, N, K), target="llvm")
    print(task)
    print(task.config_space)  # knobs: tile sizes of i/j/k, loop order, unrolling, the micro-kernel

    # The tuner measures the template's default config first, then proposes batches its cost model ranks best;
    # at the end the default and the two fastest are measured again side by side and compared by their medians, so
    # "best" really beats the default.
    records = Path(tempfile.mkdtemp()) / "matmul.jsonl"
    tuner = autotune.XGBTuner(task, seed=0, plan_size=8)
    result = tuner.tune(
        n_trial=32,
        measure_option=autotune.MeasureOptions(number=5, repeat=3, build_timeout=10, run_timeout=10),
        callbacks=[autotune.log_to_file(records)],
    )
    print(f"{result.trials} trials, {result.errors} failed; default config {result.default_gflops:.1f} GFLOP/s, "
          f"best {result.best_gflops:.1f} GFLOP/s")

    # Compile with the best record, and with the default config and the naive loop nest for comparison.
    with autotune.apply_history_best(records):
        tuned = autotune.instantiate("matmul", M, N, K, target="llvm")
    assert tuned.tuned
    default = autotune.instantiate("matmul", M, N, K, target="llvm")  # no context: the default config
    assert not default.tuned
    s_naive = tcomp.create_schedule(default.tensors[-1])
    modules = {label: tcomp.build(schedule, tensors, target="llvm")
               for label, schedule, tensors in [("naive loop nest", s_naive, default.tensors),
                                                ("template, default config", default.schedule, default.tensors),
                                                ("template, tuned config", tuned.schedule, tuned.tensors)]}
    a = np.random.rand(M, K).astype("float32")
    b = np.random.rand(K, N).astype("float32")
    seconds = time_fairly(modules, a, b)
    for label, t in seconds.items():
        print(f"{label:<26} {2 * M * N * K / t / 1e9:8.1f} GFLOP/s")
    speedup = seconds["template, default config"] / seconds["template, tuned config"]
    print(f"the tuned config runs {speedup:.2f}x as fast as the default one")

    # Why: the default config is the hand schedule's blocking, computed by a formula from the vector registers
    # (the register tile), the cache sizes (the panel depth and the block of rows) and the cores (at least one block
    # of rows per core: tile_i's first factor runs in parallel); the tuner measured what this machine does with each
    # choice. The knobs where the tuned config differs:
    fallback, best = task.config_space.fallback, result.best_config
    plain_loops_only = ("unroll_mr", "unroll_k")  # with the micro-kernel, the tile is one call: nothing to unroll
    for name, meaning in KNOBS.items():
        if name in plain_loops_only and best["micro_kernel"].val == 1:
            continue
        if name in best.choices and best[name] != fallback[name]:
            print(f"  {name}: {fallback[name].to_json()} -> {best[name].to_json()}: {meaning}")
    if best.same_choices(fallback):
        print("  none: no config measured beat the default here (more trials may find one)")


if __name__ == "__main__":
    main()
