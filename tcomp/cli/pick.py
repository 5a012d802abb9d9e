"""Keep the best tuning record of each task of a records file.

    tcomp pick tuning_records.jsonl -o best.jsonl

The result is a records file like any other (``tcomp compile --tuning-records best.jsonl``),
one line per task.
"""

from __future__ import annotations

import argparse

from tcomp.autotune.record import pick_best


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", help="a tuning records file")
    parser.add_argument("-o", "--output", required=True, help="where to write the best record of each task")


def run(args: argparse.Namespace) -> int:
    count = pick_best(args.input, args.output)
    print(f"kept the best record of {count} task(s) in {args.output}")
    return 0
