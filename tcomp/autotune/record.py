"""Tuning records: append-only JSON lines, one measurement per line, flushed as written.

A line is ``{"v": 1, "target": ..., "key": ..., "task": {...}, "config": {...}, "result": {...}}`` (format version,
target string, task key, the task's template/args/target, the config's knob choices, the measurement's status,
costs, message, build time, run time and timestamp). JSON only, never pickle.

Records are data: a log from anyone is safe to load. No field names code to import or run: the task's template is
looked up by name in tcomp's registry of templates (a record of a template defined outside tcomp loads once the
module that defines it has been imported; the ``"module"`` field that older records carry is ignored). Every
field is checked for its type and bounds, and the config must be one of the template's space for the task's
arguments (so ``unroll_k=1000000`` never reaches a build).

Loading skips, with a warning naming the file and line number, any line that is not a record: not JSON (a kill
while writing leaves at most the last line cut), nested too deeply, longer than ``MAX_LINE`` characters, with
huge numbers, a wrong schema or wrong types, an unknown template, arguments the template rejects, knob values
outside the space, or an unknown format version. ``load_records`` returns the rest. A writer that opens a file
whose last line was cut first ends that line, so new records stay readable.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar

from tcomp.autotune.measure import MeasureInput, MeasureResult
from tcomp.autotune.space import ConfigEntity, ConfigSpace, SpaceError
from tcomp.autotune.task import Task
from tcomp.autotune.template import TemplateError
from tcomp.json_value import JSONValueError, as_object, parse_json

FORMAT_VERSION = 1
K = TypeVar("K")
MAX_LINE = 1 << 20  # characters of one records line (a record is a few hundred)
_WARN_LIMIT = 10


class RecordError(ValueError):
    """A line that is not a tuning record."""


@dataclass(frozen=True)
class Record:
    task: Task
    config: ConfigEntity
    result: MeasureResult

    def to_json(self) -> dict[str, Any]:
        return {"v": FORMAT_VERSION, "target": str(self.task.target), "key": self.task.key,
                "task": self.task.to_json(), "config": self.config.to_json(), "result": self.result.to_json()}

    def encode(self) -> str:
        return json.dumps(self.to_json(), separators=(",", ":"), allow_nan=False)

    @staticmethod
    def decode(line: str, spaces: dict[str, ConfigSpace] | None = None) -> Record:
        """The record of one line, or ``RecordError`` saying why it is none. ``spaces`` caches config spaces by
        task key between calls."""
        try:
            value = as_object(parse_json(line), "the line")
        except JSONValueError as error:
            raise RecordError(str(error)) from None
        if "v" not in value:
            raise RecordError("not a record (no format version)")
        if value["v"] != FORMAT_VERSION or isinstance(value["v"], bool):
            raise UnknownVersion(f"format version {_short(value['v'])} (this tcomp reads {FORMAT_VERSION})")
        try:
            task = Task.from_json(value.get("task"))
            config = ConfigEntity.from_json(value.get("config"), task.target)
            result = MeasureResult.from_json(value.get("result"))
        except (ValueError, TemplateError) as error:
            raise RecordError(f"not a record ({error})") from None
        return Record(task, _checked(task, config, spaces), result)

    @staticmethod
    def of(inp: MeasureInput, result: MeasureResult) -> Record:
        return Record(inp.task, inp.config, result)


def _checked(task: Task, config: ConfigEntity, spaces: dict[str, ConfigSpace] | None) -> ConfigEntity:
    """``config`` numbered in ``task``'s space, which must hold it (the template runs in define mode only)."""
    space = spaces.get(task.key) if spaces is not None else None
    if space is None:
        try:
            space = task.config_space
        except Exception as error:  # noqa: BLE001 - template code rejecting arguments read from a file
            raise RecordError(f"template {task.name} rejects the arguments {_short(list(task.args))}: "
                              f"{type(error).__name__}: {_short(str(error), 300)}") from None
        if spaces is not None:
            spaces[task.key] = space
    try:
        index = space.check(config)
    except SpaceError as error:
        raise RecordError(f"config not in the space of {task.name}: {error}") from None
    return ConfigEntity(index, config.choices, config.target)


def _short(value: Any, limit: int = 60) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class UnknownVersion(RecordError):
    """A record written in a format version this tcomp does not read."""


@dataclass
class RecordLog:
    """What ``read_records`` found: the records, and the line numbers it skipped (1-based)."""

    records: list[Record] = field(default_factory=list)
    corrupt_lines: list[int] = field(default_factory=list)
    unknown_version_lines: list[int] = field(default_factory=list)


def _file_lines(handle: IO[str]) -> Iterator[str | None]:
    """The lines of ``handle``; ``None`` for a line longer than ``MAX_LINE`` (read past, never held whole)."""
    while True:
        line = handle.readline(MAX_LINE + 1)
        if not line:
            return
        if len(line) <= MAX_LINE or line.endswith("\n"):
            yield line
            continue
        while True:
            rest = handle.readline(MAX_LINE)
            if not rest or rest.endswith("\n"):
                break
        yield None


def _lines(source: str | os.PathLike[str] | Iterable[str]) -> Iterator[str | None]:
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists():
            return
        # lines end at "\n" alone: a stray "\r" inside a damaged line must not shift the line numbers of the rest
        with open(path, encoding="utf-8", errors="replace", newline="\n") as handle:
            yield from _file_lines(handle)
    else:
        for line in source:
            yield line if len(line) <= MAX_LINE else None


