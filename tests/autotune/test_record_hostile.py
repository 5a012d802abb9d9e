"""Records are data: no field names code to run, and any malformed line is skipped with a warning naming the file
and the line, by every reader (``read_records``, ``tcomp tune --resume``, ``tcomp pick``, ``apply_history_best``,
the tuners' ``load_history``). Knob values are checked against the template's space before any build.

The cases that once ran code (a record naming a module) or killed the interpreter (``unroll_k=1000000`` reached a
build: ``std::bad_alloc``) run in a child process.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest

from tcomp.autotune import create_task
from tcomp.autotune.dispatch import ApplyConfig, ApplyHistoryBest, instantiate
from tcomp.autotune.measure import MeasureResult, MeasureStatus
from tcomp.autotune.record import MAX_LINE, Record, pick_best, read_records
from tcomp.autotune.space import ConfigEntity, SpaceError
from tcomp.autotune.tuner import TunerKind, create_tuner

ROOT = Path(__file__).resolve().parents[2]
TARGET = "llvm -num-cores=2"


def good_records() -> list[Record]:
    task = create_task("matmul", (32, 32, 32), TARGET)
    other = create_task("dense", (8, 16, 8), TARGET)
    space, other_space = task.config_space, other.config_space
    records = [Record(task, space.get(k), MeasureResult(MeasureStatus.OK, (1e-4 * (k + 1),), "", 0.1, 0.1, 1.0 + k))
               for k in (0, 3, 7)]
    return records + [Record(other, other_space.get(2), MeasureResult(MeasureStatus.OK, (2e-5,), "", 0.1, 0.1, 9.0))]


def _edited(edit: Any) -> str:
    value = copy.deepcopy(good_records()[0].to_json())
    edit(value)
    return json.dumps(value)


def _set(path: tuple[Any, ...], new: Any) -> Any:
    def edit(value: Any) -> None:
        for key in path[:-1]:
            value = value[key]
        value[path[-1]] = new

    return edit


def _knob(name: str, new: Any) -> Any:
    def edit(value: Any) -> None:
        for knob in value["config"]["knobs"]:
            if knob[0] == name:
                knob[2] = new

    return edit


DEEP = "[" * 100_000 + "]" * 100_000
HUGE = "9" * 5000

# (why, line): every one is skipped; the line-level reasons are what the warning says
BAD_LINES: list[tuple[str, str]] = [
    ("5000-digit integer", '{"v": 1, "task": {"name": "matmul", "args": [' + HUGE + ', 32, 32], "target": "llvm"}}'),
    ("5000-digit integer in a knob", _edited(_knob("unroll_k", 0)).replace('"unroll_k", "other", 0',
                                                                          '"unroll_k", "other", ' + HUGE)),
    ("deep nesting", DEEP),
    ("deep nesting in the arguments", _edited(_set(("task", "args"), [])).replace('"args": []', '"args": ' + DEEP)),
    ("nesting just under the recursion limit", _edited(_set(("task", "args"), json.loads("[" * 900 + "]" * 900)))),
    ("a line longer than MAX_LINE", '{"v": 1, "pad": "' + "x" * (MAX_LINE + 10) + '"}'),
    ("not an object", "[1, 2, 3]"),
    ("no version", "{}"),
    ("version true", _edited(_set(("v",), True))),
    ("task not an object", _edited(_set(("task",), [1]))),
    ("no task", _edited(lambda v: v.pop("task"))),
    ("no config", _edited(lambda v: v.pop("config"))),
    ("no result", _edited(lambda v: v.pop("result"))),
    ("name not a string", _edited(_set(("task", "name"), 5))),
    ("args not a list", _edited(_set(("task", "args"), "32,32,32"))),
    ("args an object", _edited(_set(("task", "args"), {"M": 32}))),
    ("target not a string", _edited(_set(("task", "target"), ["llvm"]))),
    ("int64 overflow in args", _edited(_set(("task", "args"), [2**70, 32, 32]))),
    ("negative shape", _edited(_set(("task", "args"), [-32, 32, 32]))),
    ("zero shape", _edited(_set(("task", "args"), [0, 32, 32]))),
    ("huge extent", _edited(_set(("task", "args"), [2**41 + 1, 32, 32]))),
    ("large prime extent", _edited(_set(("task", "args"), [1099511627689, 32, 32]))),
    ("string shape", _edited(_set(("task", "args"), ["a", "b", "c"]))),
    ("too many args", _edited(_set(("task", "args"), [32] * 40))),
    ("bool args", _edited(_set(("task", "args"), [True, True, True]))),
    ("unknown template", _edited(_set(("task", "name"), "no_such_template"))),
    ("knobs not a list", _edited(_set(("config", "knobs"), {"unroll_k": 4}))),
    ("knob not a triple", _edited(_set(("config", "knobs"), [["unroll_k", "other"]]))),
    ("unknown knob kind", _edited(lambda v: v["config"]["knobs"][0].__setitem__(1, "sideways"))),
    ("unknown knob", _edited(lambda v: v["config"]["knobs"].append(["evil", "other", 1]))),
    ("knob given twice", _edited(lambda v: v["config"]["knobs"].append(list(v["config"]["knobs"][0])))),
    ("unroll_k=1000000", _edited(_knob("unroll_k", 1_000_000))),
    ("unroll_k a string", _edited(_knob("unroll_k", "4"))),
    ("unroll_k a list", _edited(_knob("unroll_k", [4]))),
    ("split factor zero", _edited(_knob("tile_i", [0, 0, 0]))),
    ("split factor negative", _edited(_knob("tile_k", [-1, -32]))),
    ("split of wrong length", _edited(_knob("tile_k", [1, 1, 1, 32]))),
    ("split of floats", _edited(_knob("tile_k", [1.0, 32.0]))),
    ("reorder out of range", _edited(_knob("order", [0, 1, 7]))),
    ("reorder repeating", _edited(_knob("order", [0, 0, 0]))),
    ("annotation unknown", _edited(_knob("unroll_mr", ["sideways"]))),
    ("annotation not a string", _edited(_knob("unroll_mr", [1]))),
    ("config index a string", _edited(_set(("config", "index"), "0"))),
    ("status unknown", _edited(_set(("result", "status"), "great"))),
    ("cost NaN", _edited(_set(("result", "costs"), [1e-4])).replace("0.0001", "NaN")),
    ("cost negative", _edited(_set(("result", "costs"), [-1.0]))),
    ("cost a string", _edited(_set(("result", "costs"), ["fast"]))),
    ("costs on a failure", _edited(lambda v: v["result"].update(status="run_error"))),
    ("message not a string", _edited(_set(("result", "message"), {"a": 1}))),
    ("timestamp Infinity", _edited(_set(("result", "timestamp"), 1.0)).replace('"timestamp": 1.0',
                                                                              '"timestamp": Infinity')),
    ("binary garbage", "\x00\x01\x02\ufffd{{{"),
]


def mixed_file(path: Path) -> tuple[list[str], list[int]]:
    """A records file of good lines with every bad line between them: the good lines and the bad lines' numbers."""
    good = [r.encode() for r in good_records()]
    lines: list[str] = []
    bad_numbers: list[int] = []
    for k, (_, line) in enumerate(BAD_LINES):
        if k % 13 == 0 and k // 13 < len(good):
            lines.append(good[k // 13])
        lines.append(line)
        bad_numbers.append(len(lines))
    lines += good[len(lines) // 1000 + 4:]
    path.write_text("\n".join(lines) + "\n")
    return good, bad_numbers


@pytest.mark.parametrize("why, line", BAD_LINES, ids=[why for why, _ in BAD_LINES])
def test_a_bad_line_is_skipped_with_a_warning(why: str, line: str) -> None:
    good = good_records()[1].encode()
    with pytest.warns(RuntimeWarning, match="line 2: skipped: ") as caught:
        log = read_records([good, line, good])
    assert len(log.records) == 2 and log.corrupt_lines + log.unknown_version_lines == [2], why
    assert len(str(caught[0].message)) < 1000


def test_every_reader_skips_bad_lines_and_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "mixed.jsonl"
    good, bad_numbers = mixed_file(path)
    with pytest.warns(RuntimeWarning) as caught:
        log = read_records(path)
    assert [r.encode() for r in log.records] == good
    assert sorted(log.corrupt_lines + log.unknown_version_lines) == bad_numbers
    messages = [str(w.message) for w in caught]
    assert f"{path}, line {bad_numbers[0]}: skipped" in messages[0]
    assert f"skipped {len(bad_numbers)} lines in all" in messages[-1]

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        context = ApplyHistoryBest(path)
        inst = instantiate("matmul", 32, 32, 32, target=TARGET, context=context)
        assert inst.tuned and inst.config.same_choices(good_records()[0].config)
        assert pick_best(path, tmp_path / "best.jsonl") == 2
        tuner = create_tuner(TunerKind.XGB, create_task("matmul", (32, 32, 32), TARGET))
        assert tuner.load_history(read_records(path).records) == 3


def test_tune_resume_and_pick_with_bad_lines(tmp_path: Path) -> None:
    path = tmp_path / "mixed.jsonl"
    mixed_file(path)
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    tune = subprocess.run([sys.executable, "-m", "tcomp.cli", "tune", "--op", "matmul", "--shape", "32,32,32",
                           "--target", TARGET, "--trials", "3", "--resume", "--tuning-records", str(path),
                           "--plot", str(tmp_path / "plot.png")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert tune.returncode == 0, tune.stderr[-3000:]
    assert f"{path}, line 2: skipped" in tune.stderr and "Traceback" not in tune.stderr
    pick = subprocess.run([sys.executable, "-m", "tcomp.cli", "pick", str(path), "-o", str(tmp_path / "best.jsonl")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert pick.returncode == 0 and "of 2 task(s)" in pick.stdout, pick.stderr[-3000:]


def test_old_records_that_name_tcomps_own_modules_still_load() -> None:
    lines = []
    for record in good_records():
        value = record.to_json()
        value["task"]["module"] = "tcomp.autotune.templates.gemm"
        lines.append(json.dumps(value))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        log = read_records(lines)
    assert [r.encode() for r in log.records] == [r.encode() for r in good_records()]
    assert "module" not in log.records[0].to_json()["task"]


_NO_CODE_FROM_RECORDS = r"""
import json, sys, warnings
warnings.simplefilter("ignore")
sys.path.insert(0, ".")
from tcomp.autotune import create_task
from tcomp.autotune.dispatch import ApplyHistoryBest
from tcomp.autotune.record import read_records
from tcomp.autotune.tuner import TunerKind, create_tuner

lines = open("records.jsonl").read().splitlines()
log = read_records("records.jsonl")
for kind in (TunerKind.XGB, TunerKind.RANDOM):
    tuner = create_tuner(kind, create_task("matmul", (32, 32, 32), "llvm -num-cores=2"))
    tuner.load_history(log.records)
ApplyHistoryBest("records.jsonl")
print(json.dumps({"records": len(log.records), "skipped": log.corrupt_lines,
                  "imported": sorted(m for m in ("this", "evil_records_module") if m in sys.modules)}))
"""


def test_a_record_naming_a_module_runs_no_code(tmp_path: Path) -> None:
    (tmp_path / "evil_records_module.py").write_text("open('ran', 'w').write('code from a record ran')\n")
    lines = []
    for name, module in [("no_such_template", "this"), ("evil", "evil_records_module"),
                         ("matmul", "evil_records_module"), ("dense", "this")]:
        value = good_records()[0].to_json() if name != "dense" else good_records()[3].to_json()
        value["task"].update(name=name, module=module)
        lines.append(json.dumps(value))
    (tmp_path / "records.jsonl").write_text("\n".join(lines) + "\n")
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    child = subprocess.run([sys.executable, "-c", _NO_CODE_FROM_RECORDS], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=300)
    assert child.returncode == 0, child.stderr[-3000:]
    report = json.loads(child.stdout.splitlines()[-1])
    assert report == {"records": 2, "skipped": [1, 2], "imported": []}
    assert not (tmp_path / "ran").exists()
    assert "Beautiful is better than ugly" not in child.stdout


_HUGE_UNROLL = r"""
import json
from tcomp.autotune import create_task
from tcomp.autotune.dispatch import ApplyConfig, build
from tcomp.autotune.space import ConfigEntity, SpaceError

task = create_task("matmul", (32, 32, 32), "llvm -num-cores=2")
value = task.config_space.fallback.to_json()
for knob in value["knobs"]:
    if knob[0] == "unroll_k":
        knob[2] = 1000000
    if knob[0] == "micro_kernel":
        knob[2] = 0
try:
    build("matmul", 32, 32, 32, target="llvm -num-cores=2", context=ApplyConfig(ConfigEntity.from_json(value)))
    print("built")
except SpaceError as error:
    print("SpaceError:", error)
"""


def test_unroll_k_of_a_million_never_reaches_a_build() -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    child = subprocess.run([sys.executable, "-c", _HUGE_UNROLL], env=env, capture_output=True, text=True,
                           timeout=120)
    assert child.returncode == 0, f"the child died ({child.returncode}): {child.stderr[-2000:]}"
    assert "SpaceError: knob unroll_k=1000000 is not one of its 4 choices [1, 2, 4, 8]" in child.stdout


@pytest.mark.parametrize("knob, value", [
    ("tile_i", [0, 0, 0]), ("tile_i", [1, 1, 1000]), ("tile_j", [1, 0]), ("tile_k", [4, 8, 1]),
    ("order", [0, 1, 9]), ("order", [2, 2, 2]), ("unroll_k", 3), ("unroll_k", "x"), ("micro_kernel", 7),
    ("unroll_mr", ["unroll", "unroll"]),
])
def test_a_bad_knob_value_is_a_space_error_at_instantiation(knob: str, value: Any) -> None:
    task = create_task("matmul", (32, 32, 32), TARGET)
    config = task.config_space.fallback.to_json()
    for entry in config["knobs"]:
        if entry[0] == knob:
            entry[2] = value
    bad = ConfigEntity.from_json(config, task.target)
    with pytest.raises(SpaceError, match=f"knob {knob}="):
        task.instantiate(bad)
    with pytest.raises(SpaceError, match=f"knob {knob}="):
        instantiate("matmul", 32, 32, 32, target=TARGET, context=ApplyConfig(bad))
