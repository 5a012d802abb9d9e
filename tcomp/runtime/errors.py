"""Errors raised when a compiled kernel runs."""

from __future__ import annotations


class KernelError(RuntimeError):
    """A runtime check inside a kernel failed (an index out of bounds, a failed allocation ...).

    ``assert_id`` is the id of the failed check in the kernel, ``values`` the int64 values it recorded; the
    message is the check's message formatted with them.
    """

    def __init__(self, message: str, assert_id: int = 0, values: tuple[int, ...] = ()) -> None:
        super().__init__(message)
        self.assert_id = assert_id
        self.values = values
