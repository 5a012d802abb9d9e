"""How long models take to compile: with LLVM's work in compile processes (the default) and without (every kernel
compiled in the compiler's process, ``compile_processes=0``), in the same run.

Models (``--models``): ``tcomp.graph.testing``'s ``resnet18``, ``resnet50``, ``mobilenet_v2``, ``bert`` (BERT-base,
sequence 128) and ``vit`` (ViT-B/16), random weights. Each compilation runs in a fresh process, so no cache of an
earlier one helps it, and the two settings alternate round after round (``--rounds``) so they see the same machine
load. The table gives each setting's min and median seconds (``tcomp.graph.compile`` from the ONNX model to a
ready executor, and its codegen part) and their ratio.

    python bench/compile_time.py [--models resnet18,bert] [--rounds 3] [--processes -1]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import print_table  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
MODELS = {
    "resnet18": "testing.resnet(18)",
    "resnet50": "testing.resnet(50)",
    "mobilenet_v2": "testing.mobilenet_v2()",
    "bert": "testing.bert()",
    "vit": "testing.vit()",
}
PROGRAM = """
import json, sys, time
sys.path.insert(0, {root!r})
import tcomp.graph as tg
from tcomp import config
from tcomp.graph import testing
config.set_settings(compile_processes={processes})
model = testing.random_weights({model})
timings = {{}}
start = time.perf_counter()
tg.compile(model, target="llvm", timings=timings)
print(json.dumps({{"total": time.perf_counter() - start, "codegen": timings.get("codegen", 0.0)}}))
"""


def compile_once(model: str, processes: int) -> dict[str, float]:
    program = PROGRAM.format(root=str(ROOT), processes=processes, model=MODELS[model])
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=True)
    return json.loads(result.stdout.splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--processes", type=int, default=-1, help="compile processes of the default setting")
    args = parser.parse_args()
    names = [m for m in args.models.split(",") if m]
    unknown = sorted(set(names) - set(MODELS))
    if unknown:
        parser.error(f"unknown models {unknown}; known: {sorted(MODELS)}")
    settings = (args.processes, 0)
    rows = []
    for name in names:
        runs: dict[int, list[dict[str, float]]] = {p: [] for p in settings}
        for round_ in range(args.rounds):
            for processes in settings if round_ % 2 == 0 else settings[::-1]:
                runs[processes].append(compile_once(name, processes))
        total = {p: [r["total"] for r in runs[p]] for p in settings}
        codegen = {p: [r["codegen"] for r in runs[p]] for p in settings}
        with_p, without = settings
        rows.append([name,
                     f"{min(total[with_p]):.2f} / {statistics.median(total[with_p]):.2f}",
                     f"{min(total[without]):.2f} / {statistics.median(total[without]):.2f}",
                     f"{statistics.median(total[with_p]) / statistics.median(total[without]):.2f}",
                     f"{statistics.median(codegen[with_p]):.2f} / {statistics.median(codegen[without]):.2f}"])
        print(f"{name}: done", flush=True)
    print_table(["model", "processes min / median s", "in-process min / median s", "median ratio",
                 "codegen median s (processes / in-process)"], rows)


if __name__ == "__main__":
    main()
