"""Arguments shared by several commands: input shapes of a model, and a progress bar on stderr."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from typing import Any

_SHAPE = re.compile(r"\s*([^\s\[\]]+?):\[([^\]]*)\]\s*")


def parse_input_shapes(texts: list[str]) -> dict[str, list[int]]:
    """``"data:[1,3,224,224] mask:[1,128]"`` (several per argument, or the option repeated) -> ``{name: shape}``."""
    shapes: dict[str, list[int]] = {}
    for text in texts:
        position = 0
        while position < len(text):
            match = _SHAPE.match(text, position)
            if match is None or match.end() == position:
                raise ValueError(f"--input-shapes: cannot read {text[position:]!r}; expected name:[d0,d1,...]")
            name, dims = match.group(1), match.group(2)
            try:
                shapes[name] = [int(d) for d in dims.split(",") if d.strip()]
            except ValueError:
                raise ValueError(f"--input-shapes: dimensions of {name!r} must be integers, got [{dims}]") from None
            position = match.end()
    return shapes


def progress_bar(label: str, stream: Any = None) -> Callable[[int, int, str], None]:
    """A progress callback ``(done, total, item)`` drawing a bar on ``stream`` (stderr)."""
    out = stream or sys.stderr
    interactive = hasattr(out, "isatty") and out.isatty()

    def update(done: int, total: int, item: str) -> None:
        width = 30
        filled = width * done // max(total, 1)
        line = f"{label} [{'#' * filled}{'.' * (width - filled)}] {done}/{total} {item[:40]}"
        if interactive:
            out.write("\r" + line.ljust(100))
            if done == total:
                out.write("\n")
        elif done == total:
            out.write(line + "\n")
        out.flush()

    return update


