"""Errors raised when a compiled kernel runs, and how a helper process ended."""

from __future__ import annotations

import signal


class KernelError(RuntimeError):
    """A runtime check inside a kernel failed (an index out of bounds, a failed allocation ...).

    ``assert_id`` is the id of the failed check in the kernel, ``values`` the int64 values it recorded; the
    message is the check's message formatted with them.
    """

    def __init__(self, message: str, assert_id: int = 0, values: tuple[int, ...] = ()) -> None:
        super().__init__(message)
        self.assert_id = assert_id
        self.values = values


def exit_reason(returncode: int | None) -> str:
    """How a child process ended, from its return code: ``exit code N``, or the name of the signal that stopped
    it (negative codes, as ``subprocess`` and ``multiprocessing`` report them)."""
    if returncode is None or returncode >= 0:
        return f"exit code {returncode}"
    try:
        return signal.Signals(-returncode).name
    except ValueError:
        return f"signal {-returncode}"
