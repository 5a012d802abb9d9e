"""Helpers of the fuzz tests: the paths of a JSON value (to pick one to edit), and a child process that reports one
JSON line per case under an address-space limit (a huge allocation fails there instead of exhausting the machine;
a crash shows as a child that stops reporting)."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def json_paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """The key paths of every value nested in ``value`` (a JSON object or list), outermost first."""
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, item in value.items():
            found += json_paths(item, prefix + (key,))
    elif isinstance(value, list):
        for key, item in enumerate(value):
            found += json_paths(item, prefix + (key,))
    return found


def run_reporting_child(args: list[str], cwd: Path, address_space: int,
                        timeout: float = 600) -> tuple[int, list[dict[str, Any]], str]:
    """Run ``python args`` with the repository importable: its exit status, the JSON lines it printed, its
    stderr."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))

    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    child = subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True,
                           timeout=timeout, preexec_fn=limit)
    reports = [json.loads(line) for line in child.stdout.splitlines() if line.startswith("{")]
    return child.returncode, reports, child.stderr
