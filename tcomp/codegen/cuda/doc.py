"""A small document builder for C source: lines at an indentation level, blocks that indent their body."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


class Doc:
    """Lines of text; ``block(head)`` opens ``head {``, indents what is written inside and closes with ``}``."""

    def __init__(self, indent: str = "  ") -> None:
        self.indent = indent
        self.level = 0
        self.lines: list[str] = []

    def line(self, text: str = "") -> None:
        self.lines.append(self.indent * self.level + text if text else "")

    @contextlib.contextmanager
    def indented(self) -> Iterator[None]:
        self.level += 1
        try:
            yield
        finally:
            self.level -= 1

    @contextlib.contextmanager
    def block(self, head: str, tail: str = "}") -> Iterator[None]:
        self.line(f"{head} {{")
        with self.indented():
            yield
        self.line(tail)

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"
