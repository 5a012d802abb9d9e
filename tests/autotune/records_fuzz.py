"""Fuzzing tuning-records files: a runner (``python records_fuzz.py COUNT SEED FOLDER``) used by
``test_records_fuzz.py`` and run by hand with a large count.

Each case is a records file made of intact lines (real records of real tasks) and damaged ones: a file cut at a
random byte, garbage lines (random bytes, random JSON, nesting 100,000 deep, 5000-digit integers) and records with a
random field replaced by a hostile value (a module or template name that names code, huge or negative numbers,
wrong types, NaN). A module ``fuzz_payload`` in the working folder writes a marker file if anything imports it.

For each case the runner reads the file with ``read_records`` and hands it to ``ApplyHistoryBest``, ``pick_best``
and a tuner's ``load_history``, then prints one JSON line: ``{"case", "outcome": "ok" | <exception>, "intact",
"lost"}`` where ``lost`` lists the intact lines that did not load. A crash shows as a child that stops reporting.
"""

from __future__ import annotations

import copy
import json
import random
import sys
import warnings
from pathlib import Path
from typing import Any

from tests.fuzzing import json_paths

HOSTILE: list[Any] = [
    "fuzz_payload", "this", "os", "subprocess", "__import__('os').system('true')", "../../etc/passwd", "",
    "x" * 5000, -1, 0, 1, 2**31, 2**63, -(2**63) - 1, 10**30, 1e308, -0.0, 0.5, True, False, None, [], {},
    [0, 0, 0], [-1, 1], [2**40, 1], ["unroll"], ["none", "sideways"], {"__class__": "x"}, [[[[[[[[[1]]]]]]]]],
    "matmul", "dense", "conv2d_nchw", "llvm", "cuda", "llvm -mcpu=nosuchcpu", "ok", "run_error",
]
RAW_GARBAGE = [
    "[" * 100_000 + "]" * 100_000, '{"v": 1, "task": ' + "9" * 5000 + "}", "NaN", "Infinity", '{"v": NaN}',
    "\x00" * 40, "\ufffd\ufffe{{{", '{"v": 1}', "{}", "[]", "null", '"string"', "1e999999", "-" * 100,
]


def good_lines() -> list[str]:
    from tcomp.autotune import create_task
    from tcomp.autotune.measure import MeasureResult, MeasureStatus
    from tcomp.autotune.record import Record

    lines = []
    for name, args in (("matmul", (16, 16, 16)), ("dense", (8, 16, 8)), ("matmul", (32, 16, 8))):
        task = create_task(name, args, "llvm -num-cores=2")
        space = task.config_space
        for k, index in enumerate((0, len(space) // 3, len(space) - 1)):
            status = MeasureStatus.OK if k != 1 else MeasureStatus.RUN_ERROR
            costs = (1e-4 * (index + 1),) if status is MeasureStatus.OK else ()
            result = MeasureResult(status, costs, "", 0.1, 0.1, 1000.0 + index)
            lines.append(Record(task, space.get(index), result).encode())
    return lines


def _replace(value: Any, path: tuple[Any, ...], new: Any) -> None:
    for key in path[:-1]:
        value = value[key]
    value[path[-1]] = new


def hostile_record(rng: random.Random, line: str) -> str:
    value = json.loads(line)
    for _ in range(rng.randint(1, 3)):
        paths = json_paths(value)
        path = paths[rng.randrange(len(paths))]
        choice = rng.random()
        if choice < 0.15:
            target = value
            for key in path[:-1]:
                target = target[key]
            del target[path[-1]]
        elif choice < 0.25:
            _replace(value, path, rng.choice(["fuzz_payload", "this"]))
        else:
            _replace(value, path, copy.deepcopy(rng.choice(HOSTILE)))
        if rng.random() < 0.3:
            value["task"] = value.get("task") if isinstance(value.get("task"), dict) else {}
            value["task"]["module"] = "fuzz_payload"
    text = json.dumps(value)
    if rng.random() < 0.2:
        text = text.replace("1000", "9" * rng.choice([20, 400, 5000]), 1)
    return text


def make_case(rng: random.Random, good: list[str]) -> tuple[str, list[int]]:
    """A file's text and the 1-based numbers of its intact lines."""
    lines: list[str] = []
    intact: list[int] = []
    for _ in range(rng.randint(3, 14)):
        kind = rng.random()
        if kind < 0.45:
            lines.append(rng.choice(good))
            intact.append(len(lines))
        elif kind < 0.75:
            lines.append(hostile_record(rng, rng.choice(good)))
        elif kind < 0.9:
            lines.append(rng.choice(RAW_GARBAGE))
        else:
            lines.append("".join(chr(rng.randrange(1, 0x2FF)) for _ in range(rng.randint(1, 200))).replace("\n", " "))
    text = "\n".join(lines) + "\n"
    if rng.random() < 0.4:  # a cut at a random byte: the line it cuts is not intact any more
        data = text.encode()
        cut = rng.randrange(len(data))
        text = data[:cut].decode("utf-8", errors="ignore")
        complete = text.count("\n")
        intact = [n for n in intact if n <= complete]
    return text, intact


def run_case(path: Path, intact: list[int]) -> dict[str, Any]:
    from tcomp.autotune import create_task
    from tcomp.autotune.dispatch import ApplyHistoryBest
    from tcomp.autotune.record import pick_best, read_records
    from tcomp.autotune.tuner import TunerKind, create_tuner

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        log = read_records(path)
        skipped = set(log.corrupt_lines) | set(log.unknown_version_lines)
        ApplyHistoryBest(path)
        pick_best(path, path.with_suffix(".best"))
        create_tuner(TunerKind.RANDOM, create_task("matmul", (16, 16, 16), "llvm -num-cores=2")).load_history(
            log.records)
    return {"intact": len(intact), "lost": [n for n in intact if n in skipped],
            "loaded": len(log.records)}


def main(count: int, seed: int, folder: Path) -> None:
    sys.path.insert(0, str(folder))
    (folder / "fuzz_payload.py").write_text("open(__file__ + '.ran', 'w').write('code from a record ran')\n")
    good = good_lines()
    rng = random.Random(seed)
    for case in range(count):
        text, intact = make_case(rng, good)
        path = folder / f"case{case % 8}.jsonl"
        path.write_text(text)
        try:
            report = run_case(path, intact)
            report["outcome"] = "ok"
        except Exception as error:  # noqa: BLE001 - reported, and the test fails on it
            report = {"outcome": f"{type(error).__name__}: {str(error)[:300]}"}
        report["case"] = case
        report["payload_ran"] = (folder / "fuzz_payload.py.ran").exists()
        print(json.dumps(report), flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3]))
