"""The prior: measured tables of other tasks that a new xgb tuner's cost model starts from.

A cost model fitted on nothing ranks nothing, so a tuner without records starts with a batch it cannot aim. tcomp
ships measured tables (``tcomp/autotune/priors/*.json.gz``, ``MeasuredTable`` files: every config of a task's
space, or a few hundred for the larger spaces, each with the GFLOP/s it ran at) of a few tasks of the templates that
models tune most: ``matmul``, ``dense`` and ``conv2d_nchwc_blocked``, as AVX-512 and AVX2 code (on a Zen 4). Before
its first batch, an ``XGBTuner`` without records of its own or transferred ones learns its base model from the
tables of its template measured with its target's vector width (``prior_records``; none for other targets), and
plans that batch from the base model's predictions; its own measurements then refine the model as usual (the base
model's predictions stay the starting margin of every fit, ``XGBoostCostModel``). ``XGBTuner(prior=False)``
(``tcomp tune --no-prior``) starts blind, from the default config's neighbours.

What it is worth, replayed (``bench/tune_replay.py``, 20 seeds; median trials to reach 95% of the best of tables of
tasks the prior does not hold): matmul 256^3 4 (14.5 without it, random search 18.5), dense 1x1000x2048 2 (11,
16), a Zen 1 machine's 3x3 convolution 3 (24, 51); the tuning guide has more. Which configs run fastest depends on
the machine, so the prior aims the first batch, and measurements on this machine decide.

Adding a table: ``python tests/data/tuning/measure_table.py --template NAME --shape ... --target ... --output
tcomp/autotune/priors/NAME.json.gz`` (how the shipped ones were measured is in that script's docstring). A table
whose configs no longer fit its template's space fails to load (the template's knobs changed: measure it again);
``tests/autotune/test_prior.py`` reads every one.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path

from tcomp.autotune.record import Record
from tcomp.autotune.table import MeasuredTable
from tcomp.autotune.task import Task
from tcomp.target import TargetKind

PRIORS = Path(__file__).resolve().parent / "priors"
_LOG = logging.getLogger("tcomp.autotune")


@functools.cache
def prior_tables() -> tuple[MeasuredTable, ...]:
    """Every shipped table that reads, once per process. The prior only aims a first batch, so a table that does not
    read (damaged, or its template's knobs changed since it was measured) is left out with a warning on the
    ``tcomp.autotune`` logger, and tuning goes on."""
    tables = []
    for path in sorted(PRIORS.glob("*.json.gz")):
        try:
            tables.append(MeasuredTable.load(path))
        except (OSError, EOFError, ValueError, LookupError, TypeError) as error:
            _LOG.warning("prior table %s left out: %s: %s", path.name, type(error).__name__, error)
    return tuple(tables)


def serves(table: MeasuredTable, task: Task) -> bool:
    """Whether ``table`` is a prior for ``task``: the same template, on a CPU target of the same vector width."""
    theirs, ours = table.task.target, task.target
    return (table.task.name == task.name and ours.kind is TargetKind.LLVM and theirs.kind is TargetKind.LLVM
            and theirs.vector_bits == ours.vector_bits)


def prior_records(task: Task) -> list[Record]:
    """Records of the shipped tables that serve ``task`` (``serves``); empty when none does."""
    return [record for table in prior_tables() if serves(table, task) for record in table.records()]
