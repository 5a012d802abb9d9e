"""Tuning records: append-only JSON lines, one measurement per line, flushed as written.

A line is ``{"v": 1, "target": ..., "key": ..., "task": {...}, "config": {...}, "result": {...}}`` (format version,
target string, task key, the task's template/args/target, the config's knob choices, the measurement's status,
costs, message, build time, run time and timestamp). JSON only, never pickle: a log from anyone is safe to load.

Loading skips, with a warning naming the line number, a line that is not valid JSON or not a record (a kill while
writing leaves at most the last line cut) and a line with an unknown format version; ``load_records`` returns the
rest. A writer that opens a file whose last line was cut first ends that line, so new records stay readable.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from tcomp.autotune.measure import MeasureInput, MeasureResult
from tcomp.autotune.space import ConfigEntity
from tcomp.autotune.task import Task

FORMAT_VERSION = 1
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
    def decode(line: str) -> Record:
        try:
            value = json.loads(line)
        except json.JSONDecodeError as error:
            raise RecordError(f"not JSON ({error.msg})") from None
        if not isinstance(value, dict):
            raise RecordError("not a JSON object")
        if "v" not in value:
            raise RecordError("not a record (no format version)")
        if value["v"] != FORMAT_VERSION:
            raise UnknownVersion(f"format version {value.get('v')!r} (this tcomp reads {FORMAT_VERSION})")
        try:
            task = Task.from_json(value["task"])
            config = ConfigEntity.from_json(value["config"], task.target)
            result = MeasureResult.from_json(value["result"])
        except (KeyError, TypeError, ValueError) as error:
            raise RecordError(f"not a record ({type(error).__name__}: {error})") from None
        return Record(task, config, result)

    @staticmethod
    def of(inp: MeasureInput, result: MeasureResult) -> Record:
        return Record(inp.task, inp.config, result)


class UnknownVersion(RecordError):
    """A record written in a format version this tcomp does not read."""


@dataclass
class RecordLog:
    """What ``read_records`` found: the records, and the line numbers it skipped (1-based)."""

    records: list[Record] = field(default_factory=list)
    corrupt_lines: list[int] = field(default_factory=list)
    unknown_version_lines: list[int] = field(default_factory=list)


def _lines(source: str | os.PathLike[str] | Iterable[str]) -> Iterator[str]:
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists():
            return
        with open(path, encoding="utf-8", errors="replace", newline="") as handle:
            yield from handle
    else:
        yield from source


def read_records(source: str | os.PathLike[str] | Iterable[str], *, warn: bool = True) -> RecordLog:
    """Parse a records file (or lines); bad lines are skipped and counted, with warnings naming them."""
    log = RecordLog()
    for number, line in enumerate(_lines(source), start=1):
        if not line.strip():
            continue
        try:
            log.records.append(Record.decode(line))
        except UnknownVersion as error:
            log.unknown_version_lines.append(number)
            _warn(warn, len(log.unknown_version_lines) + len(log.corrupt_lines), f"line {number}: skipped: {error}")
        except RecordError as error:
            log.corrupt_lines.append(number)
            _warn(warn, len(log.unknown_version_lines) + len(log.corrupt_lines), f"line {number}: skipped: {error}")
    skipped = len(log.corrupt_lines) + len(log.unknown_version_lines)
    if warn and skipped > _WARN_LIMIT:
        warnings.warn(f"tuning records: skipped {skipped} lines in all ({len(log.corrupt_lines)} corrupt, "
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


def best_by_task(records: Iterable[Record]) -> dict[str, Record]:
    """The fastest successful record of each task key."""
    best: dict[str, Record] = {}
    for record in records:
        if not record.result.ok or not math.isfinite(record.result.cost):
            continue
        key = record.task.key
        if key not in best or record.result.cost < best[key].result.cost:
            best[key] = record
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
