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

__all__ = [
    "AnnotateEntity", "AnnotatePolicy", "Annotation", "ConfigEntity", "ConfigSpace", "KnobKind",
    "OtherOptionEntity", "ReorderEntity", "ReorderPolicy", "SpaceError", "SplitEntity", "SplitPolicy", "Task",
    "Template", "TemplateError", "create_task", "get_template", "list_templates", "template",
]
