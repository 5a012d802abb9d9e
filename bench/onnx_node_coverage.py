"""Pass counts of the onnx package's backend node test cases, per operator.

Every case (``_expanded`` function bodies included) whose operator tcomp converts or that CNN and transformer exports
use (``OPERATORS``) is compiled with the full pipeline and run on each of its data sets; a case passes when every
output matches onnx's reference (rtol 1e-3 / atol 1e-4 for floats, exactly otherwise), run as the CI test runs
them: one executor per case, shape-setting graph inputs left as inputs. Cases whose element types tcomp
lacks (bfloat16, float8, strings, sequences ...) are counted apart and left out of the percentage.

The table has, per operator: cases with supported types, passed, wrong results, clear errors (a tcomp
``GraphError``), crashes (any other exception), and the cases left out for their types. Operators run in worker
processes (``--jobs``), so that even an interpreter crash is counted, not fatal.

    python bench/onnx_node_coverage.py [--ops And,Mod] [--jobs 2] [--failures] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# Operators that exported CNNs and transformers use, beyond those tcomp converts today (issue 11's list).
OPERATORS = """
And Or Xor Not Equal Less LessOrEqual Greater GreaterOrEqual Mod Range CastLike Size Reciprocal Sign Ceil Floor Round
IsNaN IsInf Sin Cos Tan Asin Acos Atan Sinh Cosh Asinh Acosh Atanh Elu Selu Celu Swish Mish Softsign ThresholdedRelu
PRelu HardSigmoid Gelu HardSwish GatherElements GatherND ScatterElements ScatterND ArgMax ArgMin TopK CumSum Einsum
Trilu OneHot ReduceSum ReduceMean ReduceMax ReduceMin ReduceProd ReduceL1 ReduceL2 ReduceLogSum ReduceLogSumExp
ReduceSumSquare GroupNormalization MeanVarianceNormalization DepthToSpace SpaceToDepth DequantizeLinear
QuantizeLinear Conv ConvTranspose MaxPool AveragePool Resize NonZero BatchNormalization Upsample BitShift BitwiseAnd
BitwiseOr BitwiseXor BitwiseNot If Loop Scan NonMaxSuppression RoiAlign GRU LSTM RNN
""".split()


def scope() -> dict[str, list[str]]:
    """The cases counted, by operator."""
    from tcomp.graph.frontend.onnx_common import supported_op_types
    from tests.graph.onnx_cases import all_cases, case_operator

    ops = set(OPERATORS) | set(supported_op_types())
    by_op: dict[str, list[str]] = {}
    for name in sorted(all_cases()):
        op = case_operator(name)
        if op in ops:
            by_op.setdefault(op, []).append(name)
    return by_op


def worker(names: list[str]) -> None:
    from tests.graph.onnx_cases import all_cases, element_types_supported, run_case

    for name in names:
        case = all_cases()[name]
        if not element_types_supported(case):
            print(json.dumps({"name": name, "status": "types", "message": ""}), flush=True)
            continue
        result = run_case(case)
        print(json.dumps({"name": name, "status": result.status, "message": result.message}), flush=True)


def run_op(op: str, names: list[str], timeout: float) -> list[dict[str, str]]:
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", *names]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
        stdout, code = done.stdout, done.returncode
    except subprocess.TimeoutExpired as exc:
        stdout = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        code = -1
    results = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    seen = {r["name"] for r in results}
    for name in names:
        if name not in seen:
            what = "timed out" if code == -1 else f"the worker process died (exit code {code})"
            results.append({"name": name, "status": "crash", "message": what})
            break  # the rest of the operator's cases did not run
    for name in names:
        if name not in {r["name"] for r in results}:
            results.append({"name": name, "status": "crash", "message": "not run: an earlier case crashed"})
    return results


COLUMNS = ("pass", "wrong", "error", "crash")


def print_table(results: dict[str, list[dict[str, str]]], failures: bool) -> None:
    header = f"{'operator':<28}{'cases':>6}{'pass':>6}{'wrong':>7}{'error':>7}{'crash':>7}{'types':>7}"
    print(header)
    print("-" * len(header))
    totals = dict.fromkeys((*COLUMNS, "types"), 0)
    for op in sorted(results):
        counts = dict.fromkeys((*COLUMNS, "types"), 0)
        for r in results[op]:
            counts[r["status"]] += 1
        for key, value in counts.items():
            totals[key] += value
        cases = sum(counts[c] for c in COLUMNS)
        print(f"{op:<28}{cases:>6}{counts['pass']:>6}{counts['wrong']:>7}{counts['error']:>7}{counts['crash']:>7}"
              f"{counts['types']:>7}")
    cases = sum(totals[c] for c in COLUMNS)
    print("-" * len(header))
    print(f"{'total':<28}{cases:>6}{totals['pass']:>6}{totals['wrong']:>7}{totals['error']:>7}{totals['crash']:>7}"
          f"{totals['types']:>7}")
    if cases:
        print(f"passed: {totals['pass']} of {cases} cases with supported element types "
              f"({100.0 * totals['pass'] / cases:.1f}%)")
    if failures:
        print()
        for op in sorted(results):
            for r in sorted(results[op], key=lambda r: r["name"]):
                if r["status"] in ("wrong", "error", "crash"):
                    print(f"{r['status']:<6} {r['name']}: {r['message'][:240]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ops", help="comma-separated operators (default: all in scope)")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per operator")
    parser.add_argument("--failures", action="store_true", help="list every case that does not pass")
    parser.add_argument("--json", help="write the results to this file")
    parser.add_argument("--worker", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        worker(args.worker)
        return
    by_op = scope()
    if args.ops:
        wanted = args.ops.split(",")
        by_op = {op: by_op.get(op, []) for op in wanted}
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futures = {op: pool.submit(run_op, op, names, args.timeout) for op, names in by_op.items() if names}
        results = {op: future.result() for op, future in futures.items()}
    for op in by_op:
        results.setdefault(op, [])
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    print_table(results, args.failures)


if __name__ == "__main__":
    main()