def read_records(source: str | os.PathLike[str] | Iterable[str], *, warn: bool = True) -> RecordLog:
    """Parse a records file (or lines); bad lines are skipped and counted, with warnings naming them."""
    log = RecordLog()
    where = f"{os.fspath(source)}, " if isinstance(source, (str, os.PathLike)) else ""
    spaces: dict[str, ConfigSpace] = {}
    for number, line in enumerate(_lines(source), start=1):
        if line is not None and not line.strip():
            continue
        try:
            if line is None:
                raise RecordError(f"longer than {MAX_LINE} characters")
            log.records.append(Record.decode(line, spaces))
        except UnknownVersion as error:
            log.unknown_version_lines.append(number)
            _warn(warn, len(log.unknown_version_lines) + len(log.corrupt_lines),
                  f"{where}line {number}: skipped: {error}")
        except RecordError as error:
            log.corrupt_lines.append(number)
            _warn(warn, len(log.unknown_version_lines) + len(log.corrupt_lines),
                  f"{where}line {number}: skipped: {error}")
    skipped = len(log.corrupt_lines) + len(log.unknown_version_lines)
    if warn and skipped > _WARN_LIMIT:
        warnings.warn(f"tuning records: {where}skipped {skipped} lines in all ({len(log.corrupt_lines)} corrupt, "
                      f"{len(log.unknown_version_lines)} of unknown versions)", RuntimeWarning, stacklevel=2)
    return log


def _warn(enabled: bool, count: int, message: str) -> None:
    if enabled and count <= _WARN_LIMIT:
        warnings.warn(f"tuning records: {message}", RuntimeWarning, stacklevel=3)


def load_records(source: str | os.PathLike[str] | Iterable[str] | Sequence[Record]) -> list[Record]:
    """The records of a file, of lines, or a list of records as is."""
    if isinstance(source, (list, tuple)) and all(isinstance(r, Record) for r in source):
        return list(source)
    return read_records(source).records  # type: ignore[arg-type]


class RecordWriter:
    """Appends records to a file, one flushed line each (``fsync=True`` also forces them to disk). Usable as a
    tuner callback: ``writer(tuner, inputs, results)``."""

    def __init__(self, path: str | os.PathLike[str], fsync: bool = False) -> None:
        self.path = Path(path)
        self.fsync = fsync
        self.path.parent.mkdir(parents=True, exist_ok=True)
        cut = self.path.exists() and self.path.stat().st_size > 0 and not _ends_with_newline(self.path)
        self._handle: IO[str] | None = open(self.path, "a", encoding="utf-8", newline="\n")
        if cut:
            self._handle.write("\n")
            self._handle.flush()

    def write(self, record: Record) -> None:
        if self._handle is None:
            raise ValueError(f"records file {self.path} is closed")
        self._handle.write(record.encode() + "\n")
        self._handle.flush()
        if self.fsync:
            os.fsync(self._handle.fileno())

    def __call__(self, tuner: Any, inputs: Sequence[MeasureInput], results: Sequence[MeasureResult]) -> None:
        for inp, result in zip(inputs, results):
            self.write(Record.of(inp, result))

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def __enter__(self) -> RecordWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as handle:
        handle.seek(-1, os.SEEK_END)
        return handle.read(1) == b"\n"


def log_to_file(path: str | os.PathLike[str], fsync: bool = False) -> RecordWriter:
    """A tuner callback that appends every measurement to ``path``."""
    return RecordWriter(path, fsync)


def typical_cost(costs: Sequence[float]) -> float:
    """The cost a config measured several times stands for: the lower median of its measurements (a lucky or an
    unlucky run alone does not move it)."""
    if not costs:
        return math.inf
    return sorted(costs)[(len(costs) - 1) // 2]


def confirmed_choice(costs: Mapping[K, Sequence[float]], prefer: K | None = None) -> K | None:
    """The key of the best config among ``costs`` (each config's measured costs): where some were measured more
    than once (a tuner confirms its best configs against the default that way), only those compete, each by its
    ``typical_cost``, so a single lucky measurement never wins over a confirmed one; ``prefer`` (the default) wins
    ties; None when ``costs`` is empty."""
    measured = {key: values for key, values in costs.items() if len(values) > 1} or dict(costs)
    if not measured:
        return None
    return min(measured, key=lambda key: (typical_cost(measured[key]), key != prefer))


def _config_key(config: ConfigEntity) -> Any:
    return config.index if config.index >= 0 else json.dumps(config.to_json(), sort_keys=True)


def best_by_task(records: Iterable[Record]) -> dict[str, Record]:
    """The best successful record of each task key, chosen by ``confirmed_choice``; the record returned is the one
    whose cost is its config's typical cost."""
    by_config: dict[str, dict[Any, list[Record]]] = {}
    for record in records:
        if not record.result.ok or not math.isfinite(record.result.cost):
            continue
        by_config.setdefault(record.task.key, {}).setdefault(_config_key(record.config), []).append(record)
    best: dict[str, Record] = {}
    for key, groups in by_config.items():
        chosen = confirmed_choice({config: [r.result.cost for r in group] for config, group in groups.items()})
        group = sorted(groups[chosen], key=lambda r: r.result.cost)
        best[key] = group[(len(group) - 1) // 2]
    return best


def pick_best(source: str | os.PathLike[str] | Iterable[str] | Sequence[Record],
              output: str | os.PathLike[str]) -> int:
    """Write the best record per task of ``source`` to ``output`` (replacing it); return how many."""
    best = best_by_task(load_records(source))
    temporary = Path(f"{output}.tmp")
    with open(temporary, "w", encoding="utf-8", newline="\n") as handle:
        for record in best.values():
            handle.write(record.encode() + "\n")
    os.replace(temporary, output)
    return len(best)
