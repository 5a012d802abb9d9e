"""Autotuning: templates with knobs, config spaces, isolated measurement, cost models, search and records.

    task = autotune.create_task("matmul", (1024, 1024, 1024), target="llvm")
    tuner = autotune.XGBTuner(task)
    tuner.tune(n_trial=200, measure_option=autotune.MeasureOptions(), callbacks=[autotune.log_to_file("mm.jsonl")])
    with autotune.apply_history_best("mm.jsonl"):
        s, args = autotune.instantiate("matmul", 1024, 1024, 1024)

Data flow: Task -> ConfigSpace -> tuner picks a batch -> builder and runner worker processes (timeouts, crashes
and wrong answers become statuses) -> MeasureResult -> record line (flushed) -> cost model refit -> simulated
annealing proposes the next batch. See the modules: ``space``, ``template``, ``task``, ``measure``, ``pool``,
``workers``, ``feature``, ``cost_model``, ``sa``, ``tuner``, ``record``, ``dispatch``.
"""

from tcomp.autotune.cost_model import CostModel, Objective, RandomModel, XGBoostCostModel
from tcomp.autotune.dispatch import (
    ApplyConfig,
    ApplyHistoryBest,
    DispatchContext,
    Instantiation,
    apply_history_best,
    current_context,
    instantiate,
)
from tcomp.autotune.feature import FeatureExtractor, FeatureKind
from tcomp.autotune.measure import MeasureInput, MeasureOptions, MeasureResult, MeasureStatus
from tcomp.autotune.measurer import Measurer
from tcomp.autotune.pool import StartMethod
from tcomp.autotune.record import Record, RecordWriter, load_records, log_to_file, pick_best, read_records
from tcomp.autotune.sa import SimulatedAnnealingOptimizer
from tcomp.autotune.space import (
    AnnotateEntity,
    AnnotatePolicy,
    Annotation,
    ConfigEntity,
    ConfigSpace,
    KnobKind,
    OtherOptionEntity,
    ReorderEntity,
    ReorderPolicy,
    SpaceError,
    SplitEntity,
    SplitPolicy,
)
from tcomp.autotune.task import Task, create_task
from tcomp.autotune.template import Template, TemplateError, get_template, list_templates, template
from tcomp.autotune.tuner import (
    GATuner,
    GridSearchTuner,
    RandomTuner,
    Tuner,
    TuneResult,
    TunerKind,
    XGBTuner,
    create_tuner,
)

__all__ = [
    "AnnotateEntity", "AnnotatePolicy", "Annotation", "ApplyConfig", "ApplyHistoryBest", "ConfigEntity",
    "ConfigSpace", "CostModel", "DispatchContext", "FeatureExtractor", "FeatureKind", "GATuner", "GridSearchTuner",
    "Instantiation", "KnobKind", "MeasureInput", "MeasureOptions", "MeasureResult", "MeasureStatus", "Measurer",
    "Objective", "OtherOptionEntity", "RandomModel", "RandomTuner", "Record", "RecordWriter", "ReorderEntity",
    "ReorderPolicy", "SimulatedAnnealingOptimizer", "SpaceError", "SplitEntity", "SplitPolicy", "StartMethod", "Task",
    "Template", "TemplateError", "TuneResult", "Tuner", "TunerKind", "XGBTuner", "XGBoostCostModel",
    "apply_history_best", "create_task", "create_tuner", "current_context", "get_template", "instantiate",
    "list_templates", "load_records", "log_to_file", "pick_best", "read_records", "template",
]
